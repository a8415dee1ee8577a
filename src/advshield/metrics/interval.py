"""Confidence intervals of accuracies measured on a finite test sample."""

from __future__ import annotations

import math


def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval (Wilson 1927) of a binomial proportion; 95 % by default.

    Unlike the normal approximation it stays inside [0, 1] and is sound at 0 % and 100 %, where
    robust accuracies under a strong attack often sit.
    """
    if n <= 0:
        return (0.0, 1.0)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))
