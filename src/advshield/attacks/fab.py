"""FAB: the Fast Adaptive Boundary attack (minimum-norm), targeted (FAB-T) and untargeted."""

from __future__ import annotations

import math

import torch

from advshield.attacks.norms import l2_norm, norm_and_eps
from advshield.attacks.base import Attack, Norm, check_positive_int, register_attack, succeeded
from advshield.attacks.deepfool import candidate_gradients
from advshield.errors import InputError


def project_to_hyperplane(p: torch.Tensor, w: torch.Tensor, b: torch.Tensor, norm: Norm) -> torch.Tensor:
    """The smallest ``d`` (in ``norm``) with <w, p + d> = b and p + d in [0, 1]^n, per row (FAB, Sec. 3.1).

    Moving towards the hyperplane, coordinate i can move at most u_i inside the box. In L-inf d_i =
    sign(w_i) min(lambda, u_i), in L2 d_i = sign(w_i) min(lambda |w_i|, u_i); the reached <w, d> is
    piecewise linear in lambda, so sorting the breakpoints gives lambda exactly. Where the box makes
    the hyperplane unreachable, d goes as far as the box allows.
    """
    r = b - (w * p).sum(1)  # how much <w, .> must change
    sign = torch.where(r >= 0, 1.0, -1.0)
    w, r = w * sign[:, None], r * sign  # now <w, d> must grow by r >= 0
    room = torch.where(w > 0, 1 - p, torch.where(w < 0, p, torch.zeros_like(p)))
    rate = torch.ones_like(w) if norm is Norm.LINF else w.abs()
    knee = torch.where(w != 0, room / rate.clamp_min(1e-30), torch.full_like(p, math.inf))
    knee, order = knee.sort(1)
    aw, ru = w.abs().gather(1, order), room.gather(1, order)
    rw = (aw * rate.gather(1, order))
    done = torch.cumsum(aw * ru, 1) - aw * ru  # from the coordinates already at their box edge
    slope = rw.flip(1).cumsum(1).flip(1)  # sum of |w_j| rate_j over the coordinates still moving
    reach = done + knee.nan_to_num(posinf=0) * slope
    reach = torch.where(torch.isinf(knee), torch.full_like(reach, math.inf), reach)
    k = torch.searchsorted(reach.contiguous(), r[:, None].contiguous()).clamp(max=p.shape[1] - 1)
    lam = (r[:, None] - done.gather(1, k)) / slope.gather(1, k).clamp_min(1e-30)
    lam = torch.where(reach[:, -1:] < r[:, None], torch.full_like(lam, math.inf), lam).clamp_min(0)
    d = torch.sign(w) * torch.minimum(lam * rate, room)
    return d


