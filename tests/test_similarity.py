import math

import pytest
import torch

from advshield.errors import InputError
from advshield.metrics import psnr, ssim
from advshield.metrics.similarity import PAPER_PSNR_OFFSET_DB, PSNR_CAP_DB


def test_identical_images():
    x = torch.rand(3, 3, 32, 32)
    assert torch.allclose(ssim(x, x), torch.ones(3), atol=1e-5)
    assert torch.equal(psnr(x, x), torch.full((3,), PSNR_CAP_DB))


def test_psnr_known_value_and_paper_offset():
    a = torch.zeros(2, 1, 28, 28)
    b = torch.full_like(a, 0.1)  # MSE 0.01 -> 20 dB with MAX = 1
    assert torch.allclose(psnr(a, b), torch.full((2,), 20.0), atol=1e-4)
    assert PAPER_PSNR_OFFSET_DB == pytest.approx(20 * math.log10(255))  # 48.13 dB


def test_ssim_falls_with_noise():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 1, 28, 28, generator=g)
    small = (x + 0.02 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    large = (x + 0.3 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    s_small, s_large = ssim(x, small), ssim(x, large)
    assert (s_small < 1).all() and (s_large < s_small).all()
    assert (psnr(x, large) < psnr(x, small)).all()


def test_inputs_are_validated():
    x = torch.rand(2, 1, 28, 28)
    with pytest.raises(InputError, match="same shape"):
        ssim(x, torch.rand(2, 1, 32, 32))
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        psnr(x, x * 2)
    with pytest.raises(InputError, match="NaN"):
        ssim(x, torch.full_like(x, float("nan")))
