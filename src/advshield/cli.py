"""The ``advshield`` command line (typer + rich)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Optional

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from advshield.errors import AdvShieldError

app = typer.Typer(help="advshield: attack, defend and honestly evaluate image classifiers.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)
models_app = typer.Typer(help="The target-classifier zoo: architectures and checkpoints.", no_args_is_help=True)
data_app = typer.Typer(help="Datasets: check that they load, counts and classes.", no_args_is_help=True)
app.add_typer(models_app, name="models")
app.add_typer(data_app, name="data")
analyze_app = typer.Typer(help="Analyses: how adversarial perturbations propagate through a classifier.",
                          no_args_is_help=True)
app.add_typer(analyze_app, name="analyze")
console = Console()
notes = Console(stderr=True)

DataRoot = typer.Option(None, "--data-root", help="Folder holding the datasets (default: $ADVSHIELD_DATA; "
                        "MNIST falls back to the embedded sample).")
DeviceOpt = typer.Option("auto", "--device", help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps.")


def _note_embedded(dataset: str, data_root: Optional[str]) -> None:
    from advshield.data.sources import resolve_root

    if dataset == "mnist" and resolve_root(data_root) is None:
        notes.print("[yellow]no data root given: using the embedded MNIST sample "
                      "(5000 train / 1000 test images); pass --data-root for the full set[/yellow]")


@app.command("train-target")
def train_target_cmd(
    dataset: str = typer.Option("mnist", help="mnist, fashion-mnist, cifar10 or gtsrb."),
    model: str = typer.Option("a-net", help="A registered architecture (see `advshield models list`)."),
    model_param: list[str] = typer.Option([], "--model-param", help="Architecture argument NAME=VALUE "
                                          "(JSON value), e.g. width=16; repeatable."),
    epochs: int = typer.Option(10, min=1),
    batch_size: int = typer.Option(128, min=1),
    optimizer: str = typer.Option("adam", help="adam or sgd."),
    lr: float = typer.Option(1e-3, help="Base learning rate."),
    momentum: float = typer.Option(0.9, help="SGD momentum (Nesterov)."),
    weight_decay: float = typer.Option(0.0),
    schedule: str = typer.Option("cosine", help="constant, cosine, step or onecycle."),
    warmup_epochs: float = typer.Option(0.0),
    label_smoothing: float = typer.Option(0.0),
    augment: Optional[str] = typer.Option(None, help="none, shift (translate up to 2 px) or crop-flip "
                                          "(default: crop-flip for colour datasets, none for MNIST-like)."),
    val_fraction: float = typer.Option(0.1, help="Part of the training split held out for model selection."),
    n_train: Optional[int] = typer.Option(None, help="Use only the first N training images."),
    seed: int = typer.Option(0),
    device: str = DeviceOpt,
    data_root: Optional[str] = DataRoot,
    out: Optional[Path] = typer.Option(None, help="Run folder (default: runs/<dataset>-<model>)."),
    resume: bool = typer.Option(True, "--resume/--no-resume", help="Continue an interrupted run in --out."),
    as_json: bool = typer.Option(False, "--json", help="Print the final card as JSON."),
) -> None:
    """Train a target classifier; checkpoint every epoch, keep the best on validation, report clean test accuracy."""
    from advshield.training import TrainConfig, train_target

    cfg = TrainConfig(dataset=dataset, model=model, model_params=_parse_params(model_param), epochs=epochs,
                      batch_size=batch_size, optimizer=optimizer, lr=lr, momentum=momentum, weight_decay=weight_decay,
                      schedule=schedule, warmup_epochs=warmup_epochs,
                      label_smoothing=label_smoothing, augment=augment, val_fraction=val_fraction, n_train=n_train,
                      seed=seed, device=device, data_root=data_root)
    _note_embedded(cfg.dataset.value, data_root)
    out = out or Path("runs") / f"{cfg.dataset.value}-{cfg.model}"
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True, disable=as_json) as bar:
        task = bar.add_task("training", total=None)

        def progress(desc: str, done: int, total: int) -> None:
            bar.update(task, description=desc, completed=done, total=total)

        result = train_target(cfg, out, resume=resume, progress=progress,
                              log=(lambda s: None) if as_json else bar.console.print)
    if as_json:
        print(json.dumps(result.card, indent=2))
    else:
        console.print(f"[bold]test accuracy: {result.card['test_accuracy']:.4f}[/bold] "
                      f"({result.card['test_set']['n']} test images) -> {result.checkpoint}")


def _parse_params(items: list[str]) -> dict:
    params = {}
    for item in items:
        if "=" not in item:
            raise AdvShieldError(f"--param expects NAME=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        try:
            params[k.replace("-", "_")] = json.loads(v)
        except json.JSONDecodeError:
            params[k.replace("-", "_")] = v
    return params


@app.command("attack")
def attack_cmd(
    model: str = typer.Option(..., help="Target: a zoo model name or a .safetensors checkpoint."),
    attack: str = typer.Option(..., help="A registered attack (fgsm, rfgsm, bim, pgd, pgd-l2, mifgsm, deepfool, "
                               "deepfool-linf, cw, spatial, uniform-noise)."),
    eps: Optional[float] = typer.Option(None, help="Perturbation budget, for attacks that have one."),
    param: list[str] = typer.Option([], "--param", help="Other attack parameters, NAME=VALUE (repeatable), "
                                    "e.g. --param steps=40 --param confidence=9."),
    threat: str = typer.Option("white-box", help="white-box, transfer:<substitute model or checkpoint>, "
                               "transfer-feedback:<substitute> (substitute gradients, early stop on the "
                               "target's labels) or adaptive."),
    defense: Optional[str] = typer.Option(None, help="A registered defense placed before the classifier."),
    dataset: Optional[str] = typer.Option(None, help="Default: the checkpoint card's dataset."),
    split: str = typer.Option("test"),
    n: Optional[int] = typer.Option(None, help="Attack the first N images of the split (default: all)."),
    seed: int = typer.Option(0),
    batch_size: int = typer.Option(250, min=1),
    device: str = DeviceOpt,
    data_root: Optional[str] = DataRoot,
    out: Path = typer.Option(Path("runs/adversarial"), help="Folder of the adversarial-set store."),
    health: bool = typer.Option(True, "--health/--no-health", help="With --threat adaptive: run the attack "
                                "health checks on 100 images and warn when gradients look masked."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Craft an adversarial set (stored exactly, named by a content hash, resumable) and summarise it."""
    from advshield.adversarial import AdversarialSpec, generate_adversarial_set
    from advshield.attacks import Pipeline, create_attack
    from advshield.checkpoint import load_model
    from advshield.data import load_dataset
    from advshield.defenses import DEFENSES
    from advshield.device import select_device
    from advshield.zoo import resolve_checkpoint

    dev = select_device(device)
    params = _parse_params(param)
    if eps is not None:
        params["eps"] = eps
    attack_obj = create_attack(attack, **params)
    classifier, card = load_model(resolve_checkpoint(model, dataset), dev)
    ds_name = dataset or card["dataset"]
    threat_name, _, sub_name = threat.partition(":")
    substitute, sub_sha = None, None
    if threat_name in ("transfer", "transfer-feedback"):
        if not sub_name:
            raise AdvShieldError(f"--threat {threat_name} needs a substitute: {threat_name}:<model or checkpoint>")
        substitute, sub_card = load_model(resolve_checkpoint(sub_name, ds_name), dev)
        sub_sha = sub_card["sha256"]
    defense_obj = DEFENSES.create(defense) if defense else None
    _note_embedded(ds_name, data_root)
    data = load_dataset(ds_name, split, data_root)
    spec = AdversarialSpec(card["sha256"], attack, attack_obj.params(), ds_name, split, min(n or len(data), len(data)),
                           seed, threat_name, sub_sha, {"name": defense} if defense else None)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True, disable=as_json) as bar:
        task = bar.add_task(f"{attack} on {card['architecture']}", total=spec.n)
        folder, result, cached = generate_adversarial_set(
            spec, attack_obj, Pipeline(classifier, defense_obj), data, out, substitute=substitute,
            batch_size=batch_size, device=dev, progress=lambda done, total: bar.update(task, completed=done))
    summary = dict(result.summary(), path=str(folder), cached=cached, attack=attack, params=attack_obj.params(),
                   model=card["architecture"], dataset=ds_name, split=split, threat=threat)
    if threat_name == "adaptive" and health:
        summary["health"] = _adaptive_health(attack, params, Pipeline(classifier, defense_obj), data, dev)
    if as_json:
        print(json.dumps(summary, indent=2))
        return
    console.print(f"{attack} on {card['architecture']} ({threat}, {summary['n']} {ds_name}/{split} images"
                  f"{', cached' if cached else ''}): accuracy {summary['clean_accuracy']:.4f} -> "
                  f"{summary['adv_accuracy']:.4f}, success {summary['success_rate']:.4f}, median L2 "
                  f"{summary['median_l2'] or 0:.3f}, L-inf {summary['median_linf'] or 0:.3f}; {folder}", markup=False)


