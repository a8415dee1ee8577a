"""MagNet (Meng & Chen 2017; CMAG's baseline): autoencoders trained on clean data only.

* reconstruction-error detector: score = mean |x - AE(x)|^p per image (p = 1 or 2);
* probability-divergence detector: score = JSD(softmax(f(x) / T), softmax(f(AE(x)) / T));
* reformer: AE(x) as a restoration defense (:class:`MagNetReformer`; the autoencoder of a saved detector:
  ``MagNetReformer(load_detector(path, classifier)[0].autoencoder)``).
Training reports each batch to an optional progress callback.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F

from advshield.defenses.base import Defense
from advshield.detectors.base import Detector, register_detector


class MagNetAutoencoder(nn.Module):
    """MagNet's MNIST autoencoders: conv(3x3, k) x2 around an optional avg-pool, mirrored, output through a
    sigmoid in [0, 1]; ``filters`` 3 and sigmoid activations in the paper (which trains them 100 epochs;
    ``activation="relu"`` trains in a few)."""

    def __init__(self, in_channels: int = 1, filters: int = 3, pool: bool = False, activation: str = "sigmoid"
                 ) -> None:
        super().__init__()
        act = {"sigmoid": nn.Sigmoid, "relu": nn.ReLU}[activation]
        enc: list[nn.Module] = [nn.Conv2d(in_channels, filters, 3, padding=1), act()]
        enc += [nn.AvgPool2d(2)] if pool else []
        enc += [nn.Conv2d(filters, filters, 3, padding=1), act()]
        dec: list[nn.Module] = [nn.Conv2d(filters, filters, 3, padding=1), act()]
        dec += [nn.Upsample(scale_factor=2)] if pool else []
        dec += [nn.Conv2d(filters, filters, 3, padding=1), act(), nn.Conv2d(filters, in_channels, 3, padding=1),
                nn.Sigmoid()]
        self.arch_kwargs = dict(in_channels=in_channels, filters=filters, pool=pool, activation=activation)
        self.encoder, self.decoder = nn.Sequential(*enc), nn.Sequential(*dec)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


class ReconstructionErrorDetector(Detector):
    def __init__(self, autoencoder: MagNetAutoencoder, p: int = 2) -> None:
        super().__init__()
        if p not in (1, 2):
            raise ValueError(f"p must be 1 or 2, got {p}")
        self.autoencoder, self.p = autoencoder, p

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self.autoencoder(x)

    def score_reconstruction(self, x: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        return (x - r).abs().pow(self.p).flatten(1).mean(1)


def jensen_shannon(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    m = 0.5 * (p + q)
    kl = lambda a, b: (a * (a.clamp_min(1e-12).log() - b.clamp_min(1e-12).log())).sum(1)  # noqa: E731
    return 0.5 * kl(p, m) + 0.5 * kl(q, m)


class DivergenceDetector(Detector):
    def __init__(self, autoencoder: MagNetAutoencoder, classifier: nn.Module, temperature: float = 10.0) -> None:
        super().__init__()
        self.autoencoder, self.classifier, self.temperature = autoencoder, classifier, temperature

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self.autoencoder(x)

    def score_reconstruction(self, x: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        p = F.softmax(self.classifier(x) / self.temperature, 1)
        q = F.softmax(self.classifier(r) / self.temperature, 1)
        return jensen_shannon(p, q)


class MagNetReformer(Defense):
    """MagNet's reformer: the autoencoder's reconstruction (differentiable)."""

    def __init__(self, autoencoder: MagNetAutoencoder) -> None:
        super().__init__()
        self.autoencoder = autoencoder

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.autoencoder(x)


def train_autoencoder(ae: MagNetAutoencoder, clean: torch.Tensor, *, epochs: int = 10, batch_size: int = 256,
                      lr: float = 1e-3, noise: float = 0.1, weight_decay: float = 1e-9, seed: int = 0,
                      device: torch.device | str = "cpu", progress: Callable[[str, int, int], None] | None = None
                      ) -> list[float]:
    """MagNet's recipe: MSE between AE(x + noise) and x (noise std ``noise``), Adam; returns epoch losses.
    ``progress(what, done, total)`` after each batch."""
    g = torch.Generator().manual_seed(seed)
    ae.to(device).train()
    opt = torch.optim.Adam(ae.parameters(), lr=lr, weight_decay=weight_decay)
    losses = []
    for epoch in range(epochs):
        order, total = torch.randperm(len(clean), generator=g), 0.0
        for step, i in enumerate(range(0, len(clean), batch_size)):
            x = clean[order[i:i + batch_size]].to(device)
            noisy = (x + noise * torch.randn(x.shape, generator=g).to(device)).clamp(0, 1)
            loss = F.mse_loss(ae(noisy), x)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(x)
            if progress is not None:
                progress(f"autoencoder epoch {epoch + 1}/{epochs}", step + 1, math.ceil(len(clean) / batch_size))
        losses.append(total / len(clean))
    return losses


def _fit_autoencoder(detector, clean: torch.Tensor, *, epochs: int, seed: int, device,
                     progress: Callable[[str, int, int], None] | None = None, **_) -> dict:
    return {"autoencoder": train_autoencoder(detector.autoencoder, clean, epochs=epochs, batch_size=128, lr=3e-3,
                                             seed=seed, device=device, progress=progress)}


@register_detector("magnet-error", paper="MagNet (Meng & Chen 2017), reconstruction-error detector",
                   fit=_fit_autoencoder)
def magnet_error(classifier: nn.Module, image_shape: tuple[int, int, int], **_) -> ReconstructionErrorDetector:
    return ReconstructionErrorDetector(MagNetAutoencoder(image_shape[0], activation="relu"))


@register_detector("magnet-divergence", paper="MagNet (Meng & Chen 2017), probability-divergence detector",
                   fit=_fit_autoencoder)
def magnet_divergence(classifier: nn.Module, image_shape: tuple[int, int, int], **_) -> DivergenceDetector:
    return DivergenceDetector(MagNetAutoencoder(image_shape[0], activation="relu"), classifier)
