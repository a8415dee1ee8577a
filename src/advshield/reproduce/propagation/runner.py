"""``advshield reproduce propagation-*``: every classifier of the preset on the same five sets, then the
cross-model report (Tables 4-5, per-layer curves, the paper's observation tested on every pair). Crafting and
measuring report to ``ctx.progress`` (see :func:`run_propagation`)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from advshield.analysis.report import propagation_report
from advshield.analysis.run import run_propagation
from advshield.analysis.settings import paper_settings
from advshield.experiment import RunContext
from advshield.io import atomic_write_json
from advshield.report import write_propagation_html
from advshield.reproduce.core import run_header
from advshield.reproduce.propagation.adaptive import (adaptive_markdown, attack_denoisers, denoiser_red_flags,
                                                     report_folder, table5_red_flags)
from advshield.reproduce.propagation.preset import PropagationPreset


def reproduce_propagation(preset: PropagationPreset, out: str | Path, ctx: RunContext, *, full: bool = False,
                          command: str = "") -> dict:
    """Analyse every model of ``preset``; write each model's card under ``out/<model>``, ``README.md``,
    ``report.html``, ``summary.json`` and ``reproduction.json``."""
    out, budget, t_start, phases = Path(out), preset.full if full else preset.fast, time.perf_counter(), {}
    folders = []
    for model in preset.models:
        t0 = time.perf_counter()
        ctx.log(f"== {model} on {preset.dataset.value}: {budget.n} {preset.split} images")
        folder = out / Path(model).stem
        run_propagation(model, paper_settings(eps=preset.eps), folder, ctx, denoiser=preset.denoisers, n=budget.n,
                        dataset=preset.dataset.value, split=preset.split, substitute=preset.substitute,
                        reference=preset.reference, batch_size=budget.batch_size)
        folders.append(folder)
        phases[model] = round(time.perf_counter() - t0, 1)
    t0 = time.perf_counter()
    fast_of = None if full else preset.full.n_adaptive  # a fast variant's reason for fewer than 500 adaptive images
    attacked = attack_denoisers(preset, budget, out, ctx, fast_of)  # beyond the paper: the denoisers under attack
    if attacked:
        phases["denoisers under attack"] = round(time.perf_counter() - t0, 1)
    if ctx.progress is not None:
        ctx.progress("cross-model report", 0, 1)
    notes = "\n\n".join(preset.notes + [f"Regenerate: `{command}`"] if command else preset.notes)
    cards = {f.name: json.loads((f / "propagation.json").read_text()) for f in folders}
    top, extra = adaptive_markdown(attacked, budget.model_dump(), cards, fast_of)
    summary = propagation_report(folders, out, preset.title, notes, top=top, extra=extra)
    flags = table5_red_flags(cards) + denoiser_red_flags(attacked)
    card = {**run_header(preset, budget, full=full, t_start=t_start, phases=phases, command=command, ctx=ctx),
            "holds": summary.get("holds"), "red_flags": flags,
            "denoisers_under_attack": {name: f"{report_folder(name)}/card.json" for name in attacked}}
    atomic_write_json(out / "reproduction.json", card)
    write_propagation_html(cards, summary, out / "report.html", preset.title,
                           notes=[f"Regenerate with: {command}"] if command else [], attacked=attacked,
                           red_flags=flags)
    ctx.log(f"== done in {card['seconds'] / 60:.1f} min: {out / 'README.md'}")
    return card


__all__ = ["reproduce_propagation"]