def _adaptive_health(attack: str, params: dict, pipeline, data, device) -> dict:
    import inspect

    from advshield.attacks import ATTACKS, create_attack
    from advshield.attacks.health import check_attack_health

    accepted = inspect.signature(ATTACKS.entry(attack).factory).parameters
    if not {"eps", "steps"} <= set(accepted):
        return {"skipped": f"{attack} has no eps/steps budget to vary"}
    fixed = {k: v for k, v in params.items() if k in accepted and k not in ("eps", "steps")}
    eps = params.get("eps", accepted["eps"].default)
    steps = params.get("steps", accepted["steps"].default)
    x, y = data.tensors(slice(0, 100))
    report = check_attack_health(lambda e, s: create_attack(attack, eps=e, steps=s, **fixed), pipeline.to(device),
                                 x, y, eps, steps, warn=False)
    for c in report.failures:
        notes.print(f"[red]warning: health check '{c['check']}' failed: {c['detail']} (gradients may be masked; "
                    "do not trust these numbers)[/red]")
    return {"ok": report.ok, "checks": report.checks}


def _attack_params(names: list[str], items: list[str]) -> dict[str, dict]:
    """``--attack-param pgd.steps=20`` -> {"pgd": {"steps": 20}}."""
    out: dict[str, dict] = {n: {} for n in names}
    for item in items:
        head, sep, value = item.partition("=")
        attack, dot, key = head.rpartition(".")  # labels may hold dots (fgsm-0.1.eps)
        if not sep or not dot:
            raise AdvShieldError(f"--attack-param expects ATTACK.NAME=VALUE, got {item!r}")
        if attack not in out:
            raise AdvShieldError(f"--attack-param {item!r}: {attack} is not among the attacks ({', '.join(names)})")
        out[attack].update(_parse_params([f"{key}={value}"]))
    return out


