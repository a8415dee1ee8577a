"""Single-step gradient-sign attacks."""

from __future__ import annotations

import torch

from advshield.attacks.base import Attack, Norm, check_linf_eps, loss_gradient, register_attack
from advshield.errors import InputError


@register_attack("fgsm", norm="linf", family="fast-gradient")
class FGSM(Attack):
    """Fast Gradient Sign Method: x + eps * sign(grad_x loss).

    Paper: Goodfellow et al. 2015, "Explaining and Harnessing Adversarial Examples".
    Norm: L-inf. Defaults: eps = 0.3 (the MNIST value of CRU-Net and DIR).
    """

    name, norm = "fgsm", Norm.LINF

    def __init__(self, eps: float = 0.3) -> None:
        self.eps = check_linf_eps(eps)

    def perturb(self, surface, x, labels, target, generator):
        _, grad, _ = loss_gradient(surface, x, labels, target)
        return (x + self.eps * grad.sign()).clamp(0, 1)


@register_attack("rfgsm", norm="linf", family="fast-gradient")
class RFGSM(Attack):
    """R-FGSM: a random sign step of size alpha, then a gradient-sign step of eps - alpha.

    Paper: Tramer et al. 2018, "Ensemble Adversarial Training", Eq. 7.
    Norm: L-inf. Defaults: eps = 0.3, alpha = eps / 2.
    """

    name, norm, randomized = "rfgsm", Norm.LINF, True

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
