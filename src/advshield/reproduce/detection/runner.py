"""``advshield reproduce cmag-*``: every detector of a detection preset against the paper's intensities,
then Tables 3-7, the image grids (Figs. 2, 3, 5-6), the attention ablation (Fig. 4), the autoencoder gradients
(Figs. 7-8, where the budget has ``gradients``) and a report.
Each detector's fitting, scoring and crafting report to ``ctx.progress`` (see :func:`detection_experiment`)."""

from __future__ import annotations

import time
from pathlib import Path

import torch

from advshield.detectors.defense_gan import Projection
from advshield.device import module_device
from advshield.evaluation.detection import DetectionRun, detection_experiment
from advshield.evaluation.detection_adaptive import default_adaptive
from advshield.evaluation.figures import grouped_bars, image_rows
from advshield.experiment import RunContext
from advshield.io import atomic_write_json
from advshield.report import write_detection_html
from advshield.report.detection import robust_groups
from advshield.reproduce.detection.gradients import preset_gradients
from advshield.reproduce.detection.preset import DETECTOR_LABELS, DetectionBudget, DetectionPreset
from advshield.reproduce.detection.report import ablation_flags, write_detection_report
from advshield.reproduce.core import run_header
from advshield.reproduce.sample_size import variant_reason

N_FIGURE = 8


def _run(preset: DetectionPreset, kind: str, budget: DetectionBudget, folder: Path, ctx: RunContext, *,
         combine: str = "attention", adaptive: bool = True, reason: str | None = None) -> DetectionRun:
    gan = kind == "defense-gan"
    epochs = budget.epochs
    if gan:
        epochs = budget.gan_epochs
    elif kind.startswith("magnet"):
        epochs = budget.magnet_epochs or budget.epochs
    n_adaptive = (budget.n_adaptive_gan if gan else budget.n_adaptive) if adaptive else 0
    return detection_experiment(
        preset.target, kind, preset.settings(budget), folder, ctx, fpr=preset.fpr, n_train=budget.n_train,
        n_calibration=budget.n_calibration, epochs=epochs, n=budget.n_test,
        dataset=preset.dataset.value, adaptive=n_adaptive,
        adaptive_settings=default_adaptive(budget.adaptive_eps, budget.adaptive_steps),
        projection=Projection(steps=budget.gan_steps, restarts=budget.gan_restarts, lr=budget.gan_search_lr,
                              final_lr=budget.gan_search_lr / 10),
        max_rule_n=budget.max_rule_n if gan else 0, gan_lr=budget.gan_lr, cmag_combine=combine,
        checks=0 if gan else budget.checks, sample_reason=reason)  # checks: capped at the adaptive images there


def _fig2(preset: DetectionPreset, run: DetectionRun, out: Path) -> dict[str, Path]:
    """Fig. 2: legitimate test images beside their CW and FGSM adversarial examples (``figure_attacks``), on
    the first images every one of those attacks succeeded on."""
    labels = sorted((a for a in preset.figure_attacks if a in run.adversarial),
                    key=lambda a: preset.attacks[a].attack != "cw")  # the paper's order: legitimate, CW, FGSM
    if not labels:
        return {}
    ok = torch.ones(len(run.clean), dtype=torch.bool)
    for a in labels:
        ok &= run.adversarial[a].success.cpu()
    ok &= ok.cumsum(0) <= N_FIGURE
    if not ok.any():
        return {}
    rows = [("legitimate", run.clean.cpu()[ok])]
    rows += [(preset.attacks[a].label or a, run.adversarial[a].adv[ok].cpu()) for a in labels]
    return {"fig2": image_rows(rows, out / "figures" / "fig2-legitimate-and-adversarial.png",
                               f"{preset.dataset.value}: legitimate and adversarial examples (cf. Fig. 2)")}


def _figures(preset: DetectionPreset, runs: dict[str, DetectionRun], ablation: DetectionRun | None,
             out: Path) -> dict[str, str]:
    """Fig. 2, and reconstructions of the same successful adversarial examples by every detector and by CMAG's
    branches (Figs. 3-6)."""
    first = next(iter(runs.values()))
    figs = _fig2(preset, first, out)
    for label in preset.figure_attacks or list(preset.attacks)[:1]:
        adv = first.adversarial[label]
        x = adv.adv[adv.success][:N_FIGURE]
        if not len(x):
            continue
        name = preset.attacks[label].label or label
        with torch.no_grad():
            rows = [("adversarial", x)]
            for kind, run in runs.items():
                dev = module_device(run.detector)
                r = run.detector.reconstruct(x.to(dev))
                if r is not None:
                    rows.append((DETECTOR_LABELS.get(kind, kind), r.cpu()))
            figs[f"fig3-{label}"] = str(image_rows(rows, out / "figures" / f"fig3-reconstructions-{label}.png",
                                                   f"{preset.dataset.value}, {name}: reconstructions (cf. Fig. 3)"))
            cmag = next((run for kind, run in runs.items() if kind.startswith("cmag")), None)
            if cmag is not None:
                model = cmag.detector.model
                dev = module_device(model)
                fm, lr = model.branches(x.to(dev))
                rows = [("adversarial", x), ("LR", lr.cpu()), ("FMR", fm.cpu()),
                        ("GR (attention)", model.gr(model.merge(fm, lr)).cpu())]
                if ablation is not None:
                    rows.append(("GR (weighted avg.)", ablation.detector.model(x.to(dev)).cpu()))
                figs[f"fig5-{label}"] = str(image_rows(rows, out / "figures" / f"fig5-branches-{label}.png",
                                                       f"{preset.dataset.value}, {name}: CMAG's reconstructors "
                                                       "(cf. Figs. 4-6)"))
    return {k: str(Path(v).relative_to(out)) for k, v in figs.items()}


