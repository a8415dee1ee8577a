"""Beyond the perturbation-propagation paper: do its denoisers hold when the attacker sees them?

The paper measures its denoisers (U-Net, FusionNet) only on sets crafted without them (Table 5). Here each
denoiser guards the reference classifier and goes through the same evaluation as every restorer of this
project (:func:`advshield.evaluation.run_evaluation`): the preset's attacks crafted on the classifier alone
(white-box, oblivious) beside the same attacks through the denoiser (adaptive), then the AutoAttack ensemble,
the per-image worst case over the adaptive attacks with its 95 % interval, and the health checks of every
adaptive setting (convergence, gradient masking), whose failures are the report's Red flags, with label
leaking in Table 5 (a set through a denoiser classified better than the clean images).
"""

from __future__ import annotations

import json
from pathlib import Path

from advshield.evaluation import run_evaluation
from advshield.evaluation.verdict import above_clean
from advshield.experiment import AttackSetting, RunContext
from advshield.metrics.interval import wilson_interval
from advshield.report.verdict import percent, red_flags, threat_label, worst_case_scope
from advshield.reproduce.propagation.preset import PropagationBudget, PropagationPreset, denoiser_key
from advshield.reproduce.restoration.preset import ENSEMBLE
from advshield.reproduce.sample_size import adaptive_reason, adaptive_reason_text
from advshield.zoo import resolve_checkpoint


def adaptive_settings(preset: PropagationPreset) -> list[AttackSetting]:
    """Every attack white-box (oblivious) and adaptive, on the same images; the ensemble last, adaptive only."""
    spec = preset.adaptive
    if spec is None:
        return []
    out = [AttackSetting(a, p, threat) for threat in ("white-box", "adaptive") for a, p in spec.attacks.items()]
    if spec.ensemble is not None:
        out.append(AttackSetting(ENSEMBLE, spec.ensemble, "adaptive"))
    return out


def attack_denoisers(preset: PropagationPreset, budget: PropagationBudget, out: Path, ctx: RunContext,
                     full_n_adaptive: int | None = None) -> dict:
    """Evaluate every denoiser of ``preset`` in front of its reference classifier on the first
    ``budget.n_adaptive`` test images; the evaluation cards by denoiser (each also written, with its
    ``report.md`` and ``report.html``, under ``out/adaptive/<denoiser_key>``). Empty when the preset asks none.
    ``full_n_adaptive``: the full variant's count when ``budget`` is the fast one (its reason for fewer than 500)."""
    settings = adaptive_settings(preset)
    if not settings or not budget.n_adaptive:
        return {}
    cards = {}
    for name in preset.denoisers:
        ctx.log(f"== {name} guarding {preset.reference}: oblivious and adaptive attacks on {budget.n_adaptive} "
                "test images")
        cards[name] = run_evaluation(preset.reference, str(resolve_checkpoint(name, preset.dataset.value)), settings,
                                     out / report_folder(name), ctx, dataset=preset.dataset.value,
                                     n=budget.n_adaptive, figures=False, checks=budget.n_checks,
                                     sample_reason=adaptive_reason(budget.model_dump(), full_n_adaptive))
    return cards


def report_folder(name: str) -> str:
    """Where a denoiser's evaluation card and reports are written, relative to the run folder."""
    return f"adaptive/{denoiser_key(name)}"


def table5_red_flags(models: dict[str, dict]) -> list[dict]:
    """Label leaking in Table 5: a set through a denoiser classified more accurately than the clean images by more
    than one image (``models``: run -> its ``propagation.json``)."""
    flags = []
    for run, card in models.items():
        acc, n = card["accuracy"], card["n"]
        for key, value in acc.items():
            if "+" in key and not key.startswith("clean+") and above_clean(value, acc["clean"], n):
                s, d = key.split("+", 1)
                flags.append({"check": "label-leaking", "detail": (
                    f"{run}: the {s} set through {d} is classified at {value:.3f}, above the clean images' "
                    f"{acc['clean']:.3f}: the denoiser fixes mistakes the classifier makes on clean images, which "
                    "is not robustness")})
    return flags


def denoiser_red_flags(cards: dict[str, dict]) -> list[dict]:
    """Every evaluation card's red flags, each naming its denoiser."""
    return [{"check": f["check"], "detail": f"{name}: {f['detail']}"} for name, card in cards.items()
            for f in red_flags(card)]


