"""Defense-GAN (Samangouei, Kabkab & Chellappa, ICLR 2018; CMAG's baseline [31]).

A WGAN generator G is trained on clean images only. An input x is projected onto G's range by
gradient descent over the latent code (Eq. 9 of Defense-GAN):

    z* = argmin_z ||G(z) - x||_2^2,   L steps from each of R random starts, the best start kept,

* detector: score = ||G(z*) - x||_2^2 / n (the reconstruction error, per pixel);
* defense: G(z*) replaces x (randomised through the starts; BPDA backward = identity, as in
  Athalye et al. 2018, who broke it that way).

Defaults follow the paper's MNIST setting: z in R^128, L = 200, R = 10, momentum 0.7, learning rate
10 decaying to 1 over the L steps. Training is WGAN-GP (Gulrajani et al. 2017), as in the authors' code.
Training reports each generator iteration, and the detector's search each of its L steps, to an optional
progress callback (a progress bar; it changes no number).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from advshield.defenses.base import Defense
from advshield.detectors.base import Detector, register_detector
from advshield.errors import InputError


class Generator(nn.Module):
    """DCGAN-style: z -> FC to (4d, H/4, W/4) -> two stride-2 transposed convs -> sigmoid image."""

    def __init__(self, shape: tuple[int, int, int] = (1, 28, 28), z_dim: int = 128, width: int = 64) -> None:
        super().__init__()
        c, h, w = shape
        if h % 4 or w % 4:
            raise InputError(f"Defense-GAN's generator needs sides divisible by 4, got {h}x{w}")
        self.shape, self.z_dim, self.arch_kwargs = shape, z_dim, dict(shape=list(shape), z_dim=z_dim, width=width)
        self.fc = nn.Sequential(nn.Linear(z_dim, 4 * width * (h // 4) * (w // 4)),
                                nn.BatchNorm1d(4 * width * (h // 4) * (w // 4)), nn.ReLU())
        self.body = nn.Sequential(
            nn.ConvTranspose2d(4 * width, 2 * width, 4, 2, 1), nn.BatchNorm2d(2 * width), nn.ReLU(),
            nn.ConvTranspose2d(2 * width, width, 4, 2, 1), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, c, 3, padding=1), nn.Sigmoid())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        c, h, w = self.shape
        return self.body(self.fc(z).view(len(z), -1, h // 4, w // 4))


class Critic(nn.Module):
    """WGAN critic: two stride-2 convs with LeakyReLU, then a linear score (no batch norm, as WGAN-GP asks)."""

    def __init__(self, shape: tuple[int, int, int] = (1, 28, 28), width: int = 64) -> None:
        super().__init__()
        c, h, w = shape
        self.net = nn.Sequential(nn.Conv2d(c, width, 4, 2, 1), nn.LeakyReLU(0.2),
                                 nn.Conv2d(width, 2 * width, 4, 2, 1), nn.LeakyReLU(0.2), nn.Flatten(),
                                 nn.Linear(2 * width * (h // 4) * (w // 4), 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(1)


def train_wgan_gp(generator: Generator, clean: torch.Tensor, *, iterations: int = 2000, batch_size: int = 64,
                  n_critic: int = 5, gp_weight: float = 10.0, lr: float = 1e-4, seed: int = 0,
                  device: torch.device | str = "cpu", progress: Callable[[str, int, int], None] | None = None
                  ) -> list[float]:
    """WGAN-GP (Gulrajani et al. 2017, Algorithm 1: Adam 1e-4, betas (0.5, 0.9), 5 critic steps, lambda 10).

    Returns the critic's Wasserstein estimate E[D(x)] - E[D(G(z))] every 100 generator iterations;
    ``progress(what, done, total)`` after each generator iteration.
    """
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    critic = Critic(tuple(clean.shape[1:]), generator.arch_kwargs["width"]).to(device)
    generator.to(device).train()
    opt_g = torch.optim.Adam(generator.parameters(), lr=lr, betas=(0.5, 0.9))
    opt_d = torch.optim.Adam(critic.parameters(), lr=lr, betas=(0.5, 0.9))
    history, w_est = [], 0.0

    def sample_z(n: int) -> torch.Tensor:
        return torch.randn(n, generator.z_dim, generator=g).to(device)

    for it in range(iterations):
        for _ in range(n_critic):
            real = clean[torch.randint(len(clean), (batch_size,), generator=g)].to(device)
            with torch.no_grad():
                fake = generator(sample_z(batch_size))
            eps = torch.rand(batch_size, 1, 1, 1, generator=g).to(device)
            mix = (eps * real + (1 - eps) * fake).requires_grad_(True)
            grad, = torch.autograd.grad(critic(mix).sum(), mix, create_graph=True)
            gp = (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()
            w = critic(real).mean() - critic(fake).mean()
            opt_d.zero_grad()
            (-w + gp_weight * gp).backward()
            opt_d.step()
            w_est = float(w.detach())
        loss_g = -critic(generator(sample_z(batch_size))).mean()
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
        if it % 100 == 99 or it == iterations - 1:
            history.append(w_est)
        if progress is not None:
            progress("wgan-gp iterations", it + 1, iterations)
    generator.eval()
    return history


@dataclass(frozen=True)
class Projection:
    """Defense-GAN's latent search (Sec. 3.3): ``steps`` L, ``restarts`` R, momentum GD with a decaying rate."""

    steps: int = 200
    restarts: int = 10
    lr: float = 10.0
    final_lr: float = 1.0
    momentum: float = 0.7

    def __post_init__(self) -> None:
        if self.steps < 1 or self.restarts < 1:
            raise InputError(f"Defense-GAN needs steps >= 1 and restarts >= 1, got {self.steps}, {self.restarts}")


