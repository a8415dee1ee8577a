"""Per-image SSIM and PSNR on [0, 1] images (standard definitions, MAX = 1).

SSIM: Wang et al. 2004, 11x11 Gaussian window (sigma 1.5), C1 = 0.01^2, C2 = 0.03^2 (kornia).
PSNR: 10 log10(MAX^2 / MSE) with MAX = 1, capped at 100 dB for identical images.
The CRU-Net paper's Eq. 16 puts (L - 1)^2 = 255^2 over the MSE of [0, 1] images, which adds
20 log10(255) = 48.13 dB to the standard value; that is why its PSNRs exceed 80 dB.
"""

from __future__ import annotations

import math

import torch
from kornia.metrics import ssim as _ssim

from advshield.errors import InputError
from advshield.validation import check_images

PSNR_CAP_DB = 100.0
PAPER_PSNR_OFFSET_DB = 20 * math.log10(255.0)  # CRU-Net Eq. 16 on [0, 1] images


def _check_pair(a: torch.Tensor, b: torch.Tensor) -> None:
    check_images(a, name="a")
    check_images(b, name="b")
    if a.shape != b.shape:
        raise InputError(f"images to compare must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")


def ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean SSIM per image, shape (N,)."""
    _check_pair(a, b)
    return _ssim(a, b, 11, max_val=1.0).flatten(1).mean(1)


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """PSNR per image in dB (MAX = 1), shape (N,)."""
    _check_pair(a, b)
    mse = (a - b).pow(2).flatten(1).mean(1)
    return torch.where(mse > 0, 10 * torch.log10(1.0 / mse.clamp_min(1e-30)), torch.full_like(mse, PSNR_CAP_DB)
                       ).clamp(max=PSNR_CAP_DB)
