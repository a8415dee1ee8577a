"""Random-noise baseline."""

from __future__ import annotations

import torch

from advshield.attacks.base import Attack, Norm, check_linf_eps, register_attack


@register_attack("uniform-noise", norm="linf", family="noise")
class UniformNoise(Attack):
    """x + U(-eps, eps), clipped to [0, 1]: the defense-kernel-network paper's X^rand.

    Not an attack on the model (no gradient); the reference any real attack must beat.
    Norm: L-inf. Defaults: eps = 0.3.
    """

    name, norm, randomized, supports_targeted = "uniform-noise", Norm.LINF, True, False

    def __init__(self, eps: float = 0.3) -> None:
        self.eps = check_linf_eps(eps)

    def perturb(self, surface, x, labels, target, generator):
        noise = torch.rand(x.shape, generator=generator, device=x.device) * 2 - 1
        return (x + self.eps * noise).clamp(0, 1)
