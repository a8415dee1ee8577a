"""The self-checks of an adaptive setting (:func:`advshield.attacks.health.run_health_checks`), on a subset.

Convergence (twice the steps and restarts must not lower robust accuracy by a point or more), the
gradient-free Square attack must not beat the gradient attack, an unbounded attack must succeed, random noise
must not beat the attack, gradients must be finite and non-zero. An attack with an eps but no steps budget
(FGSM, the AutoAttack ensemble) is checked through APGD-CE at its budget: the checks probe the pipeline's
gradients, which every gradient attack relies on. One without an eps (DeepFool, CW) is skipped: the
unbounded and noise checks need a budget. Each check's run reports to ``ctx.progress``
(:func:`reporting_checks`).
"""

from __future__ import annotations

import inspect
from contextlib import contextmanager
from typing import Callable, Iterator

import torch

from advshield.attacks import ATTACKS, Pipeline, create_attack
from advshield.attacks.health import HealthReport, run_health_checks
from advshield.data import ImageDataset
from advshield.experiment.context import RunContext
from advshield.experiment.setting import AttackSetting
from advshield.metrics import wilson_interval

# The runs of run_health_checks, in its order: each asks the pipeline for one attack surface.
CHECK_STEPS = ("convergence", "convergence, doubled steps and restarts", "gradient-free (Square)", "unbounded eps",
               "noise", "gradients")


class _Announcing(Pipeline):
    """``pipeline``'s own modules, calling ``announce()`` whenever an attack asks for its surface."""

    def __init__(self, pipeline: Pipeline, announce: Callable[[], None]) -> None:
        super().__init__(pipeline.classifier, pipeline.defense, pipeline.detector)
        self._announce = announce

    def surface(self, *args, **kwargs):
        self._announce()
        return super().surface(*args, **kwargs)


@contextmanager
def reporting_checks(pipeline: Pipeline, progress: Callable[[str, int, int], None] | None,
                     what: str, first: int = 0) -> Iterator[Pipeline]:
    """The pipeline to give :func:`run_health_checks`: ``pipeline`` itself without ``progress``; else the same
    modules, reporting ``progress(f"{what}: <check>", done, total)`` as each run of the checks starts
    (:data:`CHECK_STEPS`, from index ``first``: 1 where the base run is the row's) and once they are done.
    Nothing is computed differently."""
    if progress is None:
        yield pipeline
        return
    total, started = len(CHECK_STEPS), list(range(first))

    def announce() -> None:
        k = len(started)
        started.append(k)
        progress(f"{what}: {CHECK_STEPS[k] if k < total else 'check'}", min(k, total), total)

    yield _Announcing(pipeline, announce)
    progress(f"{what}: done", total, total)


def _probe(setting: AttackSetting) -> tuple[str, dict, float, int, int, str] | None:
    """(attack, fixed parameters, eps, steps, restarts, norm) the checks run, or None when there is no budget."""
    accepted = inspect.signature(ATTACKS.entry(setting.attack).factory).parameters
    attack = setting.create()
    eps, norm = getattr(attack, "eps", None), getattr(attack, "norm", None)
    norm = getattr(norm, "value", norm) or "linf"
    if eps is None:
        return None
    if {"steps", "restarts"} <= set(accepted):
        fixed = {k: v for k, v in setting.params.items()
                 if k in accepted and k not in ("eps", "steps", "restarts", "abs_stepsize")}
        if setting.params.get("abs_stepsize") and "rel_stepsize" in accepted and eps:  # steps scale with the budget
            fixed["rel_stepsize"] = setting.params["abs_stepsize"] / eps
        return setting.attack, fixed, eps, attack.steps, attack.restarts, norm
    return "apgd-ce", {"norm": norm}, eps, 100, 1, norm


