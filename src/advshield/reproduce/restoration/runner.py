"""``advshield reproduce <preset>``: targets from the zoo, attacks, restorer training, evaluation, report."""

from __future__ import annotations

import time
from pathlib import Path

from advshield.checkpoint import read_card
from advshield.evaluation import RestorationCache, run_evaluation
from advshield.experiment import AttackSetting, RunContext
from advshield.io import atomic_write_bytes, atomic_write_json
from advshield.report import render_reproduction_html
from advshield.reproduce.core import run_header
from advshield.reproduce.restoration.ablation import run_loss_ablation
from advshield.reproduce.restoration.comparison import comparison_figure
from advshield.reproduce.restoration.preset import ENSEMBLE, Preset
from advshield.reproduce.restoration.recipes import settings_for, training_config
from advshield.reproduce.restoration.report import write_report
from advshield.reproduce.sample_size import variant_reason
from advshield.training.defense_trainer import train_defense
from advshield.training.defense_config import find_restorer
from advshield.zoo import resolve_checkpoint


def reproduce(preset: Preset, out: str | Path, ctx: RunContext, *, full: bool = False, command: str = "",
              retrain: bool = False) -> dict:
    """Run the whole preset; write ``report.md``, ``reproduction.json`` and per-evaluation cards under ``out``.

    A restorer the zoo ships with exactly the recipe this run would train is used as it is, unless ``retrain``.
    """
    out = Path(out)
    log, store = ctx.log, ctx.store
    budget = preset.full if full else preset.fast
    reason = variant_reason(preset, full)  # why fewer than 500 adaptive images, where so
    t_start = time.perf_counter()
    phases: dict[str, float] = {}

    restorers: dict[str, dict] = {}
    for target in preset.trained_targets:  # none for a preset that only evaluates zoo variants
        t0 = time.perf_counter()
        log(f"== training {preset.defense} for {target}")
        cfg = training_config(preset, target, budget, ctx)
        shipped = None if retrain else find_restorer(cfg.recipe())
        if shipped is None and budget.zoo_restorer and not retrain:  # the full recipe's restorer, if shipped
            full_cfg = training_config(preset, target, preset.full, ctx)
            shipped = find_restorer(full_cfg.recipe())
        if shipped is not None:
            log(f"   using the zoo restorer {shipped.path.name}: trained with the {'full' if budget.zoo_restorer else 'same'}"
                f" variant's exact recipe (on {shipped.card.get('device', '?')}); pass --retrain to train here")
            restorers[target] = {"checkpoint": str(shipped.path), "card": dict(shipped.card, source="zoo")}
        else:
            result = train_defense(cfg, out / "defenses" / target, store=store, log=log, progress=ctx.progress)
            restorers[target] = {"checkpoint": str(result.checkpoint), "card": dict(result.card, source="trained")}
        phases[f"train {target}"] = round(time.perf_counter() - t0, 1)

    for ev in preset.evaluations:  # shipped variants of the run's restorers
        if ev.restorer and ev.restorer_key not in restorers:
            path = resolve_checkpoint(ev.restorer, preset.dataset.value)
            restorers[ev.restorer_key] = {"checkpoint": str(path), "card": dict(read_card(path), source="zoo")}

    evaluations = []
    cache = RestorationCache()  # the transfer rows and the cross-restorer tables restore the same sets again
    for ev in preset.evaluations:
        ckpt = restorers[ev.restorer_key]["checkpoint"]
        folder = out / "eval" / ev.folder
        t0 = time.perf_counter()
        log(f"== evaluating {ev.target} behind the restorer for {ev.defense_of}" + (f" ({ev.label})" if ev.label else ""))
        oblivious = run_evaluation(ev.target, ckpt, settings_for(preset, ev.threats, False), folder, ctx,
                                   n=budget.n_test, dataset=preset.dataset.value, restoration_cache=cache,
                                      checks=budget.n_checks)
        adaptive = None
        adaptive_settings = settings_for(preset, ev.threats, True, budget)
        # Same images for both columns: the oblivious white-box numbers again, on the adaptive subset.
        paired = [AttackSetting(s.attack, preset.attack_spec(s.attack).params, n=s.n) for s in adaptive_settings]
        paired += adaptive_settings
        # The baselines get the preset's own adaptive attacks: the ensemble through nine preprocessors (TV
        # minimisation optimises per forward pass) is beyond a CPU run; the report says so.
        baseline_paired = [s for s in paired if s.attack != ENSEMBLE]
        if adaptive_settings and budget.n_adaptive:
            adaptive = run_evaluation(ev.target, ckpt, paired, folder / "adaptive", ctx, n=budget.n_adaptive,
                                      dataset=preset.dataset.value, restoration_cache=cache,
                                      checks=budget.n_checks, sample_reason=reason)
        phases[f"evaluate {folder.name}"] = round(time.perf_counter() - t0, 1)
        baselines = {}
        for b in preset.baselines:  # the same settings (same stored adversarial sets) through each baseline
            t0 = time.perf_counter()
            log(f"== evaluating {ev.target} behind the baseline {b.name}")
            bfolder = folder / "baselines" / b.key
            baselines[b.name] = {
                "oblivious": run_evaluation(ev.target, b.defense, settings_for(preset, ev.threats, False), bfolder,
                                            ctx, defense_params=b.params, n=budget.n_test,
                                            dataset=preset.dataset.value, figures=False, restoration_cache=cache,
                                            checks=budget.n_checks),
                "adaptive": (run_evaluation(ev.target, b.defense, baseline_paired, bfolder / "adaptive", ctx,
                                            defense_params=b.params, n=budget.n_adaptive,
                                            dataset=preset.dataset.value, figures=False, restoration_cache=cache,
                                            checks=budget.n_checks, sample_reason=reason)
                             if adaptive_settings and budget.n_adaptive else None)}
            phases[f"evaluate {folder.name} / {b.key}"] = round(time.perf_counter() - t0, 1)
        evaluations.append({"evaluation": ev.model_dump(), "folder": str(folder.relative_to(out)),
                            "oblivious": oblivious, "adaptive": adaptive, "baselines": baselines})

    comparison = None
    shown = next((e for e in preset.evaluations if e.target == e.defense_of and "white-box" in e.threats), None)
    if preset.baselines and shown is not None:
        t0 = time.perf_counter()
        log("== visual comparison of the defenses (DKN Fig. 3)")
        path = comparison_figure(preset, shown.target, restorers[shown.restorer_key]["checkpoint"],
                                 out / "figures" / "comparison-white-box.png", ctx, n_test=budget.n_test)
        comparison = str(path.relative_to(out))
        phases["comparison figure"] = round(time.perf_counter() - t0, 1)
    t0 = time.perf_counter()
    ablation = run_loss_ablation(preset, budget, restorers, evaluations, out, ctx)
    if ablation:
        phases["loss ablation"] = round(time.perf_counter() - t0, 1)

    summary = {
        **run_header(preset, budget, full=full, t_start=t_start, phases=phases, command=command, ctx=ctx),
        "restorers": {t: {k: v for k, v in r["card"].items() if k != "recipe"} for t, r in restorers.items()},
        "evaluations": evaluations, "comparison_figure": comparison, "ablation": ablation,
    }
    atomic_write_json(out / "reproduction.json", summary)
    write_report(preset, summary, out / "report.md")
    atomic_write_bytes(out / "report.html", render_reproduction_html(summary, base=out).encode())
    log(f"== done in {summary['seconds'] / 60:.1f} min: {out / 'report.md'}")
    return summary