@register_attack("fab-t", norm="linf", family="fab")
class FABT(Attack):
    """FAB-T: targeted Fast Adaptive Boundary attack, the minimum-norm member of AutoAttack.

    Paper: Croce & Hein 2020, "Minimally distorted adversarial examples with a fast adaptive
    boundary attack" (Sec. 3, Eq. 9-10). Each step linearises the boundary to the target class,
    projects both the iterate and the original onto it (with the [0, 1] box), moves to a convex
    combination of the two (alpha <= alpha_max) extrapolated by eta, and after a success steps back
    towards the original by beta; per sample the smallest adversarial found is kept. For each of the
    top ``n_target_classes`` classes ranked by the clean logits, one run on the points not yet
    fooled (AutoAttack's FAB-T); success = misclassified. ``restarts`` > 1 adds runs from random
    starts. With ``eps`` only adversarials within eps are returned (others get the clean image);
    with eps = None every run attacks every point and the smallest adversarial found is returned.
    ``n_target_classes`` = 0: the untargeted FAB (nearest of all linearised boundaries, as DeepFool).
    With eps and ``early_stop``, a sample leaves a run as soon as it has an adversarial within eps
    (its verdict is then final; the reference keeps shrinking its norm, which AutoAttack never uses),
    and with ``parallel_targets``, once few points are left the runs of several targets share one batch.
    Norm: ``norm`` = 'linf' or 'l2'. Defaults (AutoAttack): eps = None, steps = 100, restarts = 1,
    n_target_classes = 9, alpha_max = 0.1, eta = 1.05, beta = 0.9, early_stop = True,
    parallel_targets = True.
    """

    name, randomized, supports_targeted = "fab-t", True, False

    def __init__(self, eps: float | None = None, norm: str = "linf", steps: int = 100, restarts: int = 1,
                 n_target_classes: int = 9, alpha_max: float = 0.1, eta: float = 1.05, beta: float = 0.9,
                 early_stop: bool = True, parallel_targets: bool = True) -> None:
        self.norm, self.eps = norm_and_eps(self.name, norm, eps, default=False)
        self.steps = check_positive_int(steps, "steps")
        self.restarts = check_positive_int(restarts, "restarts")
        if not isinstance(n_target_classes, int) or n_target_classes < 0:
            raise InputError(f"n_target_classes must be a non-negative integer, got {n_target_classes!r}")
        self.n_target_classes = n_target_classes
        if not 0 <= alpha_max <= 1 or eta < 1 or not 0 < beta < 1:
            raise InputError("need 0 <= alpha_max <= 1, eta >= 1 and 0 < beta < 1")
        self.alpha_max, self.eta, self.beta = float(alpha_max), float(eta), float(beta)
        self.early_stop, self.parallel_targets = bool(early_stop), bool(parallel_targets)
        self.max_rows: int | None = None  # rows per model call; None: the batch given (AutoAttack sets its own)

    def _size(self, d: torch.Tensor) -> torch.Tensor:
        return d.flatten(1).abs().amax(1) if self.norm is Norm.LINF else d.flatten(1).norm(dim=1)

    def _boundaries(self, surface, x1, labels, classes):
        """Logit differences f_k = z_k - z_y (< 0 while correct) and their gradients, (m, K) and (m, K, n)."""
        _, f, g = candidate_gradients(surface, x1, torch.cat([labels[:, None], classes], 1))
        return f, g.flatten(2)

    def _run(self, surface, x0, labels, classes, best, best_adv, start, generator, groups=None):
        """One FAB run (Sec. 3.3) on a batch; updates ``best`` / ``best_adv`` in place. ``groups`` (row ->
        point): rows attacking one point towards different targets, which leave together."""
        m, shape = len(x0), x0.shape
        x1 = x0.clone()
        if start:  # random start at half the best norm so far (reference implementation)
            radius = torch.where(torch.isfinite(best), best, torch.full_like(best, self.eps or 0.1))
            radius = torch.minimum(radius, torch.full_like(radius, self.eps or math.inf)) * 0.5
            if self.norm is Norm.LINF:
                t = torch.rand(shape, generator=generator, device=x0.device) * 2 - 1
                t = t / t.flatten(1).abs().amax(1).clamp_min(1e-12).view(-1, 1, 1, 1)
            else:
                t = torch.randn(shape, generator=generator, device=x0.device)
                t = t / (l2_norm(t) + 1e-12)
            x1 = (x0 + radius.view(-1, 1, 1, 1) * t).clamp(0, 1)
        # With eps, a sample leaves the run once it has an adversarial within eps: the verdict (robust or
        # not) cannot change, only the norm of its adversarial would shrink. Samples are independent, so
        # the others' iterates are those of the full run (tests/test_attacks_autoattack.py checks it).
        a = torch.arange(m, device=x0.device)
        for _ in range(self.steps):
            if self.eps is not None and self.early_stop:
                stop = best <= self.eps
                if groups is not None:
                    stop = torch.zeros(m, dtype=torch.bool, device=x0.device).index_fill(0, groups[stop], True)[groups]
                a = a[~stop[a]]
                if len(a) == 0:
                    break
            xa, xa0 = x1[a], x0[a]
            f, g = self._boundaries(surface, xa, labels[a], classes[a])
            flat1, flat0 = xa.flatten(1), xa0.flatten(1)
            size = (g.abs().sum(2) if self.norm is Norm.LINF else g.norm(dim=2)).clamp_min(1e-12)
            k = (f.abs() / size).argmin(1)  # the closest linearised boundary (Eq. 5)
            rows = torch.arange(len(a), device=x0.device)
            w, fk = g[rows, k], f[rows, k]
            b = (w * flat1).sum(1) - fk  # boundary: <w, z> = <w, x1> - f(x1)
            d1 = project_to_hyperplane(flat1, w, b, self.norm)
            d2 = project_to_hyperplane(flat0, w, b, self.norm)
            a1, a2 = self._size(d1).clamp_min(1e-8), self._size(d2).clamp_min(1e-8)
            alpha = (a1 / (a1 + a2)).clamp(0, self.alpha_max)[:, None]  # Eq. 10
            xa = ((1 - alpha) * (flat1 + self.eta * d1) + alpha * (flat0 + self.eta * d2)).clamp(0, 1).view(xa.shape)
            with torch.no_grad():
                fooled = succeeded(surface, xa, labels[a], None)
            if fooled.any():
                size = self._size(xa - xa0)
                better = fooled & (size < best[a])
                best[a[better]], best_adv[a[better]] = size[better], xa[better]
                xa[fooled] = xa0[fooled] + self.beta * (xa[fooled] - xa0[fooled])  # step back (Sec. 3.3)
            x1[a] = xa

    def perturb(self, surface, x, labels, target, generator):
        with torch.no_grad():
            logits = surface(x)
            todo = (~succeeded(surface, x, labels, None, logits)).nonzero().squeeze(1)
        order = logits.argsort(1, descending=True)
        n_cls = logits.shape[1]
        if self.n_target_classes == 0:  # untargeted: every other class at once
            runs = [order[:, 1:]]
        else:
            runs = [order[:, j:j + 1] for j in range(1, min(self.n_target_classes, n_cls - 1) + 1)]
        best = torch.full((len(x),), math.inf, device=x.device)
        best_adv = x.clone()
        budget = math.inf if self.eps is None else self.eps
        j = 0
        while j < len(runs):
            if self.eps is not None:  # size the next group on the points still to fool
                todo = todo[best[todo] > budget]
            # With eps, once few points are left several target runs share one batch (at most max_rows, or
            # the batch given, rows), a point leaving all its runs once one finds an adversarial within eps.
            k = 1 if self.eps is None or not self.parallel_targets else max(
                1, min(len(runs) - j, (self.max_rows or len(x)) // max(len(todo), 1)))
            chunk, j = runs[j:j + k], j + k
            for restart in range(self.restarts):
                if self.eps is not None:  # a run attacks only the points not yet fooled within eps
                    todo = todo[best[todo] > budget]
                if len(todo) == 0:
                    break
                m = len(todo)
                rows = (lambda t: t[todo].repeat(k, *([1] * (t.ndim - 1))))
                sub_best, sub_adv = rows(best), rows(best_adv)
                cls = torch.cat([c[todo] for c in chunk])
                groups = torch.arange(m, device=x.device).repeat(k) if k > 1 else None
                self._run(surface, rows(x), rows(labels), cls, sub_best, sub_adv, restart > 0, generator, groups)
                pick = sub_best.view(k, m).argmin(0)  # per point, the smallest adversarial of its runs
                cols = torch.arange(m, device=x.device)
                best[todo], best_adv[todo] = sub_best.view(k, m)[pick, cols], sub_adv.view(k, m, *x.shape[1:])[pick, cols]
        keep = best <= budget
        return torch.where(keep.view(-1, 1, 1, 1), best_adv, x)