def reproduce_detection(preset: DetectionPreset, out: str | Path, ctx: RunContext, *, full: bool = False,
                        command: str = "") -> dict:
    """Run every detector of ``preset``; write ``report.md``, ``report.html``, ``reproduction.json``,
    per-detector cards (each with its own ``report.html``) and figures."""
    out = Path(out)
    budget = preset.full if full else preset.fast
    reason = variant_reason(preset, full)  # why fewer than 500 adaptive images, where so
    t_start = time.perf_counter()
    log = ctx.log
    runs, phases = {}, {}
    for kind in preset.detectors:
        t0 = time.perf_counter()
        log(f"== {kind} on {preset.dataset.value} / {preset.target}")
        runs[kind] = _run(preset, kind, budget, out / kind, ctx, reason=reason)
        phases[kind] = round(time.perf_counter() - t0, 1)
    ablation = None
    cmag_kind = next((k for k in preset.detectors if k.startswith("cmag")), None)
    if budget.ablation and cmag_kind:
        t0 = time.perf_counter()
        log(f"== {cmag_kind} with the weighted-average merge (Fig. 4 ablation)")
        ablation = _run(preset, cmag_kind, budget, out / f"{cmag_kind}-weighted-average", ctx, combine="average",
                        adaptive=False)
        phases[f"{cmag_kind} weighted average"] = round(time.perf_counter() - t0, 1)
    if ctx.progress is not None:
        ctx.progress("figures and report", 0, 1)
    figures = _figures(preset, runs, ablation, out)
    gradients = None
    if budget.gradients is not None:  # Figs. 7-8: after the detectors, so their numbers do not move
        t0 = time.perf_counter()
        log("== Figs. 7-8: FGSM gradients of autoencoders trained with SSIM and with l2 loss")
        gradients = preset_gradients(budget.gradients, preset.dataset.value, out, ctx)
        phases["Figs. 7-8 gradients"] = round(time.perf_counter() - t0, 1)
    summary = {
        **run_header(preset, budget, full=full, t_start=t_start, phases=phases, command=command, ctx=ctx),
        "detectors": {k: r.summary for k, r in runs.items()},
        "ablation": ablation.summary if ablation else None, "figures": figures, "gradients": gradients,
    }
    atomic_write_json(out / "reproduction.json", summary)
    write_detection_reports(preset, summary, out)
    log(f"== done in {summary['seconds'] / 60:.1f} min: {out / 'report.md'}")
    return summary


def _in_order(d: dict, order: list[str]) -> dict:
    return dict(sorted(d.items(), key=lambda kv: (order.index(kv[0]) if kv[0] in order else len(order), kv[0])))


def canonical_order(preset: DetectionPreset, summary: dict) -> dict:
    """The summary with its detectors and each card's attacks in the preset's order (others last, by key) and its
    figures and phases by key: the same reports from a run's summary and from its JSON (written with keys sorted)."""
    return {**summary, "figures": dict(sorted((summary.get("figures") or {}).items())),
            "phases": dict(sorted((summary.get("phases") or {}).items())),
            "detectors": {kind: {**card, "attacks": _in_order(card["attacks"], list(preset.attacks))}
                          for kind, card in _in_order(summary["detectors"], list(preset.detectors)).items()}}


def write_detection_reports(preset: DetectionPreset, summary: dict, out: Path) -> None:
    """``report.md``, the robust-accuracy bars and ``report.html`` of a run, from its summary alone (so a committed
    ``reproduction.json`` can be re-rendered after a report change)."""
    command, summary = summary.get("command"), canonical_order(preset, summary)
    write_detection_report(preset, summary, out / "report.md")
    cards, labels = list(summary["detectors"].values()), {k: a.label or k for k, a in preset.attacks.items()}
    bars = grouped_bars(robust_groups(cards, DETECTOR_LABELS, labels), f"{preset.title}: robust accuracy at the "
                        f"calibrated {preset.fpr:.0%} FPR", out / "figures" / "robust-accuracy.png",
                        ylabel="robust accuracy")
    write_detection_html(cards, out / "report.html", f"{preset.title}: reproduction ({summary['variant']} variant)",
                         names=DETECTOR_LABELS, attack_labels=labels,
                         summary=[f"Regenerate with {command or 'advshield reproduce ' + preset.name}; paper "
                                  f"{preset.paper}; target {preset.target} on {preset.dataset.value}, "
                                  f"{summary['budget']['n_test']} test images"],
                         figures=[str(bars.relative_to(out))] + list(summary.get("figures", {}).values())
                         + list((summary.get("gradients") or {}).get("figures", {}).values()),
                         extra_flags=ablation_flags(summary))
