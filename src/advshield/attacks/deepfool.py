"""DeepFool: iterative linearisation of the decision boundary (minimal perturbation)."""

from __future__ import annotations

import torch

from advshield.attacks.base import Attack, Norm, check_eps, check_positive_int, register_attack
from advshield.errors import InputError


class DeepFool(Attack):
    """Moosavi-Dezfooli et al. 2016, "DeepFool: a simple and accurate method to fool deep neural networks".

    Each step moves every unfinished sample to the nearest linearised boundary
    among its top ``candidates`` classes (Alg. 2); ``overshoot`` scales the
    total perturbation. The gradients of all candidate logit differences come
    from ONE backward pass over a batch replicated ``candidates - 1`` times, and
    finished samples leave the batch (early exit). Untargeted only.
    Defaults: steps = 50, candidates = 10, overshoot = 0.02 (the paper's and foolbox's).
    """

    supports_targeted = False
    _norm: Norm

    def __init__(self, steps: int = 50, candidates: int = 10, overshoot: float = 0.02) -> None:
        self.steps = check_positive_int(steps, "steps")
        self.candidates = check_positive_int(candidates, "candidates")
        if self.candidates < 2:
            raise InputError("candidates must be >= 2")
        self.overshoot = check_eps(overshoot, "overshoot")

    def _distances_and_steps(self, f: torch.Tensor, w: torch.Tensor):
        """f: (N, K) logit differences (<0), w: (N, K, ...) their gradients."""
        flat = w.flatten(2)
        if self._norm is Norm.L2:
            wn = flat.norm(dim=2)
            dist = f.abs() / (wn + 1e-8)
            return dist, lambda d, g, gn: (d / (gn + 1e-8)).view(-1, *([1] * (g.ndim - 1))) * g
        wn = flat.abs().sum(2)
        dist = f.abs() / (wn + 1e-8)
        return dist, lambda d, g, gn: d.view(-1, *([1] * (g.ndim - 1))) * g.sign()

    def perturb(self, surface, x, labels, target, generator):
        with torch.no_grad():
            logits = surface(x)
        k = min(self.candidates, logits.shape[1])
        classes = logits.argsort(1, descending=True)[:, :k]  # classes[:, 0] is the original prediction
        p_total = torch.zeros_like(x)
        adv = x.clone()
        active = torch.arange(len(x), device=x.device)
        for _ in range(self.steps):
            xa = adv[active].detach()
            n = len(active)
            rep = xa.repeat(k - 1, *([1] * (x.ndim - 1))).requires_grad_(True)  # (K-1)*n, candidate-major
            out = surface(rep)
            cls = classes[active]
            orig = out.gather(1, cls[:, :1].repeat(k - 1, 1))
            others = out.gather(1, cls[:, 1:].t().reshape(-1, 1))
            diff = (others - orig).squeeze(1)  # logit_k - logit_orig, < 0 until the boundary is crossed
            (grad,) = torch.autograd.grad(diff.sum(), rep)
            with torch.no_grad():
                pred = out[:n].argmax(1)
                still = pred == cls[:, 0]
                if not still.all():
                    active = active[still]
                    if len(active) == 0:
                        break
                    idx = still.nonzero().squeeze(1)
                    n_old = n
                    n = len(active)
                    sel = (idx[None, :] + n_old * torch.arange(k - 1, device=x.device)[:, None]).reshape(-1)
                    diff, grad = diff[sel], grad[sel]
                f = diff.view(k - 1, n).t()
                w = grad.view(k - 1, n, *x.shape[1:]).transpose(0, 1)
                dist, make_step = self._distances_and_steps(f, w)
                best = dist.argmin(1)
                rows = torch.arange(n, device=x.device)
                g = w[rows, best]
                gn = g.flatten(1).norm(dim=1)
                step = make_step(dist[rows, best] + 1e-4, g, gn)
                p_total[active] += step
                adv[active] = (x[active] + (1 + self.overshoot) * p_total[active]).clamp(0, 1)
        return adv.detach()


@register_attack("deepfool", norm="l2", family="deepfool")
class L2DeepFool(DeepFool):
    __doc__ = DeepFool.__doc__ + "\n    Norm: L2."
    name, norm, _norm = "deepfool", Norm.L2, Norm.L2


@register_attack("deepfool-linf", norm="linf", family="deepfool")
class LinfDeepFool(DeepFool):
    __doc__ = DeepFool.__doc__ + "\n    Norm: L-inf."
    name, norm, _norm = "deepfool-linf", Norm.LINF, Norm.LINF
