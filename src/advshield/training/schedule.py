"""Learning-rate factor as a pure function of training progress (so resume needs no scheduler state)."""

from __future__ import annotations

import math


def lr_factor(schedule: str, progress: float, warmup: float = 0.0) -> float:
    """Multiplier of the base LR at ``progress`` in [0, 1] of all steps; ``warmup`` is a fraction too."""
    if warmup > 0 and progress < warmup:
        return (progress + 1e-8) / warmup
    if schedule == "constant":
        return 1.0
    if schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * progress))
    if schedule == "step":
        return 0.1 ** (int(progress >= 0.5) + int(progress >= 0.75))
    if schedule == "onecycle":  # Smith 2018: linear up over the first 25 %, linear down to 0
        peak = max(warmup, 0.25)
        return progress / peak if progress < peak else max(0.0, (1 - progress) / (1 - peak))
    raise ValueError(f"unknown schedule {schedule!r}")
