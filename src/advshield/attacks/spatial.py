"""Spatial attack: rotations and translations found by grid search."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch.nn import functional as F

from advshield.attacks.base import Attack, check_eps, check_positive_int, register_attack


def rotate_translate(x: torch.Tensor, angle_deg: torch.Tensor, dx: torch.Tensor, dy: torch.Tensor) -> torch.Tensor:
    """Rotate by ``angle_deg`` and shift by (dx, dy) pixels, bilinear, zero fill (one transform per image)."""
    a = angle_deg * math.pi / 180
    theta = torch.stack([torch.stack([a.cos(), -a.sin(), dx / (x.shape[2] / 2)], 1),
                         torch.stack([a.sin(), a.cos(), dy / (x.shape[3] / 2)], 1)], 1).to(x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=True)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=True)


@register_attack("spatial", norm=None, family="spatial")
class SpatialAttack(Attack):
    """Grid search over rotations and translations (the papers' "SPA").

    Paper: Engstrom et al. 2019, "Exploring the Landscape of Spatial Robustness"
    (as foolbox's SpatialAttack). Each sample keeps the first transformation in
    grid order that fools the model; many transformations are evaluated in one
    batch and fooled samples drop out. Not norm-bounded (the reported norms are
    pixel differences). Defaults (foolbox 3): max_rotation = 30 deg,
    max_translation = 3 px, 5 rotations x 5 x 5 translations.
    """

    name, norm = "spatial", None

    def __init__(self, max_rotation: float = 30.0, max_translation: float = 3.0, num_rotations: int = 5,
                 num_translations: int = 5, chunk: int = 8192) -> None:
        self.max_rotation = check_eps(max_rotation, "max_rotation")
        self.max_translation = check_eps(max_translation, "max_translation")
        self.num_rotations = check_positive_int(num_rotations, "num_rotations")
        self.num_translations = check_positive_int(num_translations, "num_translations")
        self._chunk = chunk

    def grid(self) -> np.ndarray:
        rots = np.linspace(-self.max_rotation, self.max_rotation, self.num_rotations)
        shifts = np.linspace(-self.max_translation, self.max_translation, self.num_translations)
        return np.array([(r, dx, dy) for r in rots for dx in shifts for dy in shifts], dtype=np.float32)

    @torch.no_grad()
    def perturb(self, surface, x, labels, target, generator):
        params = torch.from_numpy(self.grid()).to(x.device)
        result = x.clone()
        pred = surface(x).argmax(1)
        found = pred == target if target is not None else pred != labels
        per_chunk = max(1, self._chunk // max(1, len(x)))
        for start in range(0, len(params), per_chunk):
            todo = (~found).nonzero().squeeze(1)
            if len(todo) == 0:
                break
            p = params[start:start + per_chunk]
            t, m = len(p), len(todo)
            xs = x[todo].repeat(t, 1, 1, 1)
            pr = p.repeat_interleave(m, 0)
            moved = rotate_translate(xs, pr[:, 0], pr[:, 1], pr[:, 2])
            pred = surface(moved).argmax(1).view(t, m)
            goal = (target[todo] if target is not None else labels[todo])[None]
            hit = pred == goal if target is not None else pred != goal
            any_hit = hit.any(0)
            first = hit.float().argmax(0)  # first transformation in grid order that fools
            moved = moved.view(t, m, *x.shape[1:])
            sel = any_hit.nonzero().squeeze(1)
            result[todo[sel]] = moved[first[sel], sel]
            found[todo[sel]] = True
        return result
