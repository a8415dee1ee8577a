"""Parameter validation shared by every attack, and the error an invalid attack output raises."""

from __future__ import annotations

import math
from typing import Any

from advshield.errors import AdvShieldError, InputError


class AttackError(AdvShieldError):
    """An attack produced an invalid result (non-finite, outside [0, 1] or outside its eps budget)."""


def check_eps(eps: float, name: str = "eps") -> float:
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not math.isfinite(eps) or eps < 0:
        raise InputError(f"{name} must be a finite non-negative number, got {eps!r}")
    return float(eps)


def check_finite_arguments(owner: str, arguments: dict[str, Any]) -> None:
    """Refuse NaN / infinite numbers among an attack's constructor arguments, naming the parameter."""
    for name, value in arguments.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise InputError(f"{owner}: parameter {name} must be a finite number, got {value!r}")


def check_linf_eps(eps: float) -> float:
    eps = check_eps(eps)
    if eps > 1:
        raise InputError(f"an L-inf eps above 1 is meaningless for [0, 1] images, got {eps}")
    return eps


def check_classes(logits: Any, needed: int, what: str) -> None:
    """``logits`` (``[N, classes]``) has at least ``needed`` classes, else one line naming ``what`` needs them."""
    if logits.shape[1] < needed:
        raise InputError(f"{what} needs at least {needed} classes, the model has {logits.shape[1]}")


def check_positive_int(value: int, name: str) -> int:
    if not isinstance(value, int) or value < 1:
        raise InputError(f"{name} must be a positive integer, got {value!r}")
    return value
