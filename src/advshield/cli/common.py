"""What every command shares: the typer apps, consoles, option types, NAME=VALUE parsing and progress bars.

Lists of names in help texts come from the registries (:func:`names_help`), never written by hand.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from advshield.errors import AdvShieldError

app = typer.Typer(help="advshield: attack, defend and honestly evaluate image classifiers.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)
models_app = typer.Typer(help="The target-classifier zoo: architectures and checkpoints.", no_args_is_help=True)
data_app = typer.Typer(help="Datasets: check that they load, counts and classes.", no_args_is_help=True)
analyze_app = typer.Typer(help="Analyses: how adversarial perturbations propagate through a classifier.",
                          no_args_is_help=True)
app.add_typer(models_app, name="models")
app.add_typer(data_app, name="data")
app.add_typer(analyze_app, name="analyze")
console = Console()
notes = Console(stderr=True)

DataRoot = typer.Option(None, "--data-root", help="Folder holding the datasets (default: $ADVSHIELD_DATA; "
                        "MNIST falls back to the embedded sample).")
DeviceOpt = typer.Option("auto", "--device", help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps.")
StoreOpt = typer.Option(Path("runs/adversarial"), "--store", help="Adversarial-set store (content-addressed: "
                        "sets are crafted once and reused by every run that asks for them).")
WeightsOpt = typer.Option(None, "--weights", help="With a package.module:factory target: its weights, a .safetensors "
                          "file or a plain PyTorch state dict (read with weights_only=True, never a full pickle).")
DefenseWeightsOpt = typer.Option(None, "--defense-weights", help="With a package.module:factory defense: its "
                                 "weights (.safetensors or a plain state dict).")
JsonOpt = typer.Option(False, "--json", help="Print the result (card or summary) as JSON, and no progress.")
SeedOpt = typer.Option(0, "--seed", help="Seed of every random draw (attacks, training, subsets).")


def images_option(default: int | None, what: str):
    """``--n`` / ``--images`` (torchrun's own parser takes ``--n`` for ``--nnodes``, so under it write --images)."""
    return typer.Option(default, "--n", "--images", min=1,
                        help=f"{what}; under torchrun write --images: torchrun reads --n as its own option.")


def names_help(registry: str, **where) -> str:
    """The registered names of ``registry`` (attacks, defenses, detectors, models, presets), for help texts."""
    if registry == "attacks":
        from advshield.attacks import ATTACKS as reg
    elif registry == "defenses":
        from advshield.defenses import DEFENSES as reg
    elif registry == "detectors":
        from advshield.detectors import DETECTORS as reg
    elif registry == "models":
        from advshield.models import MODELS as reg
    else:
        from advshield.reproduce import builtin_presets

        return ", ".join(builtin_presets())
    return ", ".join(reg.names(**where))


def writable(*paths: Path | None) -> Path | None:
    """Fail now, with one line, if an output location cannot be written; returns the first path."""
    from advshield.io import check_writable

    for p in paths:
        if p is not None:
            check_writable(p)
    return paths[0] if paths else None


def note_embedded(dataset: str, data_root: Optional[str]) -> None:
    from advshield.data.sources import resolve_root

    if dataset == "mnist" and resolve_root(data_root) is None:
        notes.print("[yellow]no data root given: using the embedded MNIST sample "
                    "(5000 train / 1000 test images); pass --data-root for the full set[/yellow]")


def parse_params(items: list[str], option: str = "--param") -> dict:
    """``NAME=VALUE`` items (VALUE read as JSON where it parses, else kept as a string) -> a dict."""
    params = {}
    for item in items:
        if "=" not in item:
            raise AdvShieldError(f"{option} expects NAME=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        try:
            params[k.replace("-", "_")] = json.loads(v)
        except json.JSONDecodeError:
            params[k.replace("-", "_")] = v
    return params


def parse_floats(text: str, option: str) -> list[float]:
    """``0.1,0.3`` -> [0.1, 0.3]; anything else is one error line naming the option."""
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise AdvShieldError(f"{option} expects comma-separated numbers, got {text!r}") from None
    if not all(v == v and abs(v) != float("inf") for v in values):
        raise AdvShieldError(f"{option} must be finite numbers, got {text!r}")
    return values


def attack_params(names: list[str], items: list[str]) -> dict[str, dict]:
    """``--attack-param pgd.steps=20`` -> {"pgd": {"steps": 20}}."""
    out: dict[str, dict] = {n: {} for n in names}
    for item in items:
        head, sep, value = item.partition("=")
        attack, dot, key = head.rpartition(".")  # labels may hold dots (fgsm-0.1.eps)
        if not sep or not dot:
            raise AdvShieldError(f"--attack-param expects ATTACK.NAME=VALUE, got {item!r}")
        if attack not in out:
            raise AdvShieldError(f"--attack-param {item!r}: {attack} is not among the attacks ({', '.join(names)})")
        out[attack].update(parse_params([f"{key}={value}"], "--attack-param"))
    return out


def quiet_or_print(quiet: bool):
    """The log callback of a command: silent under ``--json`` (stdout holds only the JSON), else the console."""
    return (lambda s: None) if quiet else (lambda s: console.print(s, markup=False, soft_wrap=True))


def print_json_file(path: Path, as_json: bool) -> None:
    """Under ``--json``: print the result card the command wrote, as the command's only output."""
    if as_json:
        print(Path(path).read_text().rstrip())


@contextmanager
def progress_bar(description: str, total: int | None = None, quiet: bool = False):
    """A transient rich bar with an ETA; yields ``update(done, total=None, description=None)``."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True, disable=quiet) as bar:
        task = bar.add_task(description, total=total)

        def update(done: int, total: int | None = None, description: str | None = None) -> None:
            bar.update(task, completed=done, **({"total": total} if total is not None else {}),
                       **({"description": description} if description else {}))

        update.console = bar.console  # type: ignore[attr-defined]
        yield update
