"""Beyond the perturbation-propagation paper: do its denoisers hold when the attacker sees them?

The paper measures its denoisers (U-Net, FusionNet) only on sets crafted without them (Table 5). Here each
denoiser guards the reference classifier and goes through the same evaluation as every restorer of this
project (:func:`advshield.evaluation.run_evaluation`): the preset's attacks crafted on the classifier alone
(white-box, oblivious) beside the same attacks through the denoiser (adaptive), then the AutoAttack ensemble,
the per-image worst case over the adaptive attacks with its 95 % interval, and the health checks of every
adaptive setting (convergence, gradient masking), whose failures are the report's Red flags.
"""

from __future__ import annotations

from pathlib import Path

from advshield.evaluation import run_evaluation
from advshield.experiment import AttackSetting, RunContext
from advshield.report.verdict import percent, red_flags, threat_label, threats_of, verdict_rows, worst_case
from advshield.reproduce.propagation.preset import PropagationBudget, PropagationPreset
from advshield.reproduce.sample_size import adaptive_reason_text
from advshield.zoo import resolve_checkpoint

ENSEMBLE = "autoattack"


def adaptive_settings(preset: PropagationPreset) -> list[AttackSetting]:
    """Every attack white-box (oblivious) and adaptive, on the same images; the ensemble last, adaptive only."""
    spec = preset.adaptive
    if spec is None:
        return []
    out = [AttackSetting(a, p, threat) for threat in ("white-box", "adaptive") for a, p in spec.attacks.items()]
    if spec.ensemble is not None:
        out.append(AttackSetting(ENSEMBLE, spec.ensemble, "adaptive"))
    return out


def attack_denoisers(preset: PropagationPreset, budget: PropagationBudget, out: Path, ctx: RunContext) -> dict:
    """Evaluate every denoiser of ``preset`` in front of its reference classifier on the first
    ``budget.n_adaptive`` test images; the evaluation cards by denoiser (each also written, with its
    ``report.md`` and ``report.html``, under ``out/adaptive/<denoiser>``). Empty when the preset asks none."""
    settings = adaptive_settings(preset)
    if not settings or not budget.n_adaptive:
        return {}
    cards = {}
    for name in preset.denoisers:
        ctx.log(f"== {name} guarding {preset.reference}: oblivious and adaptive attacks on {budget.n_adaptive} "
                "test images")
        cards[name] = run_evaluation(preset.reference, str(resolve_checkpoint(name, preset.dataset.value)), settings,
                                     out / "adaptive" / Path(name).stem, ctx, dataset=preset.dataset.value,
                                     n=budget.n_adaptive, figures=False, checks=budget.n_checks)
    return cards


def denoiser_red_flags(cards: dict[str, dict]) -> list[dict]:
    """Every card's red flags, each naming its denoiser."""
    return [{"check": f["check"], "detail": f"{name}: {f['detail']}"} for name, card in cards.items()
            for f in red_flags(card)]


def adaptive_markdown(cards: dict[str, dict], budget: dict) -> tuple[list[str], list[str]]:
    """(the Red flags section, the section of the denoisers under attack) as Markdown lines; both empty when no
    denoiser was attacked."""
    if not cards:
        return [], []
    flags = denoiser_red_flags(cards)
    top = ["## Red flags", "", "Checks run on every adaptive setting through each denoiser (beyond the paper): "
           "doubling the steps and restarts must not lower robust accuracy by a point or more (convergence), the "
           "gradient-free Square attack must not beat the gradient attacks, the adaptive attack must not leave more "
           "than the oblivious one, the unbounded attack must reach about 100 %, random noise must not beat the "
           "attack, and no restored accuracy may exceed clean accuracy (label leaking).", ""]
    top += [f"- **{f['check']}**: {f['detail']}" for f in flags] or ["None fired."]
    ran = {r["attack"] for card in cards.values() for r in card["rows"]}
    ensemble = ", then the AutoAttack ensemble through it" if ENSEMBLE in ran else ""
    lines = ["## The denoisers under attack (beyond the paper)", "",
             "The paper measures its denoisers only on sets crafted without them (Table 5 above). Here each one guards "
             "the reference classifier on the first test images: every attack crafted on the classifier alone "
             f"(oblivious) and through the denoiser (adaptive){ensemble}. Robust accuracy = share of "
             "the images classified correctly after the attack and the denoiser; the worst case counts an image only "
             f"if it survives every adaptive attack{adaptive_reason_text(budget)}.", ""]
    for name, card in cards.items():
        worst = worst_case(card)
        threats = threats_of(card)
        lines += [f"**{name}** ({card['n']} images; [report]({_report_link(name)})): worst-case adaptive robust "
                  f"accuracy **{percent(worst['accuracy'])}** ({worst['interval']})." if worst else f"**{name}**", "",
                  "| attack | clean | clean through the denoiser | attacked, no denoiser | "
                  + " | ".join(f"robust: {threat_label(t)}" for t in threats) + " |",
                  "|---|---|---|---|" + "---|" * len(threats)]
        lines += [f"| {v['attack']} | {percent(v['clean'])} | {percent(v['defended_clean'])} | "
                  f"{percent(v['undefended'])} | " + " | ".join(percent(v["robust"][t]) for t in threats) + " |"
                  for v in verdict_rows(card)]
        lines.append("")
    return top, lines


def _report_link(name: str) -> str:
    return f"adaptive/{Path(name).stem}/report.md"


__all__ = ["adaptive_markdown", "adaptive_settings", "attack_denoisers", "denoiser_red_flags"]
