"""``advshield analyze ...``: perturbation propagation."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from advshield.cli.common import (DataRoot, DeviceOpt, JsonOpt, SeedOpt, StoreOpt, analyze_app, attack_params, console,
                                  print_json_file, progress_bar, quiet_or_print, writable)
from advshield.errors import AdvShieldError


@analyze_app.command("propagation")
def analyze_propagation(
    model: str = typer.Option(..., help="A zoo model name or a .safetensors checkpoint."),
    attacks: str = typer.Option("fgsm,bim,mifgsm", help="Comma-separated attacks (i-FGSM is bim), or 'paper': "
                                "the five sets of the paper's Table 2 (needs --substitute; see --reference)."),
    attack_param: list[str] = typer.Option([], "--attack-param", help="ATTACK.NAME=VALUE, e.g. fgsm.eps=0.03."),
    eps: float = typer.Option(16 / 255, help="With --attacks paper: the largest L-inf budget of the sweeps."),
    denoiser: list[str] = typer.Option([], "--denoiser", help="A restorer checkpoint (.safetensors) or zoo "
                                       "restorer, measured as <set>+<architecture> beside the bare sets; repeatable; "
                                       "'none' (the default) measures the bare sets only."),
    layers: Optional[str] = typer.Option(None, help="Comma-separated layer (stage or submodule) names; "
                                         "default: every named stage of the model."),
    substitute: Optional[str] = typer.Option(None, help="Craft on this model (transfer) instead of the target."),
    reference: Optional[str] = typer.Option(None, help="The classifier the sets are crafted against (whose labels "
                                            "stop transfer-feedback attacks); default: --model. Give several "
                                            "models the same reference to analyse them on the same sets."),
    n: int = typer.Option(1000, min=1, help="Number of images (the paper samples 1000)."),
    dataset: Optional[str] = typer.Option(None),
    split: str = typer.Option("test"),
    batch_size: int = typer.Option(100, min=1),
    seed: int = SeedOpt,
    device: str = DeviceOpt,
    data_root: Optional[str] = DataRoot,
    store: Path = StoreOpt,
    out: Optional[Path] = typer.Option(None, help="Output folder (default: runs/propagation/<model>)."),
    as_json: bool = JsonOpt,
) -> None:
    """Layer-wise NE-D and COS-D between clean, adversarial and denoised-adversarial feature maps."""
    from advshield.analysis.run import run_propagation
    from advshield.analysis.settings import paper_settings
    from advshield.experiment import RunContext

    if attacks.strip() == "paper":
        if not substitute:
            raise AdvShieldError("--attacks paper crafts on a substitute (the paper's ResNet-18): pass --substitute")
        settings = paper_settings(eps=eps)
    else:
        names = [a.strip() for a in attacks.split(",") if a.strip()]
        settings = attack_params(names, attack_param)
    denoiser = [d for d in denoiser if d.strip().lower() != "none"]
    writable(store, out)
    ctx = RunContext.create(device, store=store, data_root=data_root, seed=seed, log=quiet_or_print(as_json))
    out = out or Path("runs") / "propagation" / Path(model).stem
    with progress_bar("propagation", quiet=as_json) as update:
        ctx.progress = lambda what, done, total: update(done, total, what)
        run_propagation(model, settings, out, ctx,
                        denoiser=denoiser, layers=[s.strip() for s in layers.split(",")] if layers else None, n=n,
                        dataset=dataset, split=split, substitute=substitute, reference=reference,
                        batch_size=batch_size)
    print_json_file(out / "propagation.json", as_json)


@analyze_app.command("propagation-report")
def analyze_propagation_report(
    runs: list[Path] = typer.Argument(..., help="Folders written by `advshield analyze propagation` (same sets)."),
    out: Path = typer.Option(..., help="Folder for README.md and summary.json (links the runs' curves relatively)."),
    title: str = typer.Option("Perturbation propagation"),
    notes: Optional[Path] = typer.Option(None, help="A markdown file placed under the title."),
) -> None:
    """Tables 4-5 across models, per-layer curves, and the paper's observation tested on every (model, set)."""
    from advshield.analysis.report import propagation_report

    summary = propagation_report(runs, out, title, notes.read_text() if notes else "")
    console.print(f"NE-D jumps at the output in {summary['holds']['ne_d_jumps']} (model, set) pairs, COS-D fades in "
                  f"{summary['holds']['cos_d_fades']}; -> {out / 'README.md'}", markup=False)
