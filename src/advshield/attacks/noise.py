"""Random-noise baseline."""

from __future__ import annotations

import torch

from advshield.attacks.base import Attack, Norm, check_eps, check_linf_eps, register_attack


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


@register_attack("noise-l2", norm="l2", family="noise")
class L2Noise(Attack):
    """x + eps * u, u uniform on the unit L2 sphere, clipped to [0, 1]: the L2 counterpart of uniform noise.

    Not an attack on the model (no gradient); the reference any real L2 attack must beat.
    Norm: L2. Defaults: eps = 2.0 (as pgd-l2).
    """

    name, norm, randomized, supports_targeted = "noise-l2", Norm.L2, True, False

    def __init__(self, eps: float = 2.0) -> None:
        self.eps = check_eps(eps)

    def perturb(self, surface, x, labels, target, generator):
        noise = torch.randn(x.shape, generator=generator, device=x.device)
        return (x + self.eps * noise / noise.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)).clamp(0, 1)
