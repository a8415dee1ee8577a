"""Adaptive attack on a classifier guarded by a detector (Carlini & Wagner 2017, "Adversarial examples are
not easily detected", Sec. 5: one loss for both goals).

Each image minimises, by L-inf projected sign-gradient steps within ``eps``,

    max(Z_y - max_{j != y} Z_j, -kappa) + c * max(s(x') / tau - 1, 0)

(Z the classifier's logits, s the detector's score, tau its calibrated threshold): be misclassified while the
score stays under the threshold. Several constants c are tried; an image counts as evading when some
iterate is misclassified and not flagged. Detectors whose score has no useful gradient provide
``adaptive_score`` (Defense-GAN: the latent search held fixed, BPDA).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from advshield.detectors.base import Detector
from advshield.errors import InputError


@dataclass(frozen=True)
class JointAttack:
    eps: float = 0.3
    steps: int = 100
    stepsize: float = 0.01
    constants: tuple[float, ...] = (1.0, 10.0, 100.0)
    kappa: float = 0.0

    def __post_init__(self) -> None:
        if not 0 < self.eps <= 1 or self.steps < 1 or self.stepsize <= 0 or not self.constants:
            raise InputError(f"joint attack needs 0 < eps <= 1, steps >= 1, stepsize > 0 and constants: {self}")


def _margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    true = logits.gather(1, y[:, None]).squeeze(1)
    other = logits.masked_fill(nn.functional.one_hot(y, logits.shape[1]).bool(), float("-inf")).amax(1)
    return true - other


def joint_attack(classifier: nn.Module, detector: Detector, x: torch.Tensor, y: torch.Tensor,
                 cfg: JointAttack = JointAttack()) -> tuple[torch.Tensor, torch.Tensor]:
    """Returns (adversarial images, evaded mask): misclassified and under the detector's threshold."""
    tau = detector.threshold
    if not tau == tau:  # NaN
        raise InputError("the detector must be calibrated before an adaptive attack")
    score = getattr(detector, "adaptive_score", detector.score)
    best, evaded = x.clone(), torch.zeros(len(x), dtype=torch.bool, device=x.device)
    scale = abs(tau) if tau != 0 else 1.0
    for c in cfg.constants:
        adv = x.clone()
        for _ in range(cfg.steps):
            adv.requires_grad_(True)
            with torch.enable_grad():
                logits, s = classifier(adv), score(adv)
                loss = _margin(logits, y).clamp_min(-cfg.kappa) + c * ((s - tau) / scale).clamp_min(0)
                grad, = torch.autograd.grad(loss.sum(), adv)
            with torch.no_grad():
                ok = (logits.argmax(1) != y) & (s <= tau) & ~evaded
                best[ok], evaded = adv.detach()[ok], evaded | ok
                adv = torch.min(torch.max(adv - cfg.stepsize * grad.sign(), x - cfg.eps), x + cfg.eps).clamp(0, 1)
        with torch.no_grad():  # the last iterate too
            ok = (classifier(adv).argmax(1) != y) & (detector.score(adv) <= tau) & ~evaded
            best[ok], evaded = adv[ok], evaded | ok
    return best, evaded
