"""Square attack: score-based random search with square-shaped updates (no gradients)."""

from __future__ import annotations

import math

import torch

from advshield.attacks.norms import l2_norm, norm_and_eps
from advshield.attacks.base import (Attack, Norm, check_positive_int, fooling_margin, joint_detector_loss,
                                    register_attack, succeeded)
from advshield.errors import InputError

# The fraction p of the image a square covers is halved after each of these iterations (out of 10000), Sec. 5.
P_HALVINGS = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)


def _signs(shape, generator, device) -> torch.Tensor:
    return torch.randint(0, 2, shape, generator=generator, device=device).float() * 2 - 1


def _eta_rectangle(rows: int, cols: int) -> torch.Tensor:
    """Concentric rectangles of weight 1 / (k + 1)^2 around the centre (Sec. 4.2, Fig. 2), unit L2 norm."""
    delta = torch.zeros(rows, cols)
    r0, c0 = rows // 2, cols // 2
    for k in range(max(r0, c0) + 1):
        delta[max(r0 - k, 0):min(r0 + k + 1, rows), max(c0 - k, 0):min(c0 + k + 1, cols)] += 1.0 / (k + 1) ** 2
    return delta / delta.norm()


def l2_pattern(s: int) -> torch.Tensor:
    """The L2 update's s x s pattern: two rectangles of opposite sign (the reference implementation's)."""
    delta = torch.cat([_eta_rectangle(s // 2, s), -_eta_rectangle(s - s // 2, s)])
    return delta / delta.norm()


def _windows(m: int, h: int, w: int, s: int, generator, device):
    """Per sample, a random s x s window: (mask (m, 1, h, w), row offsets, column offsets)."""
    vh = torch.randint(0, max(h - s, 1), (m,), generator=generator, device=device)
    vw = torch.randint(0, max(w - s, 1), (m,), generator=generator, device=device)
    r = torch.arange(h, device=device)[None] - vh[:, None]
    c = torch.arange(w, device=device)[None] - vw[:, None]
    inside = ((r >= 0) & (r < s))[:, :, None] & ((c >= 0) & (c < s))[:, None, :]
    return inside[:, None].float(), r.clamp(0, s - 1), c.clamp(0, s - 1)


@register_attack("square", norm="linf", family="square")
class Square(Attack):
    """Square Attack: random search over square-shaped perturbations, using only the model's scores.

    Paper: Andriushchenko et al. 2020, "Square Attack: a query-efficient black-box adversarial
    attack via random search" (Alg. 1; L-inf update Alg. 2, L2 update Alg. 3). Each query draws,
    per sample, a random square of side sqrt(p * pixels) and keeps the change if the margin loss
    falls; p follows the paper's halving schedule from ``p_init``. Score-based: no gradient is
    ever taken, so gradient masking does not stop it. Fooled samples stop (early exit);
    ``n_queries`` bounds the queries per sample. Seeded by the run's generator.
    Norm: ``norm`` = 'linf' or 'l2'. Defaults (AutoAttack): eps = 8/255 (L-inf) or 0.5 (L2),
    n_queries = 5000, p_init = 0.8, margin loss.
    """

    name, randomized, detector_aware = "square", True, True

    def __init__(self, eps: float | None = None, norm: str = "linf", n_queries: int = 5000,
                 p_init: float = 0.8) -> None:
        self.norm, self.eps = norm_and_eps(self.name, norm, eps)
        self.n_queries = check_positive_int(n_queries, "n_queries")
        if not 0 < p_init <= 1:
            raise InputError(f"p_init must be in (0, 1], got {p_init}")
        self.p_init = float(p_init)

    def p(self, it: int) -> float:
        it = int(it / self.n_queries * 10000)  # the schedule is written for 10000 queries
        return self.p_init / 2 ** sum(it > t for t in P_HALVINGS)

    def _loss(self, surface, xs, labels, target):
        logits = surface(xs)
        if getattr(surface, "detector", None) is not None:  # a flagged input has not succeeded yet
            loss = -joint_detector_loss(logits, labels, target, surface.penalty(xs))  # minimised here
        else:
            loss = fooling_margin(logits, labels, target)  # the margin loss, < 0: fooled
        return loss, succeeded(surface, xs, labels, target, logits)

    def _init(self, x, generator):
        n, c, h, w = x.shape
        if self.norm is Norm.LINF:  # vertical stripes of +-eps (Sec. 4.1)
            return (x + self.eps * _signs((n, c, 1, w), generator, x.device)).clamp(0, 1)
        s = max(h // 5, 1)  # a grid of the L2 pattern with random signs (Sec. 4.2)
        delta, start = torch.zeros_like(x), max((h - 5 * s) // 2, 0)
        for vh in range(start, h - s + 1, s):
            for vw in range(start, w - s + 1, s):
                pattern = l2_pattern(s).to(x.device)
                delta[:, :, vh:vh + s, vw:vw + s] += pattern * _signs((n, c, 1, 1), generator, x.device)
        return (x + self.eps * delta / (l2_norm(delta) + 1e-12)).clamp(0, 1)

    def _propose(self, x, x_best, it, generator):
        m, c, h, w = x.shape
        side = math.sqrt(self.p(it) * h * w)  # s = sqrt(p * pixels)
        if self.norm is Norm.LINF:  # Alg. 2: a square of one random +-2 eps colour per channel
            s = min(max(int(round(side)), 1), h - 1)
            mask, _, _ = _windows(m, h, w, s, generator, x.device)
            new = x_best + mask * 2 * self.eps * _signs((m, c, 1, 1), generator, x.device)
            return torch.min(torch.max(new, x - self.eps), x + self.eps).clamp(0, 1)
        s = min(max(int(round(side)), 3), h - 1)  # Alg. 3: move mass from window 2 into window 1
        s = s + 1 if s % 2 == 0 and s + 1 < h else s
        delta = x_best - x
        mask1, r, col = _windows(m, h, w, s, generator, x.device)
        mask2, _, _ = _windows(m, h, w, s, generator, x.device)
        pattern = l2_pattern(s).to(x.device)
        flip = torch.rand(m, generator=generator, device=x.device) > 0.5
        patterns = torch.where(flip[:, None], pattern.T.flatten()[None], pattern.flatten()[None])
        placed = patterns.gather(1, (r[:, :, None] * s + col[:, None, :]).flatten(1)).view(m, 1, h, w) * mask1
        window_norm = (delta * mask1).pow(2).sum((2, 3), keepdim=True).sqrt()
        image_norm, windows_norm = l2_norm(delta), l2_norm(delta * torch.max(mask1, mask2))
        new = placed * _signs((m, c, 1, 1), generator, x.device) + delta * mask1 / (window_norm + 1e-12)
        scale = ((self.eps ** 2 - image_norm ** 2).clamp_min(0) / c + windows_norm ** 2).sqrt()
        new = new / (new.pow(2).sum((2, 3), keepdim=True).sqrt() + 1e-12) * scale
        delta = torch.where(mask1.bool(), new, delta * (1 - mask2))
        return (x + self.eps * delta / (l2_norm(delta) + 1e-12)).clamp(0, 1)

    @torch.no_grad()
    def perturb(self, surface, x, labels, target, generator):
        best_loss, done = self._loss(surface, x, labels, target)
        adv = x.clone()  # already fooled: left as is
        todo = (~done).nonzero().squeeze(1)
        if len(todo) == 0:
            return adv
        sub = (lambda t, i: None if t is None else t[i])
        adv[todo] = self._init(x[todo], generator)
        best_loss[todo], done[todo] = self._loss(surface, adv[todo], labels[todo], sub(target, todo))
        for it in range(self.n_queries):
            todo = todo[~done[todo]]  # per-sample early exit
            if len(todo) == 0:
                break
            xs, ys, ts = x[todo], labels[todo], sub(target, todo)
            cand = self._propose(xs, adv[todo], it, generator)
            loss, fooled = self._loss(surface, cand, ys, ts)
            keep = (loss < best_loss[todo]) | fooled
            adv[todo[keep]], best_loss[todo[keep]] = cand[keep], loss[keep]
            done[todo[fooled]] = True
        return adv
