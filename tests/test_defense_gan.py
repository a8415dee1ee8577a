"""Defense-GAN: the latent search finds codes of images in the generator's range, a small WGAN-GP
trained on MNIST separates FGSM from clean images, the reconstruction defense is randomised with a
BPDA backward."""

import pytest
import torch

from advshield.attacks import Pipeline, create_attack, run_attack
from advshield.data import load_dataset
from advshield.defenses.base import apply_with_bpda
from advshield.detectors import (DETECTORS, DefenseGANDetector, DefenseGANReconstruction, Generator, Projection,
                                 project, train_wgan_gp)
from advshield.metrics import detection_metrics
from advshield.errors import InputError
from advshield.zoo import load_pretrained


def _untrained(z_dim: int = 16) -> Generator:
    """An untrained generator whose batch-norm statistics are those of its own activations (else every code
    maps to nearly the same grey image)."""
    torch.manual_seed(0)
    gen = Generator((1, 28, 28), z_dim=z_dim, width=8)
    with torch.no_grad():
        for _ in range(30):
            gen(torch.randn(256, z_dim))
    return gen.eval()


def _range_images(gen: Generator, n: int = 8) -> torch.Tensor:
    with torch.no_grad():
        return gen(torch.randn(n, gen.z_dim, generator=torch.Generator().manual_seed(1)))


def test_projection_recovers_images_of_the_generators_range():
    gen = _untrained()
    x = _range_images(gen)
    start_err = project(gen, x, Projection(steps=1, restarts=1, lr=1e-6, final_lr=1e-6), seed=0)[1]
    rec, err = project(gen, x, Projection(steps=100, restarts=4, lr=100.0, final_lr=10.0), seed=0)
    assert rec.shape == x.shape and err.shape == (8,)
    assert float(err.mean()) < 0.2 * float(start_err.mean())
    assert torch.equal(err, project(gen, x, Projection(steps=100, restarts=4, lr=100.0, final_lr=10.0), seed=0)[1])
    more = project(gen, x, Projection(steps=100, restarts=1, lr=100.0, final_lr=10.0), seed=0)[1]
    assert torch.all(err <= more + 1e-7)  # the best of 4 starts includes the first one


def test_defense_gan_rejects_bad_settings_and_is_registered():
    assert "defense-gan" in DETECTORS.names()
    with pytest.raises(InputError, match="divisible by 4"):
        Generator((1, 30, 30))
    with pytest.raises(InputError, match="restarts"):
        Projection(steps=10, restarts=0)


def test_reconstruction_defense_is_randomised_with_identity_bpda():
    gen = _untrained()
    defense = DefenseGANReconstruction(gen, Projection(steps=5, restarts=2))
    assert defense.randomized and not defense.differentiable
    x = torch.rand(3, 1, 28, 28, requires_grad=True)
    out = apply_with_bpda(defense, x)
    assert out.shape == x.shape and float(out.detach().min()) >= 0 and float(out.detach().max()) <= 1
    (out * torch.arange(3.0).view(3, 1, 1, 1)).sum().backward()
    assert torch.equal(x.grad, torch.arange(3.0).view(3, 1, 1, 1).expand_as(x))


@pytest.mark.slow
def test_small_wgan_on_mnist_detects_fgsm():
    train = load_dataset("mnist", "train")
    clean = train.tensors(slice(0, 1000))[0]
    gen = Generator((1, 28, 28), z_dim=32, width=16)
    history = train_wgan_gp(gen, clean, iterations=300, batch_size=64, lr=5e-4, seed=0)
    assert len(history) == 3 and all(torch.isfinite(torch.tensor(history)))
    x, y = load_dataset("mnist", "test").tensors(slice(0, 100))
    model, _ = load_pretrained("a-net")
    adv = run_attack(create_attack("fgsm", eps=0.3), Pipeline(model), x, y, batch_size=100, seed=0).adv
    det = DefenseGANDetector(gen, Projection(steps=50, restarts=2, lr=100.0, final_lr=10.0))
    with torch.no_grad():
        det.calibrate_fpr(det.score(train.tensors(slice(1000, 1200))[0]), 0.05)
        m = detection_metrics(det.score(x), det.score(adv), det.threshold)
    assert m["auc"] > 0.95 and m["detection_rate"] > 0.6 and m["fpr"] <= 0.15  # 300 iterations: a rough GAN
