"""Norm helpers shared by the APGD, FAB and Square families: the norm and budget an attack accepts (with
AutoAttack's defaults) and per-sample L2 norms broadcastable against the images."""

from __future__ import annotations

import torch

from advshield.attacks.base import Norm, check_eps, check_linf_eps
from advshield.errors import InputError

DEFAULT_EPS = {Norm.LINF: 8 / 255, Norm.L2: 0.5}  # AutoAttack's CIFAR-10 budgets


def norm_and_eps(owner: str, norm: str, eps: float | None, default: bool = True) -> tuple[Norm, float | None]:
    """An attack's norm ('linf' or 'l2') and checked eps; eps None gives the norm's AutoAttack default."""
    try:
        parsed = Norm(norm)
    except ValueError:
        parsed = None
    if parsed not in DEFAULT_EPS:
        raise InputError(f"{owner} supports the 'linf' and 'l2' norms, not {norm!r}")
    if eps is None:
        return parsed, DEFAULT_EPS[parsed] if default else None
    return parsed, check_linf_eps(eps) if parsed is Norm.LINF else check_eps(eps)


def l2_norm(t: torch.Tensor) -> torch.Tensor:
    return t.flatten(1).norm(dim=1).view(-1, *([1] * (t.ndim - 1)))
