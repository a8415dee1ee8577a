"""APGD: Auto-PGD, step-size-free PGD with the CE and DLR losses (the gradient members of AutoAttack)."""

from __future__ import annotations

import torch

from advshield.attacks.base import (Attack, Norm, attack_loss, check_positive_int, loss_gradient, register_attack,
                                    succeeded)
from advshield.attacks.checks import check_classes
from advshield.attacks.norms import l2_norm, norm_and_eps
from advshield.errors import InputError

def check_detector_start(value: str) -> str:
    """Where APGD's first restart starts against a detector: 'clean' (at x) or 'random' (the eps-sphere)."""
    if value not in ("clean", "random"):
        raise InputError(f"detector_start must be 'clean' or 'random', got {value!r}")
    return value


def dlr_loss(logits: torch.Tensor, labels: torch.Tensor, target: torch.Tensor | None = None) -> torch.Tensor:
    """Difference of Logits Ratio, per sample, to maximise (Croce & Hein 2020, Eq. 6).

    DLR = -(z_y - max_{i != y} z_i) / (z_pi1 - z_pi3); targeted (Sec. 3.3, Eq. 7):
    -(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2), with pi the logits sorted in decreasing order.
    Both are invariant to shifting and scaling the logits.
    """
    srt = logits.sort(1, descending=True).values
    z_y = logits.gather(1, labels[:, None]).squeeze(1)
    if target is None:
        other = torch.where(srt[:, 0] == z_y, srt[:, 1], srt[:, 0])  # the largest logit other than z_y
        return -(z_y - other) / (srt[:, 0] - srt[:, 2] + 1e-12)
    z_t = logits.gather(1, target[:, None]).squeeze(1)
    return -(z_y - z_t) / (srt[:, 0] - 0.5 * (srt[:, 2] + srt[:, 3]) + 1e-12)


LOSSES = {"ce": attack_loss, "dlr": dlr_loss}


def checkpoints(steps: int) -> list[int]:
    """Iteration counts after which the step size is checked (Sec. 3.2).

    p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06), w_j = p_j * N_iter,
    in the reference implementation's integer form: the first interval is int(0.22 N), each next
    one int(0.03 N) shorter, down to int(0.06 N).
    """
    k, k_min, decrease = max(int(0.22 * steps), 1), max(int(0.06 * steps), 1), max(int(0.03 * steps), 1)
    points, at = [], k
    while at <= steps:
        points.append(at)
        k = max(k - decrease, k_min)
        at += k
    return points


