"""The verdict of an evaluation: intervals, the per-image worst case over adaptive attacks, and red flags.

Headline (house rules): clean accuracy, clean accuracy through the defense, recovery (over originally
correct images) and the adaptive worst-case robust accuracy with its 95 % interval: an image counts as
robust only if it is classified correctly through the defense under *every* adaptive attack run on it
(the AutoAttack convention, Croce & Hein 2020). Rows keep the papers' success rate, labelled as theirs.
"""

from __future__ import annotations

from typing import Callable, Iterable

import torch

from advshield.attacks.base import ATTACKS, Norm
from advshield.attacks.health import check_adaptive_vs_oblivious
from advshield.errors import AdvShieldError
from advshield.experiment import Threat, ThreatModel
from advshield.metrics import wilson_interval


def with_interval(row: dict) -> dict:
    """``row`` with the 95 % Wilson interval of its robust (restored) accuracy."""
    n = int(row["n"])
    lo, hi = wilson_interval(round(row["restored_accuracy"] * n), n)
    return dict(row, restored_accuracy_ci95=[lo, hi])


def budget_of(row: dict) -> tuple[str, float] | None:
    """(norm, eps) of a row's attack, from its recorded parameters and the registry's norm (a ``norm`` parameter,
    as AutoAttack's, overrides it); None for an attack without a perturbation bound (CW or DeepFool as minimum-norm
    attacks, the spatial attack, an unknown name), whose robust accuracy belongs to no threat model."""
    params = row.get("params") or {}
    eps = params.get("eps")
    if isinstance(eps, bool) or not isinstance(eps, (int, float)):
        return None
    try:
        norm = params.get("norm") or ATTACKS.entry(row["attack"]).meta.get("norm")
    except AdvShieldError:
        return None
    return (Norm(norm).value, float(f"{float(eps):.4g}")) if norm else None  # 0.03137 and 8/255 are one budget


#: The attacks whose budget the worst case takes, strongest first (the evaluator's chosen threat model).
HEADLINE_ATTACKS = ("autoattack", "apgd-ce", "apgd-dlr", "apgd-t", "pgd", "pgd-l2")


def worst_case(rows: list[dict], correct: list[torch.Tensor | None], kind: ThreatModel,
               reduce: Callable[[dict], dict] = lambda sums: sums, checked: Iterable[dict] = ()) -> dict | None:
    """Per-image worst case over the rows of threat ``kind`` at one threat budget: robust = correct under every
    attack bounded by the same norm and eps (the AutoAttack convention).

    The budget (eps to 4 significant digits) is that of the strongest attack run: the AutoAttack ensemble's, else
    an APGD's or PGD's (:data:`HEADLINE_ATTACKS`, in that order), else the one most rows share (the smaller eps on
    a tie); unbounded attacks and other budgets are left out and named in ``excluded`` (their rows keep their own
    robust accuracy), so an attack left at a default budget cannot move the verdict.

    ``correct[i]`` is row i's per-image mask: right through the defense when clean and when attacked
    (same images, in order). Rows on fewer images are compared on the images they share (the first ones). Under
    torchrun each process holds its shard's masks and ``reduce`` sums the counts over processes.

    ``checked``: the health checks' ``after_checks`` blocks (:func:`~advshield.experiment.health.after_checks`).
    Those of threat ``kind`` at the chosen budget with a per-image mask join the worst case on the images they
    cover (the first ones, on the first process): an image a check's run won is not robust. ``self_checks``
    then says how many images they covered, how many of those they broke beyond the rows, and which runs.
    """
    rows_of_kind = [(r, c) for r, c in zip(rows, correct) if c is not None and Threat.parse(r["threat"]).kind is kind]
    groups: dict[tuple[str, float], list] = {}
    for r, c in rows_of_kind:
        budget = budget_of(r)
        if budget is not None:
            groups.setdefault(budget, []).append((r, c))
    if not groups:
        return None
    def rank(b: tuple[str, float]) -> tuple:
        names = {r["attack"] for r, _ in groups[b]}
        first = min((i for i, a in enumerate(HEADLINE_ATTACKS) if a in names), default=len(HEADLINE_ATTACKS))
        return -first, len(groups[b]), -b[1]

    budget = max(groups, key=rank)
    picked = groups[budget]
    n = min(len(c) for _, c in picked)
    robust = torch.ones(n, dtype=torch.bool)
    for _, c in picked:
        robust &= c[:n].bool()
    covered, before, runs = 0, int(robust.sum()), []
    for block in checked:
        mask = check_mask(block, n, budget) if block.get("threat", kind.value) == kind.value else None
        if mask is not None:
            robust &= mask
            covered = max(covered, min(len(block["per_image"]), n))
            runs += [block["runs"]] if block.get("runs") and block["runs"] not in runs else []
    total = reduce({"robust": float(robust.sum()), "n": float(n), "covered": float(covered),
                    "broken_by_checks": float(before - int(robust.sum()))})
    k, n = int(total["robust"]), int(total["n"])
    weakest = min(picked, key=lambda rc: rc[0]["restored_accuracy"])[0]
    return {"accuracy": k / n if n else 0.0, "ci95": list(wilson_interval(k, n)), "n": n,
            "attacks": [r["attack"] for r, _ in picked], "threat": kind.value, "strongest_single": weakest["attack"],
            "budget": {"norm": budget[0], "eps": budget[1]},
            "excluded": [r["attack"] for r, _ in rows_of_kind if all(r is not p for p, _ in picked)],
            **({"self_checks": {"images": int(total["covered"]), "broken": int(total["broken_by_checks"]),
                                "runs": runs}} if total["covered"] else {})}