def project(generator: Generator, x: torch.Tensor, cfg: Projection = Projection(), seed: int | None = None,
            progress: Callable[[int, int], None] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Returns (G(z*), per-image mean squared error) for the best of ``cfg.restarts`` starts;
    ``progress(step, cfg.steps)`` after each step of the search."""
    n, r = len(x), cfg.restarts
    gen = None if seed is None else torch.Generator().manual_seed(seed)
    z = torch.randn(r * n, generator.z_dim, generator=gen).to(x.device).requires_grad_(True)
    target = x.detach().repeat(r, 1, 1, 1)
    opt = torch.optim.SGD([z], lr=cfg.lr, momentum=cfg.momentum)
    decay = (cfg.final_lr / cfg.lr) ** (1 / max(cfg.steps - 1, 1))
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, decay)
    generator.requires_grad_(False)
    with torch.enable_grad():
        for step in range(cfg.steps):
            err = (generator(z) - target).pow(2).flatten(1).mean(1)
            opt.zero_grad()
            err.sum().backward()  # each code sees only its own image's error
            opt.step()
            sched.step()
            if progress is not None:
                progress(step + 1, cfg.steps)
    with torch.no_grad():
        rec = generator(z)
        err = (rec - target).pow(2).flatten(1).mean(1).view(r, n)
        best = err.argmin(0)
        pick = best * n + torch.arange(n, device=x.device)
        return rec[pick], err.min(0).values


class DefenseGANDetector(Detector):
    """Score: the per-pixel squared error of the projection onto the generator's range."""

    def __init__(self, generator: Generator, projection: Projection = Projection(), seed: int | None = 0) -> None:
        super().__init__()
        self.generator, self.projection, self.seed = generator.eval(), projection, seed

    @property
    def search_steps(self) -> int:
        return self.projection.steps

    def score(self, x: torch.Tensor) -> torch.Tensor:
        return project(self.generator, x, self.projection, self.seed, self.step_progress)[1]

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return project(self.generator, x, self.projection, self.seed, self.step_progress)[0]

    def score_reconstruction(self, x: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        return (x - r).pow(2).flatten(1).mean(1)

    def adaptive_score(self, x: torch.Tensor) -> torch.Tensor:
        """The same score with G(z*) held fixed, so it has a gradient in x (BPDA through the latent search)."""
        rec = project(self.generator, x.detach(), self.projection, self.seed)[0]
        return (x - rec).pow(2).flatten(1).mean(1)


class DefenseGANReconstruction(Defense):
    """G(z*) in place of the input: random restarts make it randomised, the latent search non-differentiable
    (BPDA: identity)."""

    differentiable = False
    randomized = True

    def __init__(self, generator: Generator, projection: Projection = Projection()) -> None:
        super().__init__()
        self.generator, self.projection = generator.eval(), projection

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return project(self.generator, x, self.projection)[0]


def _fit_gan(detector: DefenseGANDetector, clean: torch.Tensor, *, epochs: int, seed: int, device,
             gan_lr: float = 1e-4, progress: Callable[[str, int, int], None] | None = None, **_) -> dict:
    """``epochs`` counts passes of the generator's batches (64 images) over ``clean``."""
    return {"wasserstein": train_wgan_gp(detector.generator, clean, iterations=max(1, epochs * len(clean) // 64),
                                         lr=gan_lr, seed=seed, device=device, progress=progress)}


@register_detector("defense-gan", paper="Defense-GAN (Samangouei et al. 2018), reconstruction-error detector",
                   fit=_fit_gan)
def defense_gan(classifier: nn.Module, image_shape: tuple[int, int, int], *, projection: Projection = Projection(),
                seed: int | None = 0, **_) -> DefenseGANDetector:
    return DefenseGANDetector(Generator(tuple(image_shape)), projection, seed)