class APGDBase(Attack):
    """Shared APGD loop (Croce & Hein 2020, Alg. 1) on a batch; subclasses choose the runs (targets)."""

    randomized = detector_aware = reads_detector_switch = True
    targeted_runs = False
    alpha, rho = 0.75, 0.75  # momentum (Alg. 1) and the condition-1 threshold (Eq. 4)

    def __init__(self, eps: float | None, norm: str, steps: int, restarts: int, loss: str, early_stop: bool,
                 detector_start: str = "clean") -> None:
        self.norm, self.eps = norm_and_eps(self.name, norm, eps)
        self.detector_start = check_detector_start(detector_start)
        self.steps = check_positive_int(steps, "steps")
        self.restarts = check_positive_int(restarts, "restarts")
        if loss not in LOSSES:
            raise InputError(f"loss must be one of {', '.join(LOSSES)}, got {loss!r}")
        self.loss, self.early_stop = loss, bool(early_stop)

    def _clean_first(self, surface) -> bool:
        # APGD-CE leaves MagNet 0.93 from the eps-sphere, 0.20 from x (benchmarks/detector-attacks-magnet-mnist.json)
        return self.detector_start == "clean" and getattr(surface, "detector", None) is not None

    # -- geometry --------------------------------------------------------------------------------------
    def _project(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if self.norm is Norm.LINF:
            return torch.min(torch.max(z, x - self.eps), x + self.eps).clamp(0, 1)
        d = z - x
        return (x + d * (self.eps / (l2_norm(d) + 1e-12)).clamp(max=1.0)).clamp(0, 1)

    def _start(self, x: torch.Tensor, generator: torch.Generator, clean: bool = False) -> torch.Tensor:
        # The reference implementation's random start: on the eps-sphere of the norm. ``clean``: at x itself.
        if clean:
            return x.clone()
        if self.norm is Norm.LINF:
            t = torch.rand(x.shape, generator=generator, device=x.device) * 2 - 1
            t = t / t.abs().flatten(1).amax(1).clamp_min(1e-12).view(-1, *([1] * (x.ndim - 1)))
        else:
            t = torch.randn(x.shape, generator=generator, device=x.device)
            t = t / (l2_norm(t) + 1e-12)
        return (x + self.eps * t).clamp(0, 1)

    def _step(self, x, x_adv, x_old, grad, step, first: bool) -> torch.Tensor:
        view = step.view(-1, *([1] * (x.ndim - 1)))
        direction = grad.sign() if self.norm is Norm.LINF else grad / (l2_norm(grad) + 1e-12)
        z = self._project(x_adv + view * direction, x)  # Alg. 1, z^(k+1) = P_S(x^k + eta grad)
        if first:
            return z
        # x^(k+1) = P_S(x^k + alpha (z^(k+1) - x^k) + (1 - alpha)(x^k - x^(k-1)))
        return self._project(x_adv + self.alpha * (z - x_adv) + (1 - self.alpha) * (x_adv - x_old), x)

    # -- one run of Alg. 1 -------------------------------------------------------------------------------
    def _run(self, surface, x, labels, loss_target, success_target, generator, groups=None, clean_start=False):
        """Returns (images, fooled, best loss): the first fooling iterate, else the highest-loss one.
        ``clean_start``: start at the clean images instead of a random point of the eps-sphere.

        ``groups`` (row -> image index), for rows that attack one image towards different targets: once
        one row of an image fools, its other rows stop too (the image's verdict is then final).
        """
        loss_of = LOSSES[self.loss]
        hit_group = None if groups is None else torch.zeros(int(groups.max()) + 1, dtype=torch.bool, device=x.device)

        def evaluate(idx, xa):
            lt = None if loss_target is None else loss_target[idx]
            st = None if success_target is None else success_target[idx]
            loss, grad, logits = loss_gradient(surface, xa, labels[idx], st, lambda z, y, _: loss_of(z, y, lt))
            return loss, grad, succeeded(surface, xa, labels[idx], st, logits)

        n = len(x)
        every = torch.arange(n, device=x.device)
        x_adv = self._start(x, generator, clean_start)
        loss, grad, done = evaluate(every, x_adv)
        out, x_best, x_old = x_adv.clone(), x_adv.clone(), x_adv.clone()
        loss_best, grad_best, loss_prev = loss.clone(), grad.clone(), loss.clone()
        step = torch.full((n,), 2 * self.eps, device=x.device)  # eta^(0) = 2 eps
        increases = torch.zeros(n, device=x.device)
        best_at_check, reduced_at_check = loss_best.clone(), torch.zeros(n, dtype=torch.bool, device=x.device)
        checks, last_check = set(checkpoints(self.steps)), 0
        active = every
        for i in range(self.steps):
            if self.early_stop:  # per-sample early exit: a fooled sample keeps its first fooling iterate
                stop = done if groups is None else hit_group.index_fill(0, groups[done], True)[groups]
                active = active[~stop[active]]
                if len(active) == 0:
                    break
            a = active
            z = self._step(x[a], x_adv[a], x_old[a], grad[a], step[a], first=i == 0)
            x_old[a] = x_adv[a]
            x_adv[a] = z
            loss, g, fooled = evaluate(a, z)
            grad[a] = g
            new = fooled & ~done[a]
            out[a[new]], done[a[new]] = z[new], True
            increases[a] += (loss > loss_prev[a]).float()
            loss_prev[a] = loss
            better = loss > loss_best[a]
            b = a[better]
            x_best[b], loss_best[b], grad_best[b] = z[better], loss[better], g[better]
            if i + 1 in checks:
                h, last_check = i + 1 - last_check, i + 1
                # Condition 1 (Eq. 4): the loss rose in at most rho * h of the last h steps (reference: <=);
                # condition 2: the step was not reduced at the last checkpoint and the best loss did not move.
                cond1 = increases[a] <= self.rho * h
                cond2 = ~reduced_at_check[a] & (best_at_check[a] >= loss_best[a])
                reduce = cond1 | cond2
                reduced_at_check[a], best_at_check[a] = reduce, loss_best[a]
                r = a[reduce]
                step[r] /= 2  # halve the step and restart from the best point so far
                x_adv[r], grad[r] = x_best[r], grad_best[r]
                increases[a] = 0
        out[~done] = x_best[~done]
        return out, done, loss_best

    def _runs(self, surface, x, labels, target):
        """(loss target, success target) pairs, each an APGD run with ``restarts`` restarts."""
        return [(target, target)]

    def perturb(self, surface, x, labels, target, generator):
        adv = x.clone()
        todo = (~succeeded(surface, x, labels, target)).nonzero().squeeze(1)  # already fooled: left as is
        best = torch.full((len(x),), -torch.inf, device=x.device)
        runs = self._runs(surface, x, labels, target) if len(todo) else []
        for loss_target, success_target in runs:
            for restart in range(self.restarts):  # restarts only attack the points still robust
                if len(todo) == 0:
                    return adv
                sub = (lambda t: None if t is None else t[todo])
                r_adv, fooled, r_loss = self._run(surface, x[todo], labels[todo], sub(loss_target),
                                                  sub(success_target), generator,
                                                  clean_start=restart == 0 and self._clean_first(surface))
                keep = fooled | (r_loss > best[todo])
                adv[todo[keep]], best[todo[keep]] = r_adv[keep], r_loss[keep]
                todo = todo[~fooled]
        return adv


@register_attack("apgd-ce", norm="linf", family="apgd")
class APGD(APGDBase):
    """APGD with the cross-entropy loss: PGD with momentum and an automatic step-size schedule.

    Paper: Croce & Hein 2020, "Reliable evaluation of adversarial robustness with an ensemble of
    diverse parameter-free attacks" (Alg. 1). The step starts at 2 eps and halves at the
    checkpoints when the loss stalls (conditions 1 and 2, rho = 0.75), restarting from the best
    point; momentum alpha = 0.75. Each sample keeps its first fooling iterate and leaves the batch
    (``early_stop``); ``restarts`` re-run, from a new random start, only the points still robust.
    Targeted with ``target``: the loss is -CE(target) (or the targeted DLR).
    Norm: ``norm`` = 'linf' or 'l2'. Defaults (AutoAttack): eps = 8/255 (L-inf) or 0.5 (L2),
    steps = 100, restarts = 1, loss = 'ce'; detector_start = 'clean' (against a detector the first restart
    starts at the clean image, later ones on the eps-sphere; 'random': every restart on the sphere).
    """

    name = "apgd-ce"

    def __init__(self, eps: float | None = None, norm: str = "linf", steps: int = 100, restarts: int = 1,
                 loss: str = "ce", early_stop: bool = True, detector_start: str = "clean") -> None:
        super().__init__(eps, norm, steps, restarts, loss, early_stop, detector_start)

    def min_classes(self, targeted: bool = False) -> int:  # the DLR loss (Eq. 6) reads the 3rd (targeted: 4th) logit
        return (4 if targeted else 3) if self.loss == "dlr" else 2

    def _runs(self, surface, x, labels, target):
        if self.loss == "dlr":
            with torch.no_grad():
                check_classes(surface(x[:1]), self.min_classes(target is not None), "the DLR loss")
        return [(target, target)]


@register_attack("apgd-dlr", norm="linf", family="apgd")
class APGDDLR(APGD):
    __doc__ = APGD.__doc__.replace("cross-entropy loss", "DLR loss (Eq. 6)").replace("loss = 'ce'", "loss = 'dlr'")
    name = "apgd-dlr"

    def __init__(self, eps: float | None = None, norm: str = "linf", steps: int = 100, restarts: int = 1,
                 loss: str = "dlr", early_stop: bool = True, detector_start: str = "clean") -> None:
        super().__init__(eps, norm, steps, restarts, loss, early_stop, detector_start)


@register_attack("apgd-t", norm="linf", family="apgd")
class APGDT(APGDBase):
    """APGD-T: APGD with the targeted DLR loss towards each of the top ``n_target_classes`` classes.

    Paper: Croce & Hein 2020 (Sec. 3.3, Eq. 7, AutoAttack's APGD-T). Untargeted goal: for
    target classes ranked 2, 3, ... by the clean logits, one APGD run each (``restarts``
    restarts), each only on the points still correctly classified; success = misclassified.
    Given explicit ``target`` labels it is an ordinary targeted APGD towards them.
    ``parallel_targets``: once few points are left, several targets' runs share one batch (at most
    ``max_rows`` rows: the batch given, or AutoAttack's), a point leaving all its runs when one fools
    it; fewer model calls, but more passes on a CPU (26 % through the zoo CRU-Net for A-net,
    ``benchmarks/autoattack_members.py``). None (default): on accelerators only.
    Norm: ``norm`` = 'linf' or 'l2'. Defaults (AutoAttack): eps = 8/255 (L-inf) or 0.5 (L2),
    steps = 100, restarts = 1, n_target_classes = 9, loss = 'dlr' (targeted; 'ce' = -CE(target)),
    parallel_targets = None.
    """

    name = "apgd-t"

    def __init__(self, eps: float | None = None, norm: str = "linf", steps: int = 100, restarts: int = 1,
                 n_target_classes: int = 9, loss: str = "dlr", early_stop: bool = True,
                 parallel_targets: bool | None = None, detector_start: str = "clean") -> None:
        super().__init__(eps, norm, steps, restarts, loss, early_stop, detector_start)
        self.n_target_classes = check_positive_int(n_target_classes, "n_target_classes")
        self.parallel_targets = None if parallel_targets is None else bool(parallel_targets)
        self.max_rows: int | None = None  # rows per model call; None: the batch given (AutoAttack sets its own)

    min_classes = lambda self, targeted=True: 4 if self.loss == "dlr" else 2  # noqa: E731  targeted DLR: 4th logit

    def _runs(self, surface, x, labels, target):
        with torch.no_grad():
            logits = surface(x)
        check_classes(logits, self.min_classes(), "the targeted DLR loss")  # 2 (always met) unless DLR
        if target is not None:
            return [(target, target)]
        order = logits.argsort(1, descending=True)
        k = min(self.n_target_classes, logits.shape[1] - 1)
        return [(order[:, j], None) for j in range(1, k + 1)]

    def perturb(self, surface, x, labels, target, generator):
        parallel = x.device.type != "cpu" if self.parallel_targets is None else self.parallel_targets
        if target is not None or not parallel:
            return super().perturb(surface, x, labels, target, generator)
        adv = x.clone()
        todo = (~succeeded(surface, x, labels, None)).nonzero().squeeze(1)  # already fooled: left as is
        if len(todo) == 0:
            return adv
        targets = [t for t, _ in self._runs(surface, x, labels, None)]
        best = torch.full((len(x),), -torch.inf, device=x.device)
        j = 0
        while j < len(targets) and len(todo):  # the fewer points are left, the more targets share a batch
            k = max(1, min(len(targets) - j, (self.max_rows or len(x)) // len(todo)))
            chunk, j = targets[j:j + k], j + k
            for restart in range(self.restarts):  # restarts only attack the points still robust
                if not (m := len(todo)):
                    break
                rows = (lambda t: t[todo].repeat(k, *([1] * (t.ndim - 1))))
                groups = torch.arange(m, device=x.device).repeat(k) if k > 1 else None
                r_adv, fooled, r_loss = self._run(surface, rows(x), rows(labels), torch.cat([t[todo] for t in chunk]),
                                                  None, generator, groups,
                                                  restart == 0 and self._clean_first(surface))
                fooled, r_loss = fooled.view(k, m), r_loss.view(k, m)
                hit = fooled.any(0)
                pick = torch.where(hit, fooled.float().argmax(0), r_loss.argmax(0))  # first target that fooled
                cols = torch.arange(m, device=x.device)
                r_adv, r_loss = r_adv.view(k, m, *x.shape[1:])[pick, cols], r_loss[pick, cols]
                keep = hit | (r_loss > best[todo])
                adv[todo[keep]], best[todo[keep]] = r_adv[keep], r_loss[keep]
                todo = todo[~hit]
        return adv