def headline(rows: list[dict], correct: list[torch.Tensor | None],
             reduce: Callable[[dict], dict] = lambda sums: sums, health: dict[str, dict] | None = None) -> dict:
    """The card's verdict block; ``correct`` and ``reduce`` as in :func:`worst_case`; the adaptive worst case also
    takes the runs of the ``health`` checks (``{label: setting_health(...)}``) at its budget."""
    first, checked = rows[0] if rows else {}, checks_of(health)
    oblivious = [r for r in rows if Threat.parse(r["threat"]).kind is ThreatModel.WHITE_BOX]
    return {"clean_accuracy": first.get("clean_accuracy"), "defended_clean_accuracy": first.get("defended_clean_accuracy"),
            "n": first.get("n"),
            "recovery_rate_min": min((r["recovery_rate"] for r in oblivious), default=None),
            "adaptive_worst_case": worst_case(rows, correct, ThreatModel.ADAPTIVE, reduce, checked),
            # white-box checks exist only where the classifier is undefended (the white-box attack is the adaptive one)
            "oblivious_worst_case": worst_case(rows, correct, ThreatModel.WHITE_BOX, reduce, checked)}


def check_mask(block: dict, n: int, budget: tuple[str, float] | None = None) -> torch.Tensor | None:
    """An ``after_checks`` block's per-image mask over ``n`` images (True past the checked ones), or None without
    one or, given ``budget`` ((norm, eps) as :func:`budget_of`; the block's eps is rounded alike), at another."""
    b, per_image = block.get("budget") or {}, block.get("per_image")
    if not per_image or (budget is not None and (b.get("norm"), b.get("eps")) != budget):
        return None
    mask = torch.ones(n, dtype=torch.bool)
    m = min(len(per_image), n)
    mask[:m] = torch.tensor([ch == "1" for ch in per_image[:m]], dtype=torch.bool)
    return mask


def checks_of(health: dict[str, dict] | None) -> list[dict]:
    """The ``after_checks`` blocks of ``health`` (``{label: setting_health(...)}``), for :func:`worst_case`."""
    return [h["after_checks"] for h in (health or {}).values() if h.get("after_checks")]


def above_clean(accuracy: float, clean: float, n: int) -> bool:
    """Label leaking: ``accuracy`` above the ``clean`` accuracy by more than one of ``n`` images (accuracies are
    counts / n, so 91/100 - 90/100 > 0.01 in floats: hence the 1e-9)."""
    return accuracy - clean > 1 / max(n, 1) + 1e-9


def _params_text(params: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(params.items())) or "defaults"


def oblivious_counterpart(row: dict, oblivious: list[dict]) -> dict | None:
    """The oblivious row an adaptive ``row`` must not leave more accuracy than: the same attack on the same
    images (``n``) with the same parameters, else at the same (norm, eps) budget with other parameters (a preset's
    ``adaptive_params`` give the attack through the defense more steps: knowing the defense and running longer
    it must still do at least as well). Of several candidates the one leaving the most accuracy is taken, so
    the flag fires only where the adaptive attack is weaker than every oblivious run of its budget."""
    same = [o for o in oblivious if o["attack"] == row["attack"] and o["n"] == row["n"]]
    exact = [o for o in same if o["params"] == row["params"]]
    if exact:
        return exact[0]
    budget = budget_of(row)  # (norm, eps); None for CW, DeepFool, spatial: other parameters are another attack
    at_budget = [o for o in same if budget is not None and budget_of(o) == budget]
    return max(at_budget, key=lambda o: o["restored_accuracy"], default=None)


