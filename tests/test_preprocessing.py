"""The DKN paper's baseline preprocessing defenses: what they compute, and their BPDA / EOT hooks."""

import numpy as np
import pytest
import torch

from advshield.attacks import Pipeline, create_attack, run_attack
from advshield.data import load_dataset
from advshield.defenses import DEFENSES, apply_with_bpda
from advshield.errors import InputError
from advshield.zoo import load_pretrained

scipy_ndimage = pytest.importorskip("scipy.ndimage")


@pytest.mark.parametrize("size", [2, 3, 4])
def test_median_matches_scipy_median_filter(size):
    """Feature squeezing's reference implementation is scipy.ndimage.median_filter (reflect edges)."""
    x = torch.rand(2, 3, 9, 11)
    ours = DEFENSES.create("median", size=size)(x)
    ref = scipy_ndimage.median_filter(x.numpy(), size=(1, 1, size, size), mode="reflect")
    np.testing.assert_allclose(ours.numpy(), ref, atol=1e-7)


def test_jpeg_is_the_real_codec_and_its_bpda_is_the_differentiable_approximation():
    from PIL import Image
    import io

    torch.manual_seed(0)
    x = torch.rand(2, 3, 32, 32)
    jpeg = DEFENSES.create("jpeg", quality=80)
    y = jpeg(x)
    buf = io.BytesIO()
    Image.fromarray((x[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(buf, "JPEG", quality=80)
    ref = np.asarray(Image.open(buf), dtype=np.float32) / 255
    np.testing.assert_allclose(y[0].permute(1, 2, 0).numpy(), ref, atol=1e-6)
    assert float((jpeg.differentiable_approximation(x) - y).abs().mean()) < 0.05  # a close surrogate
    xg = x.clone().requires_grad_(True)
    apply_with_bpda(jpeg, xg).sum().backward()
    assert xg.grad is not None and not torch.allclose(xg.grad, torch.ones_like(x))  # not the identity
    with pytest.raises(InputError, match="quality"):
        DEFENSES.create("jpeg", quality=0)


def test_tvm_is_randomised_and_smooths():
    torch.manual_seed(0)
    tvm = DEFENSES.create("tvm")
    assert tvm.randomized and not tvm.differentiable
    x = torch.zeros(1, 1, 16, 16)
    x[..., 4:12, 4:12] = 1.0
    noisy = (x + 0.2 * torch.randn_like(x)).clamp(0, 1)
    a, b = tvm(noisy), tvm(noisy)
    assert not torch.equal(a, b)  # a new pixel mask every call

    def tv(z):
        return float((z[..., 1:, :] - z[..., :-1, :]).abs().sum() + (z[..., 1:] - z[..., :-1]).abs().sum())

    assert tv(a) < 0.7 * tv(noisy)  # total variation minimised
    assert float(a.min()) >= 0 and float(a.max()) <= 1


def test_one_bit_squeezing_undoes_oblivious_fgsm_but_median_and_jpeg_do_not():
    """The pattern of DKN Table 1 (white-box FGSM on MNIST): depth 1 helps most, smoothing and JPEG little."""
    x, y = load_dataset("mnist", "test").tensors(slice(0, 200))
    model, _ = load_pretrained("a-net")
    adv = run_attack(create_attack("fgsm", eps=0.3), Pipeline(model), x, y, batch_size=200, seed=0).adv

    def acc(name, **kw):
        with torch.no_grad():
            return float((model(DEFENSES.create(name, **kw)(adv)).argmax(1) == y).float().mean())

    bare = float((model(adv).argmax(1) == y).float().mean())
    assert bare < 0.2
    assert acc("bit-depth", bits=1) > 0.6
    assert max(acc("median", size=2), acc("median", size=3), acc("jpeg", quality=70)) < 0.3


def test_bit_depth_above_eight_is_nearly_the_identity_and_bounds_are_checked():
    from advshield.defenses import DEFENSES
    from advshield.errors import InputError

    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    assert (DEFENSES.create("bit-depth", bits=10)(x) - x).abs().max() <= 0.5 / 1023 + 1e-7  # DKN Table 2's depth=10
    assert (DEFENSES.create("bit-depth", bits=1)(x) - x).abs().max() > 0.4
    for bad in (0, 17):
        with pytest.raises(InputError, match="1..16"):
            DEFENSES.create("bit-depth", bits=bad)
