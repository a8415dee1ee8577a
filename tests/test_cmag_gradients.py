"""CMAG Figs. 7-8 (advshield.reproduce.detection.gradients): FGSM input gradients of autoencoders trained with
SSIM and with l2 loss, and the share of those gradients that falls on the digit."""

import json
import math

import pytest
import torch

from advshield.detectors.magnet import MagNetAutoencoder
from advshield.reproduce import load_preset
from advshield.reproduce.detection.gradients import (chance_share, digit_mask, fgsm_gradient, foreground_share,
                                                     gradient_figures, gradient_section, mean_interval,
                                                     reconstruction_loss, train_with_loss)
from advshield.reproduce.detection.preset import GradientBudget


def _ae(double: bool = False) -> MagNetAutoencoder:
    torch.manual_seed(0)
    ae = MagNetAutoencoder(1, filters=2, activation="relu").eval()
    return ae.double() if double else ae


def _digits(n: int, size: int = 12, seed: int = 0) -> torch.Tensor:
    """Bright bars on a black background, a stand-in for digits."""
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(n, 1, size, size)
    for i in range(n):
        r, c = torch.randint(1, size - 6, (2,), generator=g).tolist()
        x[i, 0, r:r + 5, c:c + 2] = 0.5 + 0.5 * torch.rand(5, 2, generator=g)
    return x


def _jacobian(ae, x1: torch.Tensor) -> torch.Tensor:
    return torch.autograd.functional.jacobian(ae, x1[None], vectorize=True).reshape(x1.numel(), x1.numel())


def test_l2_and_l1_gradients_are_the_analytic_vector_jacobian_products_with_the_clean_target_fixed():
    ae, x = _ae(), torch.rand(2, 1, 6, 6)
    g2, g1 = fgsm_gradient(ae, x, "l2"), fgsm_gradient(ae, x, "l1")
    with torch.no_grad():
        r = ae(x)
    for i in range(len(x)):
        jac = _jacobian(ae, x[i])
        e = (r[i] - x[i]).flatten()
        assert torch.allclose(g2[i].flatten(), 2 * jac.T @ e, atol=1e-6)  # d||AE(x') - x||^2 / dx'
        assert torch.allclose(g1[i].flatten(), jac.T @ e.sign(), atol=1e-6)
        # the gradient through the target too (2 (J - I)^T e) is another vector: the target is held fixed
        assert not torch.allclose(g2[i].flatten(), 2 * (jac - torch.eye(36)).T @ e, atol=1e-4)


@pytest.mark.parametrize("loss", ["ssim", "l1", "l2"])
def test_gradient_matches_central_differences_of_the_loss(loss):
    ae, x = _ae(double=True), torch.rand(2, 1, 12, 12, dtype=torch.float64) * 0.8 + 0.1
    g = fgsm_gradient(ae, x, loss)
    v, h = torch.randn(x.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64), 1e-6
    with torch.no_grad():
        fd = (reconstruction_loss(ae(x + h * v), x, loss) - reconstruction_loss(ae(x - h * v), x, loss)) / (2 * h)
    assert torch.allclose((g * v).flatten(1).sum(1), fd, rtol=1e-4, atol=1e-8)


def test_reconstruction_loss_refuses_an_unknown_loss():
    with pytest.raises(ValueError, match="loss must be one of"):
        reconstruction_loss(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 4), "l3")


def test_foreground_share_is_one_inside_the_mask_chance_when_uniform_and_nan_when_zero():
    x = _digits(4)
    mask = digit_mask(x, 0.1)
    inside = torch.randn(x.shape) * mask
    assert torch.allclose(foreground_share(inside, mask), torch.ones(4))
    uniform = torch.full(x.shape, -0.3)
    assert torch.allclose(foreground_share(uniform, mask), chance_share(mask))
    assert torch.allclose(chance_share(mask), torch.full((4,), 10 / 144))  # a 5 x 2 bar on 12 x 12
    outside = torch.rand(x.shape) * ~mask
    assert torch.allclose(foreground_share(outside, mask), torch.zeros(4))
    assert torch.isnan(foreground_share(torch.zeros(x.shape), mask)).all()


def test_digit_mask_grows_by_the_radius():
    x = torch.zeros(1, 1, 12, 12)
    x[0, 0, 6, 6] = 1.0
    assert int(digit_mask(x, 0.1).sum()) == 1
    assert int(digit_mask(x, 0.1, radius=2).sum()) == 25
    assert not digit_mask(x, 1.0).any()  # strictly above the threshold


def test_mean_interval_is_the_normal_interval_over_finite_values():
    got = mean_interval(torch.tensor([0.0, 1.0, 0.0, 1.0, float("nan")]))
    half = 1.959964 * math.sqrt(1 / 3) / 2
    assert got["n"] == 4 and got["mean"] == pytest.approx(0.5)
    assert got["ci95"] == pytest.approx([0.5 - half, 0.5 + half])


def test_training_is_deterministic_and_differs_only_by_the_loss():
    x = _digits(48)
    a, ha = train_with_loss(x, "l2", epochs=2, batch_size=16, seed=3)
    b, hb = train_with_loss(x, "l2", epochs=2, batch_size=16, seed=3)
    c, _ = train_with_loss(x, "ssim", epochs=2, batch_size=16, seed=3)
    assert ha == hb and len(ha) == 2 and ha[1] < ha[0]
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not torch.equal(a.encoder[0].weight, c.encoder[0].weight)
    with torch.random.fork_rng(devices=[]):  # both start from the seed's weights
        torch.manual_seed(3)
        init = MagNetAutoencoder(1, activation="relu")
    zero, _ = train_with_loss(x, "ssim", epochs=1, batch_size=16, seed=3, lr=1e-12)
    assert torch.allclose(zero.encoder[0].weight, init.encoder[0].weight, atol=1e-9)


def test_gradient_figures_write_both_figures_and_a_card_section(tmp_path):
    card = gradient_figures(_digits(64, seed=1), _digits(6, seed=2), tmp_path, epochs=1, n_figure=4, batch_size=16)
    for fig in ("fig7", "fig8"):
        path = tmp_path / card["figures"][fig]
        assert path.name.startswith(fig) and path.stat().st_size > 1000
    assert set(card["shares"]) == {"ssim", "l2"} and set(card["shares"]["ssim"]) == {"ssim", "l1", "l2"}
    for trained in ("ssim", "l2"):
        for loss in ("ssim", "l1", "l2"):
            s = card["shares"][trained][loss]
            assert 0.0 <= s["digit"]["mean"] <= s["near"]["mean"] <= 1.0 and s["digit"]["n"] == 6
    assert card["chance"]["digit"]["mean"] == pytest.approx(10 / 144)
    d = card["difference"]["l2"]["digit"]["mean"]
    assert d == pytest.approx(card["shares"]["ssim"]["l2"]["digit"]["mean"] - card["shares"]["l2"]["l2"]["digit"]["mean"])
    json.dumps(card)  # goes into reproduction.json as it is
    text = "\n".join(gradient_section(card))
    assert "## Figs. 7-8" in text and "Paper: qualitative" in text and "![fig7](figures/fig7-" in text


def test_the_cmag_mnist_preset_draws_figs_7_and_8_in_both_variants():
    p = load_preset("cmag-mnist")
    assert p.full.gradients.n_test >= 500 and p.fast.gradients is not None
    with pytest.raises(ValueError):
        GradientBudget(n_train=10, epochs=1, n_test=5, treshold=0.2)