def red_flags(rows: list[dict], num_classes: int | None = None) -> list[dict]:
    """Red flags readable from the rows (``{"check", "detail"}`` each).

    * adaptive-vs-oblivious: an adaptive attack leaves more robust accuracy than the same attack ignoring the
      defense on the same images at the same budget (by more than one image; :func:`oblivious_counterpart`):
      the adaptive attack is broken or too weak (missing EOT or BPDA?);
    * label-leaking: accuracy through the defense above the clean accuracy: the defense reads something the
      clean image does not carry; the row measures the protocol, not robustness (never a headline);
    * chance-level: clean accuracy at chance: does the model expect normalised inputs?
    """
    flags: list[dict] = []
    oblivious = [r for r in rows if Threat.parse(r["threat"]).kind is ThreatModel.WHITE_BOX]
    for r in rows:
        slack = 1 / max(r["n"], 1) + 1e-9  # one image; accuracies are counts / n, so 91/100 - 90/100 > 0.01 in floats
        o = oblivious_counterpart(r, oblivious) if Threat.parse(r["threat"]).kind is ThreatModel.ADAPTIVE else None
        if o is not None:
            c = check_adaptive_vs_oblivious(r["restored_accuracy"], o["restored_accuracy"], slack)
            if not c["passed"]:
                differs = "" if o["params"] == r["params"] else (
                    f" (adaptive {_params_text(r['params'])}; oblivious {_params_text(o['params'])})")
                flags.append({"check": "adaptive-vs-oblivious", "detail": f"{r['attack']}{differs}: {c['detail']}"})
        if above_clean(r["restored_accuracy"], r["clean_accuracy"], r["n"]):
            flags.append({"check": "label-leaking", "detail": (
                f"{r['threat']} {r['attack']}: accuracy through the defense {r['restored_accuracy']:.3f} above the "
                f"clean accuracy {r['clean_accuracy']:.3f}: the defense adds what the clean image lacks; this row "
                "measures the protocol, not robustness")})
    if num_classes and rows and rows[0]["clean_accuracy"] <= 1 / num_classes + 1 / max(rows[0]["n"], 1):
        flags.append({"check": "chance-level", "detail": (
            f"clean accuracy {rows[0]['clean_accuracy']:.3f} is at chance (1/{num_classes}): does the model expect "
            "normalised inputs? advshield passes images in [0, 1]; put any normalisation inside the model")})
    return flags


def worst_case_flags(verdict: dict) -> list[dict]:
    """``adaptive-vs-oblivious`` on the headline itself: the adaptive worst case above the oblivious one on the same
    images at the same budget by more than one image (each attack may pass its own row check while the ensemble
    of attacks that know the defense still leaves more than those that ignore it)."""
    a, o = verdict.get("adaptive_worst_case"), verdict.get("oblivious_worst_case")
    if not a or not o or a.get("budget") != o.get("budget") or a["n"] != o["n"]:
        return []
    if a["accuracy"] <= o["accuracy"] + 1 / max(a["n"], 1) + 1e-9:
        return []
    return [{"check": "adaptive-vs-oblivious", "detail": (
        f"the adaptive worst case {a['accuracy']:.3f} (over {', '.join(a['attacks'])}) is above the oblivious worst "
        f"case {o['accuracy']:.3f} (over {', '.join(o['attacks'])}) on the same {a['n']} images at "
        f"{a['budget']['norm']} eps {a['budget']['eps']:g}: the attacks that know the defense do worse than those "
        "that ignore it (missing BPDA or EOT?)")}]


def health_flags(health: dict[str, dict]) -> list[dict]:
    """The failed health checks of every adaptive setting (``{label: setting_health(...)}``) as red flags, naming
    the attack the checks ran where it is not the setting's own (a single-step FGSM is checked with APGD-CE).
    Settings that share one run of the checks (``same_checks_as``) are named together in one flag per check."""
    sharing: dict[str, list[str]] = {}  # label -> the labels reusing its checks (present, with the same results)
    for label, h in health.items():
        first = health.get(h.get("same_checks_as"))
        if first is not None and first.get("checks") == h.get("checks"):
            sharing.setdefault(h["same_checks_as"], []).append(label)
    reused = {label for labels in sharing.values() for label in labels}

    def name(label: str, h: dict) -> str:
        labels, checked = [label, *sharing.get(label, [])], h.get("attack")
        named = " and ".join(labels)
        return f"{named} (checked with {checked})" if checked and any(checked != x.split()[-1] for x in labels) \
            else named
    return [{"check": f"health: {c['name']}", "detail": f"{name(label, h)}: {c['detail']}"}
            for label, h in health.items() if label not in reused for c in h.get("failures", [])]


__all__ = ["check_mask", "checks_of", "headline", "health_flags", "red_flags", "with_interval", "worst_case",
           "worst_case_flags"]