def _progress_columns():
    return (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())


@app.command("train-defense")
def train_defense_cmd(
    defense: str = typer.Option("cru-net", help="A registered restorer: cru-net, dir, unet, fusionnet."),
    target: str = typer.Option("a-net", help="Classifier whose adversarial examples make the pairs (zoo name or "
                               ".safetensors)."),
    attacks: str = typer.Option("fgsm,rfgsm,pgd,deepfool,cw,spatial", help="Comma-separated attacks; add 'clean' "
                                "for identity pairs."),
    proportions: Optional[str] = typer.Option(None, help="Comma-separated shares of the pairs, one per attack "
                                              "(e.g. 0.05,0.30,0.05,0.30,0.30); default equal."),
    attack_param: list[str] = typer.Option([], "--attack-param", help="ATTACK.NAME=VALUE (repeatable), "
                                           "e.g. --attack-param pgd.steps=20."),
    on_the_fly: str = typer.Option("", help="Comma-separated attacks whose pairs are regenerated every epoch."),
    defense_param: list[str] = typer.Option([], "--defense-param", help="NAME=VALUE for the restorer, e.g. width=16."),
    n_train: int = typer.Option(10000, min=1, help="Training images turned into pairs."),
    n_val: int = typer.Option(1000, min=0, help="Held-out training images for validation pairs."),
    epochs: int = typer.Option(10, min=1),
    batch_size: int = typer.Option(128, min=1),
    lr: float = typer.Option(1e-3),
    schedule: str = typer.Option("constant", help="Learning-rate schedule: constant or cosine."),
    substitute: Optional[str] = typer.Option(None, help="Model the transfer sources of a --config are crafted on (overrides its substitute)."),
    config: Optional[Path] = typer.Option(None, help="A YAML training config (the DefenseTrainConfig fields: "
                                          "attacks with label, params, proportion and threat, substitute, loss, ...); "
                                          "when given, only --device, --data-root, --out, --store and --resume "
                                          "apply beside it."),
    l1: float = typer.Option(0.0, help="Weight of an L1 term added to the MSE (Eq. 10)."),
    ssim_weight: float = typer.Option(0.0, "--ssim", help="Weight of a (1 - SSIM) term."),
    mse: float = typer.Option(1.0, help="Weight of the MSE term."),
    ce: float = typer.Option(0.0, help="Weight of the target's cross-entropy on the restored image (classifier-"
                             "guided; beyond CRU-Net's Eq. 10)."),
    init: Optional[str] = typer.Option(None, help="Start from this trained restorer (zoo name or .safetensors) "
                                       "instead of random weights: fine-tuning."),
    seed: int = typer.Option(0),
    device: str = DeviceOpt,
    data_root: Optional[str] = DataRoot,
    out: Optional[Path] = typer.Option(None, help="Run folder (default: runs/defenses/<defense>-<target>)."),
    store: Path = typer.Option(Path("runs/adversarial"), help="Adversarial-set store (pairs are cached there)."),
    resume: bool = typer.Option(True, "--resume/--no-resume"),
    as_json: bool = typer.Option(False, "--json", help="Print the final card as JSON."),
) -> None:
    """Train a restoration defense on (adversarial, clean) pairs crafted with the attack engine (cached)."""
    from advshield.training.defense_config import AttackMix, DefenseTrainConfig
    from advshield.training.defense_trainer import train_defense

    if config is not None:
        from advshield.config_file import load_yaml_model

        cfg = load_yaml_model(config, DefenseTrainConfig, "training config")
        cfg = cfg.model_copy(update={"device": device, "data_root": data_root or cfg.data_root,
                                     "substitute": substitute or cfg.substitute})
    else:
        names = [a.strip() for a in attacks.split(",") if a.strip()]
        shares = [float(p) for p in proportions.split(",")] if proportions else [1.0] * len(names)
        if len(shares) != len(names):
            raise AdvShieldError(f"--proportions has {len(shares)} values for {len(names)} attacks")
        params = _attack_params(names, attack_param)
        fly = {a.strip() for a in on_the_fly.split(",") if a.strip()}
        cfg = DefenseTrainConfig(
            defense=defense, defense_params=_parse_params(defense_param), target=target, substitute=substitute,
            attacks=[AttackMix(name=n, params=params[n], proportion=p, on_the_fly=n in fly)
                     for n, p in zip(names, shares)],
            n_train=n_train, n_val=n_val, epochs=epochs, batch_size=batch_size, lr=lr, schedule=schedule,
            loss={"mse": mse, "l1": l1, "ssim": ssim_weight, "ce": ce}, init=init, seed=seed, device=device,
            data_root=data_root)
    out = out or Path("runs") / "defenses" / f"{cfg.defense}-{Path(cfg.target).stem}"
    with Progress(*_progress_columns(), console=console, transient=True, disable=as_json) as bar:
        task = bar.add_task("training", total=None)
        result = train_defense(cfg, out, store=store, resume=resume,
                               progress=lambda d, done, total: bar.update(task, description=d, completed=done,
                                                                          total=total),
                               log=(lambda s: None) if as_json else bar.console.print)
    if as_json:
        print(json.dumps(result.card, indent=2))