def red_flag_section(flags: list[dict], cards: dict[str, dict], budget: dict) -> list[str]:
    """The report's Red flags section (Markdown lines): which checks ran, then every flag, or "None fired."."""
    if cards and budget.get("n_checks"):
        ran = ("Checks run on every adaptive setting through each denoiser (beyond the paper) on the first "
               f"{budget['n_checks']} images: doubling the steps and restarts must not lower robust accuracy by a "
               "point or more (convergence), the gradient-free Square attack must not beat the gradient attacks, "
               "the unbounded attack must reach about 100 %, random noise must not beat the attack; on every row, "
               "the adaptive attack must not leave more than the oblivious one and no restored accuracy may exceed "
               "clean accuracy (label leaking); and Table 5 must not show a set through a denoiser classified "
               "better than the clean images.")
    elif cards:
        ran = ("The health checks were off (n_checks 0): only the row checks ran (adaptive not above oblivious, no "
               "restored accuracy above clean accuracy) and Table 5's label-leaking check.")
    else:
        ran = ("No denoiser was attacked in this run (the preset has no adaptive block, or n_adaptive is 0): only "
               "Table 5's label-leaking check ran, and the denoisers' robustness is not measured here.")
    return ["## Red flags", "", ran, ""] + ([f"- **{f['check']}**: {f['detail']}" for f in flags] or ["None fired."])


def _rows(card: dict) -> list[str]:
    lines = ["| attack | parameters | threat | clean | clean through the denoiser | attacked, no denoiser | robust "
             "accuracy (95 % CI) | recovery |", "|---|---|---|---|---|---|---|---|"]
    for r in card["rows"]:
        lo, hi = r.get("restored_accuracy_ci95") or (None, None)
        ci = f" [{percent(lo)}, {percent(hi)}]" if lo is not None else ""
        lines.append(f"| {r['attack']} | {json.dumps(r.get('params') or {}, sort_keys=True)} | "
                     f"{threat_label(r['threat'])} | {percent(r['clean_accuracy'])} | "
                     f"{percent(r['defended_clean_accuracy'])} | {percent(r.get('adv_accuracy'))} | "
                     f"{percent(r['restored_accuracy'])}{ci} | {percent(r.get('recovery_rate'))} |")
    return lines


def worst_line(name: str, card: dict) -> str:
    """The denoiser's headline: the per-image worst case over the adaptive attacks with its interval."""
    block = (card.get("verdict") or {}).get("adaptive_worst_case")
    link = f"[report]({report_folder(name)}/report.md)"
    if not block:
        return (f"**{name}** ({card['n']} images; {link}): no bounded adaptive attack ran (an unbounded one has no "
                "threat budget), so no worst case.")
    lo, hi = block.get("ci95") or wilson_interval(round(block["accuracy"] * block["n"]), block["n"])
    return (f"**{name}** ({block['n']} images; {link}): adaptive worst-case robust accuracy "
            f"**{percent(block['accuracy'])}** [{percent(lo)}, {percent(hi)}] over {worst_case_scope(block)}.")


def adaptive_markdown(cards: dict[str, dict], budget: dict, models: dict[str, dict] | None = None,
                      full_n_adaptive: int | None = None) -> tuple[list[str], list[str]]:
    """(the Red flags section, the section of the denoisers under attack) as Markdown lines; the second is empty
    when no denoiser was attacked. ``models`` (run -> ``propagation.json``) adds Table 5's label-leaking flags."""
    flags = table5_red_flags(models or {}) + denoiser_red_flags(cards)
    top = red_flag_section(flags, cards, budget)
    if not cards:
        return top, []
    ran = {r["attack"] for card in cards.values() for r in card["rows"]}
    ensemble = ", then the AutoAttack ensemble through it" if ENSEMBLE in ran else ""
    lines = ["## The denoisers under attack (beyond the paper)", "",
             "The paper measures its denoisers only on sets crafted without them (Table 5 above). Here each one guards "
             "the reference classifier on the first test images: every attack crafted on the classifier alone "
             f"(oblivious) and through the denoiser (adaptive){ensemble}. Robust accuracy = share of "
             "the images classified correctly after the attack and the denoiser; recovery = share of the images "
             "correct when clean that stay correct; the worst case counts an image only if it survives every "
             f"adaptive attack{adaptive_reason_text(budget, full_n_adaptive)}.", ""]
    for name, card in cards.items():
        lines += [worst_line(name, card), ""] + _rows(card) + [""]
    return top, lines


__all__ = ["adaptive_markdown", "adaptive_settings", "attack_denoisers", "denoiser_red_flags", "red_flag_section",
           "report_folder", "table5_red_flags", "worst_line"]
