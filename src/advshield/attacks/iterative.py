"""Iterative gradient attacks with a fixed budget: BIM / i-FGSM, PGD (L-inf, L2), MI-FGSM."""

from __future__ import annotations

import torch

from advshield.attacks.base import (Attack, Norm, check_eps, check_linf_eps, check_positive_int, loss_gradient,
                                    register_attack, succeeded)
from advshield.errors import InputError


def _l2(t: torch.Tensor) -> torch.Tensor:
    return t.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *([1] * (t.ndim - 1)))


def _project(delta: torch.Tensor, eps: float, norm: Norm) -> torch.Tensor:
    if norm is Norm.LINF:
        return delta.clamp(-eps, eps)
    return delta * (eps / _l2(delta)).clamp(max=1.0)


def _random_start(x: torch.Tensor, eps: float, norm: Norm, generator: torch.Generator) -> torch.Tensor:
    if norm is Norm.LINF:
        return (torch.rand(x.shape, generator=generator, device=x.device) * 2 - 1) * eps
    # Uniform in the L2 ball: Gaussian direction, radius eps * u^(1/d).
    direction = torch.randn(x.shape, generator=generator, device=x.device)
    d = x[0].numel()
    radius = eps * torch.rand(x.shape[0], generator=generator, device=x.device) ** (1.0 / d)
    return direction / _l2(direction) * radius.view(-1, *([1] * (x.ndim - 1)))


class IterativeAttack(Attack):
    """Shared loop: steps of size alpha along the (normalised) gradient, projected onto the eps-ball.

    ``early_stop`` freezes samples as soon as they are fooled (faster, and the
    examples then sit just past the decision boundary; under ``transfer-feedback``
    "fooled" means the victim's label, not the substitute's); ``restarts`` keeps,
    per sample, the first restart that fools the surface.
    """

    detector_aware = reads_detector_switch = True

    momentum: float | None = None

    def __init__(self, eps: float, steps: int, rel_stepsize: float | None, abs_stepsize: float | None,
                 random_start: bool, restarts: int, early_stop: bool, norm: Norm) -> None:
        self.eps = check_linf_eps(eps) if norm is Norm.LINF else check_eps(eps)
        self.steps = check_positive_int(steps, "steps")
        self.restarts = check_positive_int(restarts, "restarts")
        if abs_stepsize is None and (rel_stepsize is None or rel_stepsize <= 0):
            raise InputError("give a positive rel_stepsize or abs_stepsize")
        self.stepsize = check_eps(abs_stepsize, "abs_stepsize") if abs_stepsize is not None else rel_stepsize * self.eps
        self.random_start, self.early_stop = bool(random_start), bool(early_stop)
        self._norm = norm

    def _direction(self, grad: torch.Tensor, velocity: torch.Tensor | None):
        if self.momentum is not None:  # MI-FGSM, Dong et al. 2018 Eq. 6: g <- mu g + grad / ||grad||_1
            l1 = grad.abs().flatten(1).sum(1).clamp_min(1e-12).view(-1, *([1] * (grad.ndim - 1)))
            velocity = self.momentum * velocity + grad / l1
            grad = velocity
        step = grad.sign() if self._norm is Norm.LINF else grad / _l2(grad)
        return step, velocity

    def _one_run(self, surface, x, labels, target, generator):
        delta = _random_start(x, self.eps, self._norm, generator) if self.random_start else torch.zeros_like(x)
        adv = (x + delta).clamp(0, 1)
        velocity = torch.zeros_like(x) if self.momentum is not None else None
        active = torch.arange(len(x), device=x.device)
        for _ in range(self.steps):
            if len(active) == 0:
                break
            xa, ya = adv[active], labels[active]
            ta = target[active] if target is not None else None
            _, grad, logits = loss_gradient(surface, xa, ya, ta)
            # Freeze a sample once it succeeds: with early_stop, and always against a detector, where the next
            # step may trip it again (the joint objective's hinges sit at the threshold and the kappa margin).
            if self.early_stop or getattr(surface, "detector", None) is not None:
                keep = ~succeeded(surface, xa, ya, ta, logits)
                active, xa, ya, grad = active[keep], xa[keep], ya[keep], grad[keep]
                ta = ta[keep] if ta is not None else None
                if len(active) == 0:
                    break
            va = velocity[active] if velocity is not None else None
            step, va = self._direction(grad, va)
            if velocity is not None:
                velocity[active] = va
            new = x[active] + _project(xa + self.stepsize * step - x[active], self.eps, self._norm)
            adv[active] = new.clamp(0, 1)
        return adv

    def perturb(self, surface, x, labels, target, generator):
        best = self._one_run(surface, x, labels, target, generator)
        for _ in range(self.restarts - 1):
            done = succeeded(surface, best, labels, target)
            if done.all():
                break
            todo = (~done).nonzero().squeeze(1)
            t = target[todo] if target is not None else None
            best[todo] = self._one_run(surface, x[todo], labels[todo], t, generator)
        return best


