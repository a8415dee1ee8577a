"""Classic non-differentiable input transformations: feature squeezing (Xu et al. 2018), JPEG, and total
variance minimisation (Guo et al. 2018): the DKN paper's baselines (Tables 1-2)."""

from __future__ import annotations

import io

import numpy as np
import torch
from kornia.enhance import jpeg_codec_differentiable
from kornia.losses import total_variation
from PIL import Image
from torch.nn import functional as F

from advshield.defenses.base import Defense, register_defense
from advshield.errors import InputError


@register_defense("bit-depth", kind="preprocessing", paper="Xu et al. 2018, feature squeezing")
class BitDepthReduction(Defense):
    """Quantise every pixel to ``bits`` bits (non-differentiable: zero gradient almost everywhere).

    Depths above 8 (DKN Table 2 lists depth=10) quantise the float image more finely than 8-bit storage does,
    so they are close to the identity."""

    differentiable = False

    def __init__(self, bits: int = 1) -> None:
        super().__init__()
        if not 1 <= bits <= 16:
            raise InputError(f"bits must lie in 1..16, got {bits}")
        self.levels = 2**bits - 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.round(x * self.levels) / self.levels


@register_defense("median", kind="preprocessing", paper="Xu et al. 2018, spatial smoothing")
class MedianFilter(Defense):
    """Median filter over a ``size`` x ``size`` window; its gradient is sparse, so adaptive attacks use BPDA.

    Exactly feature squeezing's reference, scipy.ndimage.median_filter, for odd and even windows (DKN
    Tables 1-2 use 2 and 3): the window reaches size // 2 pixels back and the rest forward, edges are
    mirrored with the edge pixel repeated, and the median of an even count is the upper middle value.
    """

    differentiable = False

    def __init__(self, size: int = 3) -> None:
        super().__init__()
        if size < 1:
            raise InputError(f"median filter size must be positive, got {size}")
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.size
        n, c, h, w = x.shape
        xp = _pad_symmetric(x, k // 2, k - 1 - k // 2)
        windows = F.unfold(xp.reshape(n * c, 1, *xp.shape[2:]), k).reshape(n, c, k * k, h, w)
        return windows.sort(dim=2).values[:, :, k * k // 2]


def _pad_symmetric(x: torch.Tensor, before: int, after: int) -> torch.Tensor:
    """Pad H and W by mirroring with the edge repeated (numpy 'symmetric', scipy.ndimage 'reflect')."""
    def index(n: int) -> torch.Tensor:
        i = torch.arange(-before, n + after, device=x.device)
        i = torch.where(i < 0, -i - 1, i)
        return torch.where(i >= n, 2 * n - 1 - i, i)

    return x.index_select(2, index(x.shape[2])).index_select(3, index(x.shape[3]))


@register_defense("jpeg", kind="preprocessing", paper="Dziugaite et al. 2016; Guo et al. 2018 (JPEG compression)")
class JpegCompression(Defense):
    """Real JPEG (Pillow's libjpeg, its default 4:2:0 chroma subsampling) at ``quality``; adaptive attacks backpropagate kornia's differentiable
    JPEG approximation (``bpda``), a closer surrogate than the identity."""

    differentiable = False

    def __init__(self, quality: int = 75) -> None:
        super().__init__()
        if not 1 <= quality <= 100:
            raise InputError(f"JPEG quality must lie in 1..100, got {quality}")
        self.quality = quality

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.empty_like(x)
        arrays = (x.detach().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        for i, a in enumerate(arrays):
            buf = io.BytesIO()
            Image.fromarray(a[..., 0] if a.shape[-1] == 1 else a).save(buf, "JPEG", quality=self.quality)
            dec = np.asarray(Image.open(io.BytesIO(buf.getvalue())), dtype=np.float32) / 255.0
            out[i] = torch.from_numpy(dec.reshape(a.shape)).permute(2, 0, 1).to(x.device)
        return out

    def differentiable_approximation(self, x: torch.Tensor) -> torch.Tensor:
        """kornia's differentiable JPEG (3-channel codec; grey images are repeated and averaged back);
        sizes are padded to multiples of 16 as it requires."""
        c, h, w = x.shape[1:]
        ph, pw = (-h) % 16, (-w) % 16
        xp = F.pad(x, (0, pw, 0, ph), mode="replicate")
        rgb = xp.repeat(1, 3, 1, 1) if c == 1 else xp
        q = torch.full((len(x),), float(self.quality), device=x.device)
        y = jpeg_codec_differentiable(rgb, q)[..., :h, :w]
        return y.mean(1, keepdim=True) if c == 1 else y

    def bpda(self, x: torch.Tensor, out: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(self.differentiable_approximation(xg), xg, grad)
        return g


@register_defense("tvm", kind="preprocessing", paper="Guo et al. 2018, total variance minimization")
class TotalVarianceMinimization(Defense):
    """Keep each pixel with probability ``keep`` (a random Bernoulli mask), then solve
    min_z 1/2 ||mask (.) (z - x)||_2^2 + ``weight`` * TV(z) by ``steps`` of Adam (kornia's total variation),
    z kept in [0, 1]. Guo et al. solve the unsquared-norm version with a dedicated solver; this is the
    same trade-off, solved approximately.

    Randomised: every call draws a new mask, so adaptive attacks average gradients over draws (EOT);
    the reconstruction is treated as non-differentiable (BPDA: identity).
    """

    differentiable = False
    randomized = True

    def __init__(self, keep: float = 0.5, weight: float = 0.03, steps: int = 60, lr: float = 0.02) -> None:
        super().__init__()
        if not 0 < keep <= 1:
            raise InputError(f"keep must lie in (0, 1], got {keep}")
        self.keep, self.weight, self.steps, self.lr = keep, weight, steps, lr

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.detach()
        mask = (torch.rand(x.shape[0], 1, *x.shape[2:], device=x.device) < self.keep).to(x.dtype)
        z = x.clone().requires_grad_(True)
        opt = torch.optim.Adam([z], lr=self.lr)
        with torch.enable_grad():
            for _ in range(self.steps):
                fit = 0.5 * (mask * (z - x)) ** 2
                tv = total_variation(z, reduction="sum")  # anisotropic, per image and channel
                loss = fit.sum() + self.weight * tv.sum()
                opt.zero_grad()
                loss.backward()
                opt.step()
                with torch.no_grad():
                    z.clamp_(0, 1)
        return z.detach()


@register_defense("squeeze", kind="preprocessing", paper="Xu et al. 2018 (bit depth then median)")
class Squeeze(Defense):
    """Bit-depth reduction followed by a median filter."""

    differentiable = False

    def __init__(self, bits: int = 1, size: int = 3) -> None:
        super().__init__()
        self.quantise, self.median = BitDepthReduction(bits), MedianFilter(size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.median(self.quantise(x))
