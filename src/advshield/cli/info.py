"""``advshield models ...`` and ``advshield data info``."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from advshield.cli.common import DataRoot, DeviceOpt, JsonOpt, console, data_app, models_app, note_embedded


@models_app.command("list")
def models_list(
    directory: list[Path] = typer.Option([], "--dir", help="Also list checkpoints found under this folder."),
    as_json: bool = JsonOpt,
) -> None:
    """Registered architectures and the checkpoints available for them, with their cards. Each checkpoint is
    listed under its name (what --target and --defense accept: the file's stem) beside its architecture."""
    from advshield.models import MODELS, count_parameters, create_model
    from advshield.zoo import list_checkpoints, zoo_root

    ckpts = list_checkpoints(*directory)
    if as_json:
        print(json.dumps({"architectures": {n: MODELS.entry(n).meta for n in MODELS.names()},
                          "checkpoints": [dict(e.card, name=e.name, architecture=e.architecture, path=str(e.path))
                                          for e in ckpts]}, indent=2, default=str))
        return
    archs = Table(title="Architectures")
    for col in ("name", "dataset", "parameters", "source"):
        archs.add_column(col)
    for n in MODELS.names():
        meta = MODELS.entry(n).meta
        archs.add_row(n, meta.get("dataset", ""), f"{count_parameters(create_model(n)):,}", meta.get("paper", ""))
    console.print(archs)
    table = Table(title="Checkpoints")
    for col in ("dataset", "name", "architecture", "test acc.", "test set", "epochs", "train time", "path"):
        table.add_column(col)
    root = zoo_root()
    for e in ckpts:
        c = e.card
        shown = f"zoo/{e.path.relative_to(root)}" if e.path.is_relative_to(root) else str(e.path)
        acc = c.get("test_accuracy")
        table.add_row(e.dataset, e.name, e.architecture, f"{acc:.4f}" if acc is not None else "-",
                      str(c.get("test_set", {}).get("n", "-")),
                      str(c.get("epochs", "-")), f"{c.get('train_time_s', 0) / 60:.1f} min", shown)
    console.print(table)


@models_app.command("eval")
def models_eval(
    checkpoint: str = typer.Argument(..., help="A .safetensors path or the name of a zoo model."),
    dataset: Optional[str] = typer.Option(None, help="Default: the checkpoint card's dataset."),
    split: str = typer.Option("test"),
    n: Optional[int] = typer.Option(None, min=1, help="Evaluate on the first N images only."),
    batch_size: int = typer.Option(500, min=1),
    device: str = DeviceOpt,
    data_root: Optional[str] = DataRoot,
    as_json: bool = JsonOpt,
) -> None:
    """Clean accuracy of a checkpoint on a dataset split."""
    from advshield.experiment import RunContext
    from advshield.metrics import accuracy

    ctx = RunContext.create(device, data_root=data_root)
    target = ctx.load_target(checkpoint, dataset)
    model, card = target.model, target.card
    ds_name = ctx.dataset_of(target, dataset)
    note_embedded(ds_name, data_root)
    ds = ctx.load_data(ds_name, split, n, target=target)
    t0 = time.perf_counter()
    acc = accuracy(model, ds, batch_size, ctx.device)
    result = {"architecture": card["architecture"], "dataset": ds_name, "split": split, "n": len(ds),
              "accuracy": acc, "seconds": round(time.perf_counter() - t0, 2)}
    if as_json:
        print(json.dumps(result))
    else:
        console.print(f"{card['architecture']} on {ds_name}/{split} ({len(ds)} images): accuracy {acc:.4f}")


@data_app.command("info")
def data_info(
    dataset: str = typer.Option("mnist"),
    data_root: Optional[str] = DataRoot,
    as_json: bool = JsonOpt,
) -> None:
    """Load both splits of a dataset (decoding and caching it) and show counts and classes."""
    from advshield.data import dataset_stats, load_dataset

    note_embedded(dataset, data_root)
    report = {}
    for split in ("train", "test"):
        t0 = time.perf_counter()
        ds = load_dataset(dataset, split, data_root)
        report[split] = dict(dataset_stats(ds), seconds=round(time.perf_counter() - t0, 2))
    report["classes"] = ds.classes
    if as_json:
        print(json.dumps(report))
        return
    for split in ("train", "test"):
        r = report[split]
        console.print(f"{dataset}/{split}: {r['n']} images of shape {tuple(r['shape'])}, channel mean {r['mean']}, "
                      f"loaded in {r['seconds']}s")
    console.print(f"classes: {', '.join(report['classes'])}", markup=False)
