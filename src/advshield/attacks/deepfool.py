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
    from one forward and one vectorised backward pass (torch.func), and
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
        active = (classes[:, 0] == labels).nonzero().squeeze(1)  # misclassified images are already done
        for _ in range(self.steps):
            if len(active) == 0:
                break
            cls = classes[active]
            out, f, w = candidate_gradients(surface, adv[active], cls)
            with torch.no_grad():
                still = out.argmax(1) == cls[:, 0]
                if not still.all():  # early exit: finished samples leave the batch
                    active, f, w = active[still], f[still], w[still]
                    if len(active) == 0:
                        break
                dist, make_step = self._distances_and_steps(f, w)
                best = dist.argmin(1)
                rows = torch.arange(len(active), device=x.device)
                g = w[rows, best]
                step = make_step(dist[rows, best] + 1e-4, g, g.flatten(1).norm(dim=1))
                p_total[active] += step
                adv[active] = (x[active] + (1 + self.overshoot) * p_total[active]).clamp(0, 1)
        return adv.detach()


def candidate_gradients(surface, x: torch.Tensor, cls: torch.Tensor):
    """Logits, f_k = logit_{cls_k} - logit_{cls_0} and their input gradients for k = 1..K-1.

    On accelerators: one forward pass and one vmapped backward pass over the K-1
    cotangents (torch.func). On CPUs, and where torch.func cannot transform the
    surface (e.g. a BPDA autograd.Function): one forward and K-1 backward passes
    through the same graph, which measured 1.45x faster than the vmapped backward
    on a 2-core CPU (A-net, 1000 images).
    """
    n_cls = cls.shape[1]
    x = x.detach()
    try:
        if x.device.type == "cpu":
            raise NotImplementedError  # the retain-graph loop below is faster on CPUs
        logits, vjp_fn = torch.func.vjp(surface, x)
        onehot = torch.nn.functional.one_hot(cls, logits.shape[1]).to(logits.dtype)  # (n, K, C)
        cot = (onehot[:, 1:] - onehot[:, :1]).transpose(0, 1)  # (K-1, n, C)
        (grads,) = torch.func.vmap(vjp_fn)(cot)
        grads = grads.transpose(0, 1)  # (n, K-1, ...)
    except (RuntimeError, NotImplementedError):
        xg = x.requires_grad_(True)
        logits = surface(xg)
        grads = torch.stack([torch.autograd.grad((logits.gather(1, cls[:, j:j + 1]) - logits.gather(1, cls[:, :1]))
                                                 .sum(), xg, retain_graph=j < n_cls - 1)[0]
                             for j in range(1, n_cls)], 1)
        logits = logits.detach()
    diffs = logits.gather(1, cls[:, 1:]) - logits.gather(1, cls[:, :1])
    return logits.detach(), diffs.detach(), grads.detach()


@register_attack("deepfool", norm="l2", family="deepfool")
class L2DeepFool(DeepFool):
    __doc__ = DeepFool.__doc__ + "\n    Norm: L2."
    name, norm, _norm = "deepfool", Norm.L2, Norm.L2


@register_attack("deepfool-linf", norm="linf", family="deepfool")
class LinfDeepFool(DeepFool):
    __doc__ = DeepFool.__doc__ + "\n    Norm: L-inf."
    name, norm, _norm = "deepfool-linf", Norm.LINF, Norm.LINF