@app.command("evaluate")
def evaluate_cmd(
    target: str = typer.Option(..., help="Protected classifier (zoo name or .safetensors)."),
    defense: str = typer.Option(..., help="A trained restorer (.safetensors) or a registered preprocessing defense."),
    defense_param: list[str] = typer.Option([], "--defense-param", help="NAME=VALUE for a preprocessing defense."),
    attacks: str = typer.Option("fgsm,rfgsm,pgd,deepfool,cw,spatial", help="Comma-separated attacks."),
    attack_param: list[str] = typer.Option([], "--attack-param", help="ATTACK.NAME=VALUE (repeatable)."),
    threat: list[str] = typer.Option(["white-box"], "--threat", help="white-box, transfer:<substitute> or adaptive "
                                     "(repeatable)."),
    n: Optional[int] = typer.Option(None, help="First N test images (default: all)."),
    dataset: Optional[str] = typer.Option(None, help="Default: the target card's dataset."),
    seed: int = typer.Option(0),
    batch_size: int = typer.Option(250, min=1),
    device: str = DeviceOpt,
    data_root: Optional[str] = DataRoot,
    out: Optional[Path] = typer.Option(None, help="Output folder (default: runs/eval/<target>-<defense>)."),
    store: Path = typer.Option(Path("runs/adversarial"), help="Adversarial-set store."),
    figures: bool = typer.Option(True, "--figures/--no-figures"),
    as_json: bool = typer.Option(False, "--json", help="Print the card as JSON."),
) -> None:
    """Restored accuracy, success and recovery rates, SSIM/PSNR and norms per attack and threat model."""
    from advshield.evaluation import Setting, run_evaluation

    names = [a.strip() for a in attacks.split(",") if a.strip()]
    params = _attack_params(names, attack_param)
    settings = []
    for t in threat:
        name, _, sub = t.partition(":")
        if name not in ("white-box", "transfer", "adaptive") or (name == "transfer") != bool(sub):
            raise AdvShieldError(f"--threat {t!r}: use white-box, adaptive or transfer:<substitute>")
        settings += [Setting(a, params[a], name, sub or None) for a in names]
    if not Path(defense).is_file():
        from advshield.defenses import DEFENSES

        if DEFENSES.entry(defense).meta.get("kind") == "restorer":
            raise AdvShieldError(f"{defense} must be trained first (advshield train-defense); pass its .safetensors file")
    _note_embedded(dataset or "mnist", data_root)
    out = out or Path("runs") / "eval" / f"{Path(target).stem}-{Path(defense).parent.name or Path(defense).stem}"
    card = run_evaluation(target, defense, settings, out, defense_params=_parse_params(defense_param), dataset=dataset,
                          n=n, data_root=data_root, store=store, seed=seed, batch_size=batch_size, device=device,
                          figures=figures, log=(lambda s: None) if as_json else (lambda s: console.print(s, markup=False, soft_wrap=True)))
    if as_json:
        print(json.dumps(card, indent=2))
    else:
        console.print(f"results: {out / 'card.json'}, {out / 'results.csv'}", markup=False)


