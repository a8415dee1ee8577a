"""The attack objective and success tests every attack shares: the per-sample loss and its input gradient
(with the joint objective against a detector), and whether an image fools the surface unflagged."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def attack_loss(logits: torch.Tensor, labels: torch.Tensor, target: torch.Tensor | None = None) -> torch.Tensor:
    """Per-sample CE to maximise (untargeted) or the negative CE to the target (targeted)."""
    if target is None:
        return F.cross_entropy(logits, labels, reduction="none")
    return -F.cross_entropy(logits, target, reduction="none")


# The joint objective against a detector: Carlini & Wagner 2017 ("Adversarial examples are not easily detected",
# Sec. 5), minimise max(margin, -kappa) + c * hinge(detector score over its threshold). The classification term
# vanishes once the image is misclassified by kappa, so it cannot drown the detector's; no single c suits every
# image, so :func:`craft_batch` retries the images a weight left unbroken with the next, larger one.
DETECTOR_KAPPA = 0.1  # logits: the image stays misclassified while the detector term pulls it under the threshold
DETECTOR_WEIGHTS = (1.0, 10.0, 100.0)  # c, in units of the threshold (Surface.penalty is the relative excess)
# After the weights, attacks that ascend loss_gradient (Attack.reads_detector_switch) run once more with the
# per-image switch: the attack's own loss until fooled, then the hinge alone (see loss_gradient).
# Names the objective in the content hash of adversarial sets crafted against a detector (a new objective,
# a new set: sets crafted with the earlier per-image switch alone are never reused).
DETECTOR_OBJECTIVE = (f"cw2017-hinge kappa={DETECTOR_KAPPA:g} c={','.join(f'{c:g}' for c in DETECTOR_WEIGHTS)} "
                      "relative, then switch")


def fooling_margin(logits: torch.Tensor, labels: torch.Tensor, target: torch.Tensor | None = None) -> torch.Tensor:
    """Per sample, > 0 while the attack has not succeeded: z_y - max_{j != y} z_j (untargeted), or
    max_{j != t} z_j - z_t (targeted)."""
    cls = labels if target is None else target
    onehot = F.one_hot(cls, logits.shape[1]).bool()
    own = logits.gather(1, cls[:, None]).squeeze(1)
    other = logits.masked_fill(onehot, float("-inf")).amax(1)
    return own - other if target is None else other - own


def joint_detector_loss(logits: torch.Tensor, labels: torch.Tensor, target: torch.Tensor | None,
                        penalty: torch.Tensor, kappa: float = DETECTOR_KAPPA) -> torch.Tensor:
    """Per-sample loss to maximise against classifier + detector: -(max(margin + kappa, 0) + penalty), where
    ``penalty`` is the surface's weighted detector hinge (Carlini & Wagner 2017, Sec. 5)."""
    return -(torch.relu(fooling_margin(logits, labels, target) + kappa) + penalty)


def loss_gradient(surface: nn.Module, x: torch.Tensor, labels: torch.Tensor, target: torch.Tensor | None = None,
                  loss_fn=attack_loss):
    """(per-sample loss, d loss / d x, logits) of the attack objective ``loss_fn(logits, labels, target)``
    (default: :func:`attack_loss`). On a surface with a detector the objective is :func:`joint_detector_loss`
    instead, whatever ``loss_fn`` (so APGD-CE and APGD-DLR ascend the same loss against a detector, and APGD-T's
    targets act as restarts), or, on a surface with ``detector_switch`` set, the per-image switch."""
    x = x.detach().requires_grad_(True)
    logits = surface(x)
    penalty = surface.penalty(x) if hasattr(surface, "penalty") else None
    if penalty is None:
        loss = loss_fn(logits, labels, target)
    elif getattr(surface, "detector_switch", False):
        # The per-image switch: the attack's own loss until the image is fooled, then minus the hinge alone.
        # Weaker than the hinge sum on CMAG, stronger on a detector that wants a confident misclassification.
        fooled = is_fooled(logits, labels, target)
        loss = torch.where(fooled & (penalty > 0), -penalty, loss_fn(logits, labels, target))
    else:
        loss = joint_detector_loss(logits, labels, target, penalty)
    (grad,) = torch.autograd.grad(loss.sum(), x)
    return loss.detach(), grad, logits.detach()


def judged_logits(surface: nn.Module, x: torch.Tensor, logits: torch.Tensor | None = None) -> torch.Tensor:
    """Logits that decide whether ``x`` fools: the surface's judge (transfer-feedback), else the surface."""
    judge = getattr(surface, "judge", None)
    if judge is None and logits is not None:
        return logits
    with torch.no_grad():
        return (judge if judge is not None else surface)(x)


def is_fooled(logits: torch.Tensor, labels: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
    pred = logits.argmax(1)
    return pred == target if target is not None else pred != labels


def succeeded(surface: nn.Module, x: torch.Tensor, labels: torch.Tensor, target: torch.Tensor | None,
              logits: torch.Tensor | None = None) -> torch.Tensor:
    """Per sample: ``x`` fools (on the judge, see :func:`judged_logits`) and the surface's detector, if any,
    does not flag it. What an attack's early exit should test."""
    hit = is_fooled(judged_logits(surface, x, logits), labels, target)
    if getattr(surface, "detector", None) is not None:
        with torch.no_grad():
            hit = hit & ~(surface.penalty(x) > 0)
    return hit
