"""``advshield scorecard``: every defense of a dataset side by side under one attack ensemble."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Optional

import typer

from advshield.cli.common import (DataRoot, DefenseWeightsOpt, DeviceOpt, JsonOpt, SeedOpt, StoreOpt, app, console,
                                  images_option, names_help, note_embedded, parse_params, progress_bar, writable)
from advshield.errors import AdvShieldError


def _versions() -> str:
    from advshield.attacks.autoattack import AUTO, VERSIONS

    return ", ".join([*VERSIONS, AUTO])


@app.command("scorecard")
def scorecard_cmd(
    dataset: str = typer.Option(..., help="mnist or cifar10 (another dataset needs --target and --substitute)."),
    defense: list[str] = typer.Option([], "--defense", help="Only this row (repeatable): a zoo restorer, a "
                                      f"preprocessing defense ({names_help('defenses', kind='preprocessing')}), a "
                                      f"detector ({names_help('detectors')}), an adversarially trained zoo classifier, "
                                      "DEFENSE+CLASSIFIER for a combination, or none. Default: every row; --list "
                                      "names them."),
    add_defense: Optional[str] = typer.Option(None, "--add-defense", help="Add your defense as a row: a restorer "
                                              ".safetensors checkpoint, a classifier checkpoint (your adversarially "
                                              "trained model, alone), a registered defense or detector, or your "
                                              "package.module:factory (with --defense-weights)."),
    defense_weights: Optional[Path] = DefenseWeightsOpt,
    defense_param: list[str] = typer.Option([], "--defense-param", help="NAME=VALUE for --add-defense's "
                                            "registered preprocessing defense."),
    name: Optional[str] = typer.Option(None, "--name", help="The added row's name (default: from --add-defense)."),
    target: Optional[str] = typer.Option(None, help="The classifier preprocessing defenses, detectors and your "
                                         "defense protect (default: a-net for MNIST, resnet20 for CIFAR-10)."),
    substitute: Optional[str] = typer.Option(None, help="The classifier the transfer attack is crafted on "
                                             "(default: b-net for MNIST, resnet18 for CIFAR-10)."),
    n: int = images_option(1000, "First N test images (the same for every row)"),
    eps: Optional[float] = typer.Option(None, help="L-inf budget (default: 0.3 for MNIST, 8/255 for CIFAR-10)."),
    attack: str = typer.Option("autoattack", help=f"The attack of every setting, among {names_help('attacks')}."),
    version: str = typer.Option("auto", help=f"AutoAttack's version: {_versions()} (auto: standard, and through "
                                "a randomised defense such as tvm rand then standard's other members, with EOT "
                                "over 20 draws; fast: quick runs)."),
    attack_param: list[str] = typer.Option([], "--attack-param", help="NAME=VALUE for the attack (repeatable)."),
    checks: int = typer.Option(100, min=0, help="Images the convergence and gradient-masking checks of every "
                               "adaptive setting run on (0: none); failures are red flags."),
    fpr: float = typer.Option(0.05, min=0.0001, max=0.9999, help="Detectors' false-positive rate on held-out "
                              "clean training images."),
    detector_train: int = typer.Option(2000, min=1, help="Clean training images each detector is fitted on."),
    detector_calibration: int = typer.Option(500, min=1, help="Held-out clean training images of the threshold."),
    detector_epochs: int = typer.Option(3, min=1, help="Epochs of each detector's generative model."),
    seed: int = SeedOpt,
    batch_size: int = typer.Option(250, min=1),
    device: str = DeviceOpt,
    data_root: Optional[str] = DataRoot,
    out: Optional[Path] = typer.Option(None, help="Output folder (default: runs/scorecard/<dataset>): "
                                       "scorecard.md/.json/.csv, report.html, one JSON per row under rows/."),
    markdown: Optional[Path] = typer.Option(None, "--markdown", help="Also write the Markdown table here "
                                            "(links relative to it), e.g. docs/scorecard-mnist.md."),
    store: Path = StoreOpt,
    list_rows: bool = typer.Option(False, "--list", help="Print the rows and exit."),
    as_json: bool = JsonOpt,
) -> None:
    """Every defense of a dataset on the same test images under the same attack: clean accuracy, clean through
    the defense, oblivious, transfer and adaptive worst-case robust accuracy (95 % interval), recovery over the
    originally correct images (oblivious and worst case), red flags, inference cost and each defense's card.
    Rows are stored by hash: a rerun measures only new rows."""
    from advshield.experiment import RunContext
    from advshield.scorecard import ScorecardConfig, catalog, defaults, run_scorecard, user_row
    from advshield.scorecard.run import select

    cfg = ScorecardConfig(dataset, n=n, eps=eps, attack=attack, version=version,
                          params=parse_params(attack_param, "--attack-param"), target=target, substitute=substitute,
                          checks=checks, fpr=fpr, detector_train=detector_train,
                          detector_calibration=detector_calibration, detector_epochs=detector_epochs, seed=seed)
    d = defaults(dataset, target, substitute)
    extra = [user_row(add_defense, dataset, d["target"], weights=str(defense_weights) if defense_weights else None,
                      params=parse_params(defense_param, "--defense-param"), name=name)] if add_defense else []
    known = catalog(dataset, d["target"], d["substitute"])
    if extra and extra[0].name in {r.name for r in known}:
        raise AdvShieldError(f"--add-defense: a row named {extra[0].name!r} exists already; name yours with --name")
    rows = select(known, defense) + extra  # unknown names fail here
    if list_rows:
        for r in rows:
            console.print(f"{r.name:<40} {r.kind:<14} {r.target}" + (f"  ({r.note})" if r.note else ""),
                          markup=False, soft_wrap=True)
        return
    out = out or Path("runs") / "scorecard" / dataset
    writable(out, store)
    ctx = RunContext.create(device, distributed=True, store=store, data_root=data_root, seed=seed,
                            batch_size=batch_size,
                            log=(lambda s: None) if as_json else (lambda s: console.print(s, markup=False, soft_wrap=True)))
    if not ctx.dist.is_main:
        ctx.log = lambda s: None
    elif not as_json:
        note_embedded(dataset, data_root)
    quiet = as_json or not ctx.dist.is_main
    with progress_bar("scorecard", quiet=quiet) as update:
        state = {"done": 0, "total": None, "row": ""}

        def rows_done(done: int, total: int, what: str) -> None:  # the bar counts rows; the text names the set
            state.update(done=done, total=total, row=f"row {min(done + 1, total)}/{total}: {what}")
            update(done, total, state["row"])

        ctx.progress = lambda what, done, total: update(state["done"], state["total"],
                                                        f"{state['row']}: {what} {done}/{total}")

        card = run_scorecard(cfg, ctx, out, only=defense, extra=extra, markdown_path=markdown,
                             command=_command(), progress=rows_done)
    if not ctx.dist.is_main:
        return
    if as_json:
        print(json.dumps(card, indent=2, default=str))
    else:
        console.print(f"scorecard: {out / 'scorecard.md'}, {out / 'scorecard.json'}, {out / 'scorecard.csv'}, "
                      f"{out / 'report.html'} ({len(card['computed'])} rows measured, {len(card['cached'])} stored)",
                      markup=False, soft_wrap=True)


def _command() -> str:
    """The command as typed, with the data root left out (it names a folder of the machine, not the run)."""
    if Path(sys.argv[0]).name not in ("advshield", "__main__.py"):  # called in-process (typer's test runner)
        return "advshield scorecard (called from Python: options not recorded)"
    args, keep, skip = sys.argv[1:], [], False
    for a in args:
        if skip:
            keep.append("<data-root>")
            skip = False
        elif a == "--data-root":
            keep.append(a)
            skip = True
        elif a.startswith("--data-root="):
            keep.append("--data-root=<data-root>")
        else:
            keep.append(a)
    return "advshield " + shlex.join(keep)