@register_attack("bim", norm="linf", family="iterative")
class BIM(IterativeAttack):
    """Basic Iterative Method / i-FGSM: repeated FGSM steps, clipped to the eps-ball.

    Paper: Kurakin et al. 2017, "Adversarial Examples in the Physical World".
    Norm: L-inf. Defaults (foolbox 3): eps = 0.3, steps = 10, step = 0.2 * eps, no random start.
    """

    name, norm = "bim", Norm.LINF

    def __init__(self, eps: float = 0.3, steps: int = 10, rel_stepsize: float = 0.2, abs_stepsize: float | None = None,
                 restarts: int = 1, early_stop: bool = False) -> None:
        super().__init__(eps, steps, rel_stepsize, abs_stepsize, False, restarts, early_stop, Norm.LINF)


@register_attack("pgd", norm="linf", family="iterative")
class PGD(IterativeAttack):
    """Projected Gradient Descent, L-inf: BIM from a uniform random start in the eps-ball.

    Paper: Madry et al. 2018, "Towards Deep Learning Models Resistant to Adversarial Attacks".
    Norm: L-inf. Defaults (Madry's MNIST setting): eps = 0.3, steps = 40, step = 0.01, random start, 1 restart.
    """

    name, norm, randomized = "pgd", Norm.LINF, True

    def __init__(self, eps: float = 0.3, steps: int = 40, rel_stepsize: float = 0.01 / 0.3,
                 abs_stepsize: float | None = None, random_start: bool = True, restarts: int = 1,
                 early_stop: bool = False) -> None:
        super().__init__(eps, steps, rel_stepsize, abs_stepsize, random_start, restarts, early_stop, Norm.LINF)


@register_attack("pgd-l2", norm="l2", family="iterative")
class PGDL2(IterativeAttack):
    """Projected Gradient Descent, L2: normalised-gradient steps projected onto the L2 ball.

    Paper: Madry et al. 2018. Norm: L2. Defaults (foolbox 3): eps = 2.0, steps = 50, step = 0.025 * eps, random start.
    """

    name, norm, randomized = "pgd-l2", Norm.L2, True

    def __init__(self, eps: float = 2.0, steps: int = 50, rel_stepsize: float = 0.025,
                 abs_stepsize: float | None = None, random_start: bool = True, restarts: int = 1,
                 early_stop: bool = False) -> None:
        super().__init__(eps, steps, rel_stepsize, abs_stepsize, random_start, restarts, early_stop, Norm.L2)


@register_attack("mifgsm", norm="linf", family="iterative")
class MIFGSM(IterativeAttack):
    """Momentum Iterative FGSM: sign steps along an accumulated, L1-normalised gradient.

    Paper: Dong et al. 2018, "Boosting Adversarial Attacks with Momentum" (propagation paper, Eq. 3).
    Norm: L-inf. Defaults: eps = 0.3, steps = 10, step = eps / steps, decay mu = 1.0.
    """

    name, norm = "mifgsm", Norm.LINF

    def __init__(self, eps: float = 0.3, steps: int = 10, decay: float = 1.0, abs_stepsize: float | None = None,
                 early_stop: bool = False) -> None:
        if decay < 0:
            raise InputError(f"decay must be >= 0, got {decay}")
        super().__init__(eps, steps, 1.0 / steps, abs_stepsize, False, 1, early_stop, Norm.LINF)
        self.momentum = float(decay)
