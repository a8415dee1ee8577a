"""CMAG: cascade model-aware generative detector (cmag-detection.txt, Sec. 3, Algorithms 1-2, Eqs. 5, 12-14).

* FMR maps the target's last convolutional feature maps f_fm(x) back to the image;
* LR maps the distilled probabilities softmax(f(x) / T) (Eq. 5) to the image;
* GR reconstructs x' from the Hadamard product FMR(.) (.) LR(.) ("attention"; ``combine="average"`` is
  the weighted-average ablation of Fig. 4);
* losses mu * ||r - x||^2 + (1 - mu) * (1 - SSIM(r, x)), mu = 0.5 (Eqs. 12-14; the printed "+ SSIM"
  would reward dissimilarity, so we use 1 - SSIM); Adam, lr 1e-3; FMR and LR first, then GR with
  them frozen (Algorithm 1).
Scores: 1 - SSIM(x, x') (``criterion="ssim"``) or the mean squared error (``"l2"``); Algorithm 2's
thresholds are the extremes over legitimate training examples (``calibrate_max``), and beyond the
paper any FPR on held-out clean data (``calibrate_fpr``).
"""

from __future__ import annotations

import torch
from kornia.metrics import ssim as kornia_ssim
from torch import nn
from torch.nn import functional as F

from advshield.detectors.base import Detector, register_detector


def _up_decoder(cin: int, out_channels: int, size: int, width: int = 32) -> nn.Sequential:
    """1x1 to ``width`` channels, then (upsample, 3x3 conv, ReLU) until ``size``, then a sigmoid image."""
    return nn.Sequential(nn.Conv2d(cin, width, 1), nn.ReLU(), _Resize(size), nn.Conv2d(width, width, 3, padding=1),
                         nn.ReLU(), nn.Conv2d(width, width, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(width, out_channels, 3, padding=1), nn.Sigmoid())


class _Resize(nn.Module):
    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)


class CMAG(nn.Module):
    def __init__(self, classifier: nn.Module, feature_layer: str | None = None, temperature: float = 1e-3,
                 width: int = 32, combine: str = "attention") -> None:
        super().__init__()
        if combine not in ("attention", "average"):
            raise ValueError(f"combine must be attention or average, got {combine!r}")
        self.classifier = classifier.eval().requires_grad_(False)
        self.layer = feature_layer or getattr(classifier, "last_conv", None)
        if self.layer is None:
            raise ValueError("name the classifier's feature layer (its last convolutional stage)")
        c, h, _ = classifier.input_shape
        with torch.no_grad():
            fm = classifier.features(torch.zeros(1, c, h, h), [self.layer])[self.layer]
        self.temperature, self.combine = temperature, combine
        self.fmr = _up_decoder(fm.shape[1], c, h, width)
        k = classifier.num_classes
        self.lr = nn.Sequential(nn.Linear(k, width * 7 * 7), nn.ReLU(), nn.Unflatten(1, (width, 7, 7)),
                                _up_decoder(width, c, h, width))
        self.gr = nn.Sequential(nn.Conv2d(c, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, width, 3, padding=1),
                                nn.ReLU(), nn.Conv2d(width, c, 3, padding=1), nn.Sigmoid())

    def branches(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits_stage = self.classifier.feature_names[-1]
        out = self.classifier.features(x, [self.layer, logits_stage])  # one pass gives both inputs
        probs = F.softmax(out[logits_stage] / self.temperature, 1)  # distillation, Eq. 5
        return self.fmr(out[self.layer]), self.lr(probs)

    def merge(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """GR's input: the Hadamard product (attention) or the 0.5/0.5 weighted average (Fig. 4 ablation)."""
        return a * b if self.combine == "attention" else 0.5 * (a + b)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gr(self.merge(*self.branches(x)))


def cmag_loss(r: torch.Tensor, x: torch.Tensor, mu: float = 0.5) -> torch.Tensor:
    """Eqs. 12-14: mu * ||r - x||^2 (per-pixel mean) + (1 - mu) * (1 - SSIM)."""
    return mu * F.mse_loss(r, x) + (1 - mu) * (1 - kornia_ssim(r, x, 7).mean())


def train_cmag(model: CMAG, clean: torch.Tensor, *, epochs: int = 10, batch_size: int = 200, lr: float = 1e-3,
               mu: float = 0.5, seed: int = 0, device: torch.device | str = "cpu") -> dict[str, list[float]]:
    """FMR and LR on Eqs. 12-13, then GR on Eq. 14 with them frozen (Algorithm 1); returns epoch losses."""
    g = torch.Generator().manual_seed(seed)
    model.to(device)
    history: dict[str, list[float]] = {"fmr+lr": [], "gr": []}
    for phase, params in (("fmr+lr", list(model.fmr.parameters()) + list(model.lr.parameters())),
                          ("gr", list(model.gr.parameters()))):
        opt = torch.optim.Adam(params, lr=lr)
        for _ in range(epochs):
            order, total = torch.randperm(len(clean), generator=g), 0.0
            for i in range(0, len(clean), batch_size):
                x = clean[order[i:i + batch_size]].to(device)
                if phase == "fmr+lr":
                    a, b = model.branches(x)
                    loss = cmag_loss(a, x, mu) + cmag_loss(b, x, mu)
                else:
                    with torch.no_grad():
                        a, b = model.branches(x)
                    loss = cmag_loss(model.gr(model.merge(a, b)), x, mu)
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(x)
            history[phase].append(total / len(clean))
    return history


@register_detector("cmag", paper="CMAG (cmag-detection.txt, Algorithm 2)")
class CMAGDetector(Detector):
    """Score = 1 - SSIM(x, GR(x)) (``criterion="ssim"``) or MSE(x, GR(x)) (``"l2"``); higher = more suspicious."""

    def __init__(self, model: CMAG, criterion: str = "ssim") -> None:
        super().__init__()
        if criterion not in ("ssim", "l2"):
            raise ValueError(f"criterion must be ssim or l2, got {criterion!r}")
        self.model, self.criterion = model, criterion

    def score(self, x: torch.Tensor) -> torch.Tensor:
        r = self.model(x)
        if self.criterion == "l2":
            return (r - x).pow(2).flatten(1).mean(1)
        return 1 - kornia_ssim(r, x, 7).flatten(1).mean(1)
