"""Self-checks of an adaptive setting (see :mod:`advshield.attacks.health`), run on a small subset."""

from __future__ import annotations

import inspect

from advshield.attacks import ATTACKS, Pipeline, create_attack
from advshield.attacks.health import check_attack_health
from advshield.data import ImageDataset
from advshield.experiment.context import RunContext
from advshield.experiment.setting import AttackSetting


def setting_health(setting: AttackSetting, pipeline: Pipeline, data: ImageDataset, ctx: RunContext,
                   n: int = 100) -> dict:
    """Run the health checks for ``setting`` through ``pipeline`` on the first ``n`` images.

    Returns ``{"ok", "checks"}``, or ``{"skipped": why}`` for an attack without an eps/steps budget to vary.
    """
    accepted = inspect.signature(ATTACKS.entry(setting.attack).factory).parameters
    if not {"eps", "steps"} <= set(accepted):
        return {"skipped": f"{setting.attack} has no eps/steps budget to vary"}
    params = setting.params
    fixed = {k: v for k, v in params.items() if k in accepted and k not in ("eps", "steps")}
    eps = params.get("eps", accepted["eps"].default)
    steps = params.get("steps", accepted["steps"].default)
    x, y = data.tensors(slice(0, n))
    report = check_attack_health(lambda e, s: create_attack(setting.attack, eps=e, steps=s, **fixed),
                                 pipeline.to(ctx.device), x, y, eps, steps, warn=False)
    return {"ok": report.ok, "checks": report.checks, "failures": report.failures}


__all__ = ["setting_health"]
