"""Single-step gradient-sign attacks."""

from __future__ import annotations

import torch

from advshield.attacks.base import (Attack, Norm, check_linf_eps, loss_gradient, register_attack, succeeded)
from advshield.errors import InputError


@register_attack("fgsm", norm="linf", family="fast-gradient")
class FGSM(Attack):
    """Fast Gradient Sign Method: x + eps * sign(grad_x loss).

    Paper: Goodfellow et al. 2015, "Explaining and Harnessing Adversarial Examples".
    Norm: L-inf. Defaults: eps = 0.3 (the MNIST value of CRU-Net and DIR), search = 0.
    ``search`` = k > 0 tries eps * i / k for i = 1..k along the one gradient and keeps, per
    sample, the smallest that fools (foolbox 1's GradientSignAttack epsilon sweep, which the
    propagation paper used); samples never fooled keep eps.
    """

    name, norm, detector_aware, reads_detector_switch = "fgsm", Norm.LINF, True, True

    def __init__(self, eps: float = 0.3, search: int = 0) -> None:
        self.eps = check_linf_eps(eps)
        if not isinstance(search, int) or search < 0:
            raise InputError(f"search must be a non-negative integer, got {search!r}")
        self.search = search

    def perturb(self, surface, x, labels, target, generator):
        _, grad, _ = loss_gradient(surface, x, labels, target)
        step = grad.sign()
        adv = (x + self.eps * step).clamp(0, 1)
        todo = torch.arange(len(x), device=x.device)
        for i in range(1, self.search):  # the last candidate, eps itself, is the default
            cand = (x[todo] + self.eps * i / self.search * step[todo]).clamp(0, 1)
            hit = succeeded(surface, cand, labels[todo], None if target is None else target[todo])
            adv[todo[hit]] = cand[hit]
            todo = todo[~hit]
            if len(todo) == 0:
                break
        return adv


@register_attack("rfgsm", norm="linf", family="fast-gradient")
class RFGSM(Attack):
    """R-FGSM: a random sign step of size alpha, then a gradient-sign step of eps - alpha.

    Paper: Tramer et al. 2018, "Ensemble Adversarial Training", Eq. 7.
    Norm: L-inf. Defaults: eps = 0.3, alpha = eps / 2.
    """

    name, norm, randomized = "rfgsm", Norm.LINF, True
    detector_aware = reads_detector_switch = True

    def __init__(self, eps: float = 0.3, alpha: float | None = None) -> None:
        self.eps = check_linf_eps(eps)
        self.alpha = self.eps / 2 if alpha is None else check_linf_eps(alpha)
        if self.alpha > self.eps:
            raise InputError(f"alpha ({self.alpha}) must not exceed eps ({self.eps})")

    def perturb(self, surface, x, labels, target, generator):
        noise = torch.randn(x.shape, generator=generator, device=x.device)
        x1 = (x + self.alpha * noise.sign()).clamp(0, 1)
        _, grad, _ = loss_gradient(surface, x1, labels, target)
        return (x1 + (self.eps - self.alpha) * grad.sign()).clamp(0, 1)
