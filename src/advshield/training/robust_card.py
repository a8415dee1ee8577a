"""What an adversarially trained model's card states: AutoAttack robust accuracy and the attack's self-checks.

The ensemble (Croce & Hein 2020) runs white-box on the first ``n`` test images; the health checks
(:func:`advshield.attacks.health.run_health_checks`: convergence, gradient-free Square, unbounded eps, noise,
gradients) run APGD-CE at the same budget on the first ``n_checks`` of them. An optional ``progress`` callback
hears of each member's start on each batch and of each check's run; it changes no number.
"""

from __future__ import annotations

import math
import time
from typing import Callable

import torch
from torch import nn

from advshield.attacks import ATTACKS, Pipeline, create_attack
from advshield.attacks.autoattack import AutoAttack
from advshield.attacks.ensemble import member_robust_accuracy
from advshield.attacks.health import run_health_checks
from advshield.attacks.runner import run_attack
from advshield.data import ImageDataset
from advshield.experiment.health import reporting_checks
from advshield.metrics.interval import wilson_interval

Progress = Callable[[str, int, int], None]


def _announced(member, announce: Callable[[str], None]):
    """``member`` itself, its ``perturb`` calling ``announce(name)`` first (the member stays the object the
    ensemble configures, e.g. its ``max_rows``)."""
    perturb = member.perturb

    def run(*args, **kwargs):
        announce(member.name)
        return perturb(*args, **kwargs)

    member.perturb = run
    return member


class _ReportingAutoAttack(AutoAttack):
    """AutoAttack reporting ``progress(what, done, total)`` as each member starts on each of ``n_batches``
    batches (done: the member starts before it; a batch that every image leaves early skips the rest)."""

    def __init__(self, eps: float, version: str, n_batches: int, progress: Progress) -> None:
        super().__init__(eps=eps, norm="linf", version=version)
        self._batch, self._n_batches, self._progress = 0, n_batches, progress  # private: not in params()

    def perturb(self, *args, **kwargs):
        self._batch += 1
        return super().perturb(*args, **kwargs)

    def members(self, version=None):
        members, b = super().members(version), self._batch
        total = self._n_batches * len(members)

        def announce(k: int, name: str) -> None:
            self._progress(f"robust card: autoattack {name} (batch {b}/{self._n_batches})",
                           min((b - 1) * len(members) + k, total), total)

        return [_announced(m, lambda name, k=k: announce(k, name)) for k, m in enumerate(members)]


def _ensemble(eps: float, version: str, n_batches: int, progress: Progress | None):
    """The ensemble the card runs: as registered, or reporting to ``progress`` (the same attack)."""
    if progress is None:
        return ATTACKS.create("autoattack", eps=eps, norm="linf", version=version)
    return _ReportingAutoAttack(eps, version, n_batches, progress)


def robust_accuracy_card(model: nn.Module, test: ImageDataset, eps: float, n: int, version: str = "standard",
                         n_checks: int = 100, batch_size: int = 500, seed: int = 0,
                         device: torch.device | str = "cpu", progress: Progress | None = None) -> dict:
    """The ``robust_test`` entry of a robust model's card (fractions of the ``n`` images); ``progress(what, done,
    total)`` follows the ensemble's members and the checks' runs."""
    data = test.head(n)
    x, y = data.tensors()
    pipeline = Pipeline(model.to(device).eval())
    n_batches = math.ceil(len(y) / batch_size)
    t0 = time.perf_counter()
    result = run_attack(_ensemble(eps, version, n_batches, progress), pipeline, x, y,
                        batch_size=batch_size, seed=seed, device=device)
    seconds = time.perf_counter() - t0
    if progress is not None:
        progress("robust card: autoattack done", 1, 1)
    robust = int((result.adv_pred == y).sum())
    low, high = wilson_interval(robust, len(y))
    card = {"attack": "autoattack", "version": version, "norm": "linf", "eps": eps, "n": len(y),
            "images": f"the first {len(y)} of the {test.meta.get('source') or test.name} test split",
            "clean_accuracy": float((result.clean_pred == y).float().mean()),
            "robust_accuracy": robust / len(y), "interval_95": [low, high],
            "per_member": member_robust_accuracy(result), "batch_size": batch_size,
            "seconds": round(seconds, 1), "device": str(device)}
    if n_checks:
        xc, yc = x[:n_checks].to(device), y[:n_checks].to(device)
        with reporting_checks(pipeline, progress, "robust card checks apgd-ce") as checked:
            report = run_health_checks(lambda e, s, r: create_attack("apgd-ce", eps=e, steps=s, restarts=r),
                                       checked, xc, yc, eps, 100, threat="white-box", seed=seed,
                                       warn=False)
        card["health"] = {"attack": "apgd-ce", "n": len(yc), "ok": report.ok, "checks": report.checks}
    return card