@app.command("reproduce")
def reproduce_cmd(
    preset: str = typer.Argument(..., help="cru-net-mnist, cru-net-mnist-guided, cru-net-cifar10, "
                                 "cru-net-cifar10-guided, dir-mnist, "
                                 "dir-cifar10, dkn-mnist, dkn-cifar10, cmag-mnist, cmag-fmnist, cmag-gtsrb, "
                                 "or a YAML file."),
    full: bool = typer.Option(False, "--full", help="The whole budget (whole test split) instead of the fast variant."),
    device: str = DeviceOpt,
    data_root: Optional[str] = DataRoot,
    out: Optional[Path] = typer.Option(None, help="Output folder (default: runs/reproduce/<preset>[-full])."),
    store: Optional[Path] = typer.Option(None, help="Adversarial-set store to reuse (default: <out>/adversarial)."),
    seed: int = typer.Option(0),
    retrain: bool = typer.Option(False, "--retrain", help="Train the restorers even where the zoo ships one "
                                 "trained with the identical recipe."),
) -> None:
    """Run a paper's whole pipeline (zoo targets, attacks, restorer training, evaluation) and write a report."""
    from advshield.reproduce import load_preset, reproduce

    p = load_preset(preset)
    _note_embedded(p.dataset.value, data_root)
    out = out or Path("runs") / "reproduce" / f"{p.name}{'-full' if full else ''}"
    command = f"advshield reproduce {preset}{' --full' if full else ''}"
    command += " --retrain" if retrain else ""
    if p.kind == "detection":
        from advshield.reproduce.detection_runner import reproduce_detection

        reproduce_detection(p, out, full=full, data_root=data_root, device=device, seed=seed, store=store,
                            command=command, log=lambda s: console.print(s, markup=False, soft_wrap=True))
        return
    reproduce(p, out, full=full, data_root=data_root, device=device, seed=seed, store=store, command=command,
              retrain=retrain,
              log=lambda s: console.print(s, markup=False, soft_wrap=True))


