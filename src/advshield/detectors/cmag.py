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
paper any FPR on held-out clean data (``calibrate_fpr``). Training reports each batch to an optional
progress callback.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from kornia.metrics import ssim as kornia_ssim
from torch import nn
from torch.nn import functional as F

from advshield.defenses.restorer import clip01
from advshield.detectors.base import Detector, register_detector


def _up_decoder(cin: int, out_channels: int, size: int, width: int = 32) -> nn.Sequential:
    """1x1 to ``width`` channels, then (upsample, 3x3 conv, ReLU) until ``size``, then a sigmoid image."""
    return nn.Sequential(nn.Conv2d(cin, width, 1), nn.ReLU(), _Resize(size), nn.Conv2d(width, width, 3, padding=1),
                         nn.ReLU(), nn.Conv2d(width, width, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(width, out_channels, 3, padding=1), nn.Sigmoid())


class LogitReconstructor(nn.Module):
    """LR: distilled probabilities -> image, a per-class template refined by a residual conv stack.

    With T = 1/1000 (Eq. 5) the input is one-hot, so the best LR can do is one image per class.
    A conv decoder behind a sigmoid fell into the all-dark image here (loss 0.3012 on MNIST, every
    seed), a minimum the class means (0.274) beat; so the templates start at the class means of the
    training images (:meth:`init_templates`) and the output is clipped straight-through, not squashed.
    """

    def __init__(self, num_classes: int, image_shape: tuple[int, int, int], width: int = 32) -> None:
        super().__init__()
        c, h, w = image_shape
        self.templates = nn.Linear(num_classes, c * h * w, bias=False)
        self.unflatten = nn.Unflatten(1, (c, h, w))
        self.refine = nn.Sequential(nn.Conv2d(c, width, 3, padding=1), nn.LeakyReLU(0.1),
                                    nn.Conv2d(width, width, 3, padding=1), nn.LeakyReLU(0.1),
                                    nn.Conv2d(width, c, 3, padding=1))
        nn.init.zeros_(self.refine[-1].weight)
        nn.init.zeros_(self.refine[-1].bias)

    @torch.no_grad()
    def init_templates(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        """Template k = mean of the images the classifier assigns to class k (0.5 where there is none)."""
        flat = images.flatten(1)
        for k in range(self.templates.weight.shape[1]):
            pick = flat[labels == k]
            self.templates.weight[:, k] = pick.mean(0) if len(pick) else 0.5

    def forward(self, probs: torch.Tensor) -> torch.Tensor:
        t = self.unflatten(self.templates(probs))
        return clip01(t + self.refine(t), self.training)


class _Resize(nn.Module):
    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)


class GlobalReconstructor(nn.Module):
    """GR: refines its input image z in logit space, sigmoid(logit(z) + body(z)).

    The paper gives no layer list for GR. A plain conv stack ending in a sigmoid collapsed here to an
    all-dark image (its loss froze at 0.3015 on MNIST from the third epoch: the Hadamard product of two
    sigmoid images is darker than either, and the sigmoid saturates). Starting from the identity
    (zero-initialised last conv), LeakyReLU units and dilated convs (receptive field 15 px) fix that.
    """

    def __init__(self, channels: int, width: int = 32) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, width, 3, padding=1), nn.LeakyReLU(0.1),
                                  nn.Conv2d(width, width, 3, padding=2, dilation=2), nn.LeakyReLU(0.1),
                                  nn.Conv2d(width, width, 3, padding=4, dilation=4), nn.LeakyReLU(0.1),
                                  nn.Conv2d(width, channels, 3, padding=1))
        nn.init.zeros_(self.body[-1].weight)
        nn.init.zeros_(self.body[-1].bias)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(torch.logit(z.clamp(1e-4, 1 - 1e-4)) + self.body(z))


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
            probe = torch.zeros(1, c, h, h, device=next(classifier.parameters()).device)  # the classifier's device
            fm = classifier.features(probe, [self.layer])[self.layer]
        self.temperature, self.combine = temperature, combine
        self.fmr = _up_decoder(fm.shape[1], c, h, width)
        self.lr = LogitReconstructor(classifier.num_classes, tuple(classifier.input_shape), width)
        self.gr = GlobalReconstructor(c, width)

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
               mu: float = 0.5, seed: int = 0, device: torch.device | str = "cpu",
               progress: Callable[[str, int, int], None] | None = None) -> dict[str, list[float]]:
    """FMR and LR on Eqs. 12-13, then GR on Eq. 14 with them frozen (Algorithm 1); returns epoch losses.
    ``progress(what, done, total)`` after each batch (what: the phase and epoch)."""
    g = torch.Generator().manual_seed(seed)
    model.to(device)
    with torch.no_grad():  # LR's class templates start at the class means (see LogitReconstructor)
        preds = torch.cat([model.classifier(clean[i:i + 500].to(device)).argmax(1).cpu()
                           for i in range(0, len(clean), 500)])
    model.lr.init_templates(clean.to(device), preds.to(device))
    history: dict[str, list[float]] = {"fmr+lr": [], "gr": []}
    for phase, params in (("fmr+lr", list(model.fmr.parameters()) + list(model.lr.parameters())),
                          ("gr", list(model.gr.parameters()))):
        opt = torch.optim.Adam(params, lr=lr)
        for epoch in range(epochs):
            order, total = torch.randperm(len(clean), generator=g), 0.0
            for step, i in enumerate(range(0, len(clean), batch_size)):
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
                if progress is not None:
                    progress(f"{phase} epoch {epoch + 1}/{epochs}", step + 1, math.ceil(len(clean) / batch_size))
            history[phase].append(total / len(clean))
    return history


class CMAGDetector(Detector):
    """Score = 1 - SSIM(x, GR(x)) (``criterion="ssim"``) or MSE(x, GR(x)) (``"l2"``); higher = more suspicious."""

    def __init__(self, model: CMAG, criterion: str = "ssim") -> None:
        super().__init__()
        if criterion not in ("ssim", "l2"):
            raise ValueError(f"criterion must be ssim or l2, got {criterion!r}")
        self.model, self.criterion = model, criterion

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def score_reconstruction(self, x: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        if self.criterion == "l2":
            return (r - x).pow(2).flatten(1).mean(1)
        return 1 - kornia_ssim(r, x, 7).flatten(1).mean(1)


def _fit_cmag(detector: CMAGDetector, clean: torch.Tensor, *, epochs: int, seed: int, device,
              progress: Callable[[str, int, int], None] | None = None, **_) -> dict:
    return train_cmag(detector.model, clean, epochs=epochs, seed=seed, device=device, progress=progress)


@register_detector("cmag-ssim", paper="CMAG (cmag-detection.txt, Algorithm 2), SSIM criterion", fit=_fit_cmag)
def cmag_ssim(classifier: nn.Module, image_shape: tuple[int, int, int], *, cmag_combine: str = "attention",
              **_) -> CMAGDetector:
    return CMAGDetector(CMAG(classifier, combine=cmag_combine), "ssim")


@register_detector("cmag-l2", paper="CMAG (cmag-detection.txt, Algorithm 2), L2 criterion", fit=_fit_cmag)
def cmag_l2(classifier: nn.Module, image_shape: tuple[int, int, int], *, cmag_combine: str = "attention",
            **_) -> CMAGDetector:
    return CMAGDetector(CMAG(classifier, combine=cmag_combine), "l2")
