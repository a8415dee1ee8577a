"""``advshield reproduce``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from advshield.cli.common import (DataRoot, DeviceOpt, JsonOpt, app, names_help, note_embedded, print_json_file,
                                  progress_bar, quiet_or_print, writable)


@app.command("reproduce")
def reproduce_cmd(
    preset: str = typer.Argument(..., help=f"A built-in preset ({names_help('presets')}) or a YAML file."),
    full: bool = typer.Option(False, "--full", help="The whole budget (whole test split) instead of the fast variant."),
    device: str = DeviceOpt,
    data_root: Optional[str] = DataRoot,
    out: Optional[Path] = typer.Option(None, help="Output folder (default: runs/reproduce/<preset>[-full])."),
    store: Optional[Path] = typer.Option(None, help="Adversarial-set store to reuse (default: <out>/adversarial)."),
    seed: int = typer.Option(0),
    retrain: bool = typer.Option(False, "--retrain", help="Train the restorers even where the zoo ships one "
                                 "trained with the identical recipe."),
    as_json: bool = JsonOpt,
) -> None:
    """Run a paper's whole pipeline (zoo targets, attacks, restorer training, evaluation) and write a report."""
    from advshield.experiment import RunContext
    from advshield.reproduce import load_preset, reproduce
    from advshield.reproduce.detection.runner import reproduce_detection
    from advshield.reproduce.propagation.runner import reproduce_propagation

    p = load_preset(preset)
    note_embedded(p.dataset.value, data_root)
    out = out or Path("runs") / "reproduce" / f"{p.name}{'-full' if full else ''}"
    command = f"advshield reproduce {preset}{' --full' if full else ''}"
    command += " --retrain" if retrain else ""
    writable(out, store)
    ctx = RunContext.create(device, distributed=True, store=store or out / "adversarial", data_root=data_root,
                            seed=seed, log=quiet_or_print(as_json))
    with progress_bar(f"reproduce {p.name}", quiet=as_json) as update:
        ctx.progress = lambda what, done, total: update(done, total, what)
        if p.kind == "detection":
            reproduce_detection(p, out, ctx, full=full, command=command)
        elif p.kind == "propagation":
            reproduce_propagation(p, out, ctx, full=full, command=command)
        else:
            reproduce(p, out, ctx, full=full, command=command, retrain=retrain)
    print_json_file(out / "reproduction.json", as_json)
