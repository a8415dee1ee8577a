"""What an adversarially trained model's card states: AutoAttack robust accuracy and the attack's self-checks.

The ensemble (Croce & Hein 2020) runs white-box on the first ``n`` test images; the health checks
(:func:`advshield.attacks.health.run_health_checks`: convergence, gradient-free Square, unbounded eps, noise,
gradients) run APGD-CE at the same budget on the first ``n_checks`` of them.
"""

from __future__ import annotations

import time

import torch
from torch import nn

from advshield.attacks import ATTACKS, Pipeline, create_attack
from advshield.attacks.ensemble import member_robust_accuracy
from advshield.attacks.health import run_health_checks
from advshield.attacks.runner import run_attack
from advshield.data import ImageDataset
from advshield.metrics.interval import wilson_interval


def robust_accuracy_card(model: nn.Module, test: ImageDataset, eps: float, n: int, version: str = "standard",
                         n_checks: int = 100, batch_size: int = 500, seed: int = 0,
                         device: torch.device | str = "cpu") -> dict:
    """The ``robust_test`` entry of a robust model's card (fractions of the ``n`` images)."""
    data = test.head(n)
    x, y = data.tensors()
    pipeline = Pipeline(model.to(device).eval())
    t0 = time.perf_counter()
    result = run_attack(ATTACKS.create("autoattack", eps=eps, norm="linf", version=version), pipeline, x, y,
                        batch_size=batch_size, seed=seed, device=device)
    seconds = time.perf_counter() - t0
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
        report = run_health_checks(lambda e, s, r: create_attack("apgd-ce", eps=e, steps=s, restarts=r),
                                   pipeline, xc, yc, eps, 100, threat="white-box", seed=seed,
                                   warn=False)
        card["health"] = {"attack": "apgd-ce", "n": len(yc), "ok": report.ok, "checks": report.checks}
    return card
