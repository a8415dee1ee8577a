"""The propagation paper's two denoisers (perturbation-propagation.txt, Section 2.3).

* U-Net (Ronneberger et al. 2015): two 3x3 conv + BN + ReLU per level, max-pool
  down, transposed conv up, skips by concatenation.
* FusionNet (Quan et al. 2016): conv -> residual block of three convs -> conv
  per level, skips by summation instead of concatenation.
Both predict the image directly, through a sigmoid (the paper trains them with
MSE against the clean image); widths are scaled down for 28-32 px inputs.
"""

from __future__ import annotations

import torch
from torch import nn

from advshield.defenses.base import register_defense
from advshield.defenses.restorer import Restorer


def _cbr(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, 1, 1), nn.BatchNorm2d(cout), nn.ReLU()]


def _levels(image_size: int, levels: int | None) -> int:
    if levels is not None:
        return levels
    n = 0
    while image_size % 2 ** (n + 1) == 0 and image_size // 2 ** (n + 1) >= 7:
        n += 1
    return n


class UNet(Restorer):
    def __init__(self, in_channels: int = 1, image_size: int = 28, width: int = 32, levels: int | None = None):
        levels = _levels(image_size, levels)
        super().__init__(in_channels, image_size, width=width, levels=levels)
        w = [width * 2**i for i in range(levels + 1)]
        self.enc = nn.ModuleList(nn.Sequential(*_cbr(cin, c), *_cbr(c, c))
                                 for cin, c in zip([in_channels] + w[:-2], w[:-1]))
        self.bottom = nn.Sequential(*_cbr(w[-2], w[-1]), *_cbr(w[-1], w[-1]))
        self.up = nn.ModuleList(nn.ConvTranspose2d(2 * c, c, 2, 2) for c in w[:-1])
        self.dec = nn.ModuleList(nn.Sequential(*_cbr(2 * c, c), *_cbr(c, c)) for c in w[:-1])
        self.head = nn.Conv2d(width, in_channels, 1)

    @staticmethod
    def merge(skip: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
        return torch.cat([skip, up], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Encoder with max-pooling, decoder merging each skip (FusionNet overrides ``merge``), sigmoid head."""
        self._check(x)
        return torch.sigmoid(self.head(self.trunk(x)))

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        """Full-resolution decoder features (``width`` channels) before the head."""
        skips, h = [], x
        for enc in self.enc:
            h = enc(h)
            skips.append(h)
            h = nn.functional.max_pool2d(h, 2)
        h = self.bottom(h)
        for i in reversed(range(len(skips))):
            h = self.dec[i](self.merge(skips[i], self.up[i](h)))
        return h


class _FusionBlock(nn.Module):
    """conv -> residual(three convs) -> conv (FusionNet's building block)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.inp = nn.Sequential(*_cbr(cin, cout))
        self.res = nn.Sequential(*_cbr(cout, cout), *_cbr(cout, cout), *_cbr(cout, cout))
        self.out = nn.Sequential(*_cbr(cout, cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x)
        return self.out(h + self.res(h))


class FusionNet(Restorer):
    def __init__(self, in_channels: int = 1, image_size: int = 28, width: int = 32, levels: int | None = None):
        levels = _levels(image_size, levels)
        super().__init__(in_channels, image_size, width=width, levels=levels)
        w = [width * 2**i for i in range(levels + 1)]
        self.enc = nn.ModuleList(_FusionBlock(cin, c) for cin, c in zip([in_channels] + w[:-2], w[:-1]))
        self.bottom = _FusionBlock(w[-2], w[-1])
        self.up = nn.ModuleList(nn.ConvTranspose2d(2 * c, c, 2, 2) for c in w[:-1])
        self.dec = nn.ModuleList(_FusionBlock(c, c) for c in w[:-1])
        self.head = nn.Conv2d(width, in_channels, 1)

    @staticmethod
    def merge(skip: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
        return skip + up  # summation skip (FusionNet)

    forward = UNet.forward
    trunk = UNet.trunk


@register_defense("unet", kind="restorer", paper="U-Net denoiser (perturbation-propagation.txt, Sec. 2.3)")
def unet(in_channels: int = 1, image_size: int = 28, width: int = 32, levels: int | None = None) -> UNet:
    return UNet(in_channels, image_size, width, levels)


@register_defense("fusionnet", kind="restorer", paper="FusionNet denoiser (perturbation-propagation.txt, Sec. 2.3)")
def fusionnet(in_channels: int = 1, image_size: int = 28, width: int = 32, levels: int | None = None) -> FusionNet:
    return FusionNet(in_channels, image_size, width, levels)
