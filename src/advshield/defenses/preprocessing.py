"""Simple non-differentiable input transformations (Xu et al. 2018, feature squeezing)."""

from __future__ import annotations

import torch
from kornia.filters import median_blur

from advshield.defenses.base import Defense, register_defense
from advshield.errors import InputError


@register_defense("bit-depth", kind="preprocessing", paper="Xu et al. 2018, feature squeezing")
class BitDepthReduction(Defense):
    """Quantise every pixel to ``bits`` bits (non-differentiable: zero gradient almost everywhere)."""

    differentiable = False

    def __init__(self, bits: int = 1) -> None:
        super().__init__()
        if not 1 <= bits <= 8:
            raise InputError(f"bits must lie in 1..8, got {bits}")
        self.levels = 2**bits - 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.round(x * self.levels) / self.levels


@register_defense("median", kind="preprocessing", paper="Xu et al. 2018, spatial smoothing")
class MedianFilter(Defense):
    """Median filter of odd ``size`` (kornia); its gradient is sparse, so adaptive attacks use BPDA."""

    differentiable = False

    def __init__(self, size: int = 3) -> None:
        super().__init__()
        if size < 1 or size % 2 == 0:
            raise InputError(f"median filter size must be odd and positive, got {size}")
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return median_blur(x, (self.size, self.size))


@register_defense("squeeze", kind="preprocessing", paper="Xu et al. 2018 (bit depth then median)")
class Squeeze(Defense):
    """Bit-depth reduction followed by a median filter."""

    differentiable = False

    def __init__(self, bits: int = 1, size: int = 3) -> None:
        super().__init__()
        self.quantise, self.median = BitDepthReduction(bits), MedianFilter(size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.median(self.quantise(x))