@models_app.command("list")
def models_list(
    directory: list[Path] = typer.Option([], "--dir", help="Also list checkpoints found under this folder."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Registered architectures and the checkpoints available for them, with their cards."""
    from advshield.models import MODELS, count_parameters, create_model
    from advshield.zoo import list_checkpoints, zoo_root

    ckpts = list_checkpoints(*directory)
    if as_json:
        print(json.dumps({"architectures": {n: MODELS.entry(n).meta for n in MODELS.names()},
                          "checkpoints": [dict(e.card, path=str(e.path)) for e in ckpts]}, indent=2, default=str))
        return
    archs = Table(title="Architectures")
    for col in ("name", "dataset", "parameters", "source"):
        archs.add_column(col)
    for n in MODELS.names():
        meta = MODELS.entry(n).meta
        archs.add_row(n, meta.get("dataset", ""), f"{count_parameters(create_model(n)):,}", meta.get("paper", ""))
    console.print(archs)
    table = Table(title="Checkpoints")
    for col in ("dataset", "architecture", "test acc.", "test set", "epochs", "train time", "path"):
        table.add_column(col)
    root = zoo_root()
    for e in ckpts:
        c = e.card
        shown = f"zoo/{e.path.relative_to(root)}" if e.path.is_relative_to(root) else str(e.path)
        acc = c.get("test_accuracy")
        table.add_row(e.dataset, e.name, f"{acc:.4f}" if acc is not None else "-", str(c.get("test_set", {}).get("n", "-")),
                      str(c.get("epochs", "-")), f"{c.get('train_time_s', 0) / 60:.1f} min", shown)
    console.print(table)


@models_app.command("eval")
def models_eval(
    checkpoint: str = typer.Argument(..., help="A .safetensors path or the name of a zoo model."),
    dataset: Optional[str] = typer.Option(None, help="Default: the checkpoint card's dataset."),
    split: str = typer.Option("test"),
    n: Optional[int] = typer.Option(None, help="Evaluate on the first N images only."),
    batch_size: int = typer.Option(500, min=1),
    device: str = DeviceOpt,
    data_root: Optional[str] = DataRoot,
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Clean accuracy of a checkpoint on a dataset split."""
    from advshield.checkpoint import load_model
    from advshield.data import load_dataset
    from advshield.device import select_device
    from advshield.metrics import accuracy
    from advshield.zoo import resolve_checkpoint

    dev = select_device(device)
    model, card = load_model(resolve_checkpoint(checkpoint, dataset), dev)
    ds_name = dataset or card["dataset"]
    _note_embedded(ds_name, data_root)
    ds = load_dataset(ds_name, split, data_root).head(n)
    t0 = time.perf_counter()
    acc = accuracy(model, ds, batch_size, dev)
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
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Load both splits of a dataset (decoding and caching it) and show counts and classes."""
    from advshield.data import dataset_stats, load_dataset

    _note_embedded(dataset, data_root)
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
    seed: int = typer.Option(0),
    device: str = DeviceOpt,
    data_root: Optional[str] = DataRoot,
    store: Path = typer.Option(Path("runs/adversarial"), help="Adversarial-set store."),
    out: Optional[Path] = typer.Option(None, help="Output folder (default: runs/propagation/<model>)."),
) -> None:
    """Layer-wise NE-D and COS-D between clean, adversarial and denoised-adversarial feature maps."""
    from advshield.analysis.run import run_propagation

    from advshield.analysis.settings import paper_settings

    if attacks.strip() == "paper":
        if not substitute:
            raise AdvShieldError("--attacks paper crafts on a substitute (the paper's ResNet-18): pass --substitute")
        settings = paper_settings(eps=eps)
    else:
        names = [a.strip() for a in attacks.split(",") if a.strip()]
        settings = _attack_params(names, attack_param)
    denoiser = [d for d in denoiser if d.strip().lower() != "none"]
    run_propagation(model, settings, out or Path("runs") / "propagation" / Path(model).stem, denoiser=denoiser,
                    layers=[s.strip() for s in layers.split(",")] if layers else None, n=n, dataset=dataset,
                    split=split, substitute=substitute, reference=reference, data_root=data_root, store=store,
                    batch_size=batch_size, seed=seed, device=device,
                    log=lambda s: console.print(s, markup=False, soft_wrap=True))



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


@app.command("detect")
def detect_cmd(
    target: str = typer.Option(..., help="A zoo model name or a .safetensors checkpoint."),
    detector: str = typer.Option("cmag-ssim", help="magnet-error, magnet-divergence, cmag-ssim, cmag-l2 or "
                                                  "defense-gan."),
    attacks: str = typer.Option("fgsm,cw", help="Comma-separated attacks, crafted white-box on the target; "
                                "LABEL=ATTACK names one setting, e.g. cw-29=cw with --attack-param cw-29.confidence=29."),
    attack_param: list[str] = typer.Option([], "--attack-param", help="ATTACK.NAME=VALUE (or LABEL.NAME=VALUE), "
                                           "e.g. cw.confidence=9."),
    fpr: float = typer.Option(0.05, help="False-positive rate on held-out clean images that sets the threshold."),
    n_train: int = typer.Option(5000, min=1, help="Clean training images for the generative model."),
    n_calibration: int = typer.Option(1000, min=1, help="Held-out clean training images for the threshold."),
    epochs: int = typer.Option(10, min=1),
    n: int = typer.Option(1000, min=1, help="Test images (clean, and attacked)."),
    dataset: Optional[str] = typer.Option(None),
    seed: int = typer.Option(0),
    device: str = DeviceOpt,
    data_root: Optional[str] = DataRoot,
    store: Path = typer.Option(Path("runs/adversarial"), help="Adversarial-set store."),
    out: Optional[Path] = typer.Option(None, help="Output folder (default: runs/detect/<target>-<detector>)."),
    gan_steps: int = typer.Option(200, min=1, help="Defense-GAN: gradient steps L of the latent search."),
    gan_restarts: int = typer.Option(10, min=1, help="Defense-GAN: random starts R of the latent search."),
    gan_search_lr: float = typer.Option(10.0, help="Defense-GAN: initial rate of the latent search (decays 10x)."),
    gan_lr: float = typer.Option(1e-4, help="Defense-GAN: Adam rate of the WGAN-GP training."),
    adaptive: int = typer.Option(0, min=0, help="Also attack this many test images with the joint loss "
                                                "(misclassify and stay under the threshold)."),
    adaptive_eps: float = typer.Option(0.3, help="L-inf budget of the adaptive attack."),
    adaptive_steps: int = typer.Option(100, min=1, help="Steps per constant of the adaptive attack."),
    max_rule_n: int = typer.Option(0, min=0, help="Training images for the papers' max-rule threshold "
                                                  "(0: all of --n-train)."),
    checkpoint: Optional[Path] = typer.Option(None, help="A detector.safetensors saved by an earlier run: reuse it "
                                                         "instead of training (recalibrated on the held-out images)."),
) -> None:
    """Train a detector on clean data, calibrate it at --fpr, report detection rate, FPR, AUC and TPR@1%/5%.

    The trained detector is saved as <out>/detector.safetensors with its JSON card."""
    from advshield.detectors.adaptive import JointAttack
    from advshield.detectors.defense_gan import Projection
    from advshield.detectors.run import KINDS, run_detection

    if detector not in KINDS:
        raise AdvShieldError(f"unknown detector {detector!r}; choose one of {', '.join(KINDS)}")
    labelled = dict((a.partition("=")[0].strip(), (a.partition("=")[2] or a).strip())
                    for a in attacks.split(",") if a.strip())
    _note_embedded(dataset or "mnist", data_root)
    run_detection(target, detector, _attack_params(list(labelled), attack_param),
                  out or Path("runs") / "detect" / f"{Path(target).stem}-{detector}", attack_names=labelled,
                  fpr=fpr, n_train=n_train,
                  n_calibration=n_calibration, epochs=epochs, n=n, dataset=dataset, data_root=data_root, store=store,
                  seed=seed, device=device, gan_lr=gan_lr,
                  projection=Projection(steps=gan_steps, restarts=gan_restarts, lr=gan_search_lr,
                                        final_lr=gan_search_lr / 10),
                  adaptive=adaptive, joint=JointAttack(eps=adaptive_eps, steps=adaptive_steps,
                                                       stepsize=adaptive_eps / 25), max_rule_n=max_rule_n,
                  checkpoint=checkpoint, log=lambda s: console.print(s, markup=False, soft_wrap=True))


def main() -> None:
    """Entry point: user errors become one line on stderr and exit status 2, never a traceback."""
    try:
        app()
    except AdvShieldError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'value'}: {e['msg']}" for e in exc.errors())
        print(f"error: invalid option(s): {problems}", file=sys.stderr)
        sys.exit(2)