def after_checks(report: HealthReport, attack: str, eps: float, norm: str, steps: int, restarts: int,
                 threat: str, n: int) -> dict:
    """What the checks' own attack runs at the checked budget reached on their ``n`` images: ``attack``, its run
    with twice the steps and restarts, then Square, each on the images still robust. ``robust_accuracy`` (with
    its interval) is theirs; ``per_image`` ('1' = no run won the image, in the order of the checked images; see
    :attr:`~advshield.attacks.health.HealthReport.not_won`) is there where the pipeline is deterministic, and
    the evaluation's worst case then takes these runs too (:func:`~advshield.evaluation.verdict.worst_case`,
    for rows of the same ``threat`` kind): a stronger run a check found lowers the verdict."""
    k = round(report.robust_accuracy * n)
    block = {"robust_accuracy": report.robust_accuracy, "ci95": list(wilson_interval(k, n)), "n": n,
             "budget": {"norm": norm, "eps": float(f"{eps:.4g}")}, "threat": threat,
             "runs": f"{attack} {steps} steps x {restarts} restart(s), then {2 * steps} x {2 * restarts}, then Square"}
    if report.not_won is not None:
        block["per_image"] = "".join("1" if b else "0" for b in report.not_won.tolist())
    return block


def setting_health(setting: AttackSetting, pipeline: Pipeline, data: ImageDataset, ctx: RunContext, n: int = 100,
                   eot_samples: int = 8, shared: dict | None = None,
                   base: tuple[torch.Tensor, torch.Tensor] | None = None) -> dict:
    """Run the checks for ``setting`` (adaptive: through the whole ``pipeline``) on the first ``n`` images.

    Returns ``{"attack", "n", "ok", "checks", "failures", "after_checks"}`` (:func:`after_checks`), or ``{"skipped": why}`` for an attack without an
    eps budget (the unbounded and noise checks need one). Each check's run reports to ``ctx.progress``.

    ``shared``: a dict the caller passes to every setting it checks through one pipeline on one dataset.
    Settings whose checks are the same runs (FGSM and the AutoAttack ensemble at one eps are both checked with
    APGD-CE at that budget) then run them once: the later ones get the first one's result, marked
    ``"same_checks_as"`` with its label (:func:`~advshield.evaluation.verdict.health_flags` names them
    together). Through a deterministic pipeline the numbers are those a second run would give (the runs are
    seeded with ``ctx.seed``; a base taken from the row is its own draw of the same attack); through a defense that draws from the global RNG they are one draw of the same
    runs.

    ``base``: the setting's own run on (at least) these images, as the evaluation judged it, per image (right,
    and unflagged, on the attacked image as :attr:`~advshield.attacks.base.AttackResult.unbroken` says; right and
    unflagged when clean). Where the checks attack with the setting's own attack (not an FGSM or
    ensemble checked through APGD-CE) they start from it instead of running it again (``"base": "the row"``).
    """
    probe = _probe(setting)
    if probe is None:
        return {"skipped": f"{setting.attack} has no eps budget to vary"}
    name, fixed, eps, steps, restarts, norm = probe
    modules = tuple(id(getattr(pipeline, part, None)) for part in ("classifier", "defense", "detector"))
    own = name == setting.attack and base is not None and min(len(base[0]), len(base[1])) >= min(n, len(data))
    key = (modules, id(data), name, repr(sorted(fixed.items())), eps, steps, restarts, norm,
           str(setting.threat.kind), n, eot_samples)
    if shared is not None and not own and key in shared:  # checks from a row's own run are that row's alone
        first_label, first = shared[key]
        return dict(first, same_checks_as=first_label)
    x, y = data.tensors(slice(0, n))
    first = (base[0][:len(y)], base[1][:len(y)]) if own else None
    what = f"checks {setting.name}" + (f" through {name}" if name != setting.attack else "")
    with reporting_checks(pipeline.to(ctx.device), ctx.progress, what, first=1 if own else 0) as checked:
        report = run_health_checks(lambda e, s, r: create_attack(name, eps=e, steps=s, restarts=r, **fixed),
                                   checked, x, y, eps, steps, restarts=restarts, norm=norm,
                                   threat=setting.threat.kind, eot_samples=eot_samples, seed=ctx.seed, warn=False,
                                   base=first)
    health = {"attack": name, "n": len(y), "ok": report.ok, "checks": report.checks, "failures": report.failures,
              "base": "the row" if own else "run by the checks",
              "after_checks": after_checks(report, name, eps, norm, steps, restarts, setting.threat.kind.value,
                                           len(y))}
    if shared is not None and not own:
        shared[key] = (setting.qualified_name, health)
    return health


__all__ = ["CHECK_STEPS", "after_checks", "reporting_checks", "setting_health"]
