"""The detection experiment's detector-aware row: several attacks on the joint objective, each a stored set of
the same images, and their per-image worst case (an image is robust only if no attack turned it into an
unflagged misclassification), then the self-checks' runs on top (:func:`worst_case_with_checks`).

No single attack is strongest against every detector (``benchmarks/detector_attacks.py``: on MNIST, APGD-CE
broke more images than PGD through MagNet, PGD with a small step more than PGD with Madry et al.'s step), so the
row takes them all, as AutoAttack takes its members."""

from __future__ import annotations

from typing import Sequence

import torch

from advshield.detectors import Detector
from advshield.evaluation.verdict import check_mask
from advshield.experiment import AttackSetting, RunContext, Target, acquire_set
from advshield.metrics import wilson_interval


def default_adaptive(eps: float = 0.3, steps: int = 100) -> list[AttackSetting]:
    """The detector-aware attacks of the detection experiment, strongest first (the first is the one the
    self-checks vary): APGD-CE (Croce & Hein 2020) with two restarts, the first from the clean image and the
    second, on the images it left, from the eps-sphere (neither start is stronger on every detector: on the
    cmag-mnist run's detectors, 100 images, APGD-CE leaves MagNet 0.20 from x and 0.93 from the sphere, CMAG 0.06
    and 0.03; docs/benchmarks/detector-attacks-*-mnist.json), and L-inf PGD with Madry et al.'s step rule
    2.5 eps / steps, both with ``steps`` steps."""
    return [AttackSetting("apgd-ce", {"eps": eps, "steps": steps, "restarts": 2}, "adaptive"),
            AttackSetting("pgd", {"eps": eps, "steps": steps, "abs_stepsize": 2.5 * eps / steps, "early_stop": True},
                          "adaptive")]


def _rates(unbroken: torch.Tensor, clean: torch.Tensor) -> dict:
    n, robust, ok = len(unbroken), int(unbroken.sum()), int(clean.sum())
    evasion = float((clean & ~unbroken).sum()) / max(ok, 1)
    return {"n": n, "n_clean_correct": ok, "evasion_rate": evasion, "detection_rate": 1 - evasion,
            "robust_accuracy": robust / max(n, 1), "robust_accuracy_ci95": list(wilson_interval(robust, n))}


def adaptive_row(settings: Sequence[AttackSetting], victim: Target, detector: Detector, detector_id: dict, data,
                 ctx: RunContext, dataset: str) -> tuple[dict, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(row, per-image unbroken over every attack, clean right and unflagged, the first attack's own unbroken).

    The row's ``robust_accuracy`` (95 % interval), ``evasion_rate`` and ``detection_rate`` are the per-image
    worst case over ``settings``; ``members`` holds each attack's own numbers. Evasion = share of the images right
    and unflagged when clean that some attack turned into an unflagged misclassification; robust accuracy = share
    of all images right and unflagged when clean that no attack did (a flagged clean image counts as an error)."""
    if not settings:
        raise ValueError("the detector-aware row needs at least one attack setting")
    members, unbroken, clean, first = [], None, None, None
    for setting in settings:
        r = acquire_set(setting, victim, data, ctx, dataset=dataset, detector=detector, detector_id=detector_id).result
        own = r.unbroken.cpu()
        clean = r.clean_correct.cpu() if clean is None else clean & r.clean_correct.cpu()  # right, unflagged in all
        first = own if first is None else first
        unbroken = own if unbroken is None else unbroken & own
        members.append({"attack": setting.attack, "params": setting.create().params(), **_rates(own, clean)})
        ctx.log(f"adaptive {setting.attack} {setting.params}: robust accuracy {members[-1]['robust_accuracy']:.4f}")
    row = {"attack": " + ".join(m["attack"] for m in members), "params": members[0]["params"], "members": members,
           **_rates(unbroken, clean)}
    ctx.log(f"adaptive worst case over {row['attack']}: robust accuracy {row['robust_accuracy']:.4f}")
    return row, unbroken, clean, first


def worst_case_with_checks(unbroken: torch.Tensor, block: dict) -> dict:
    """The adaptive row's per-image worst case with the self-checks' runs at its budget (``block``: their
    ``after_checks`` with a per-image mask; the first attack again, twice its steps and restarts, Square) on the
    images they covered: robust accuracy and interval over the row's images, and how many images the checks
    broke that no attack of the row had."""
    robust = unbroken.bool() & check_mask(block, len(unbroken))
    k, n = int(robust.sum()), len(robust)
    return {"robust_accuracy": k / max(n, 1), "robust_accuracy_ci95": list(wilson_interval(k, n)), "n": n,
            "checked_images": min(len(block["per_image"]), n), "broken_by_checks": int(unbroken.sum()) - k,
            "runs": block.get("runs", "")}


__all__ = ["adaptive_row", "default_adaptive", "worst_case_with_checks"]
