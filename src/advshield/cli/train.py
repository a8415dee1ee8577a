"""``advshield train-target`` and ``advshield train-defense``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, get_args

import typer

from advshield.cli.common import (DataRoot, DeviceOpt, JsonOpt, SeedOpt, StoreOpt, app, attack_params, console, names_help,
                                  note_embedded, parse_floats, parse_params, progress_bar, writable)
from advshield.errors import AdvShieldError
from advshield.training.adversarial import DEFAULT_EPS, AdversarialTraining
from advshield.training.config import TrainConfig as _TrainConfig

_METHODS = get_args(AdversarialTraining.model_fields["method"].annotation)  # the one source of the names
_EVAL_VERSIONS = get_args(AdversarialTraining.model_fields["eval_version"].annotation)
_DTYPES = get_args(_TrainConfig.model_fields["storage_dtype"].annotation)


@app.command("train-target")
def train_target_cmd(
    dataset: str = typer.Option("mnist", help="mnist, fashion-mnist, cifar10 or gtsrb."),
    model: str = typer.Option("a-net", help=f"A registered architecture: {names_help('models')}."),
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
    n_train: Optional[int] = typer.Option(None, min=1, help="Use only the first N training images."),
    adversarial: Optional[str] = typer.Option(None, help=f"Adversarial training, L-inf: {', '.join(_METHODS)} "
                                              "(PGD: Madry et al. 2018, TRADES: Zhang et al. 2019, FGSM with random "
                                              "start: Wong et al. 2020)."),
    adv_eps: Optional[float] = typer.Option(None, help="Adversarial training budget (L-inf); default per dataset: "
                                            + ", ".join(f"{k} {v:.4g}" for k, v in DEFAULT_EPS.items()) + "."),
    adv_steps: int = typer.Option(10, min=1, help="Inner PGD steps (pgd, trades)."),
    adv_step_size: Optional[float] = typer.Option(None, help="Inner step size (default 2.5 eps / steps; fgsm-rs "
                                                  "1.25 eps)."),
    trades_beta: float = typer.Option(6.0, help="TRADES robustness weight beta."),
    eps_warmup_epochs: float = typer.Option(0.0, help="Ramp eps linearly from 0 over this many epochs."),
    patience: Optional[int] = typer.Option(None, min=1, help="Stop after this many epochs without a better "
                                           "held-out PGD robust accuracy."),
    robust_eval_n: int = typer.Option(1000, min=1, help="Test images the card's AutoAttack accuracy is measured on."),
    robust_eval_version: str = typer.Option("standard", help=f"AutoAttack version for the card: "
                                            f"{' or '.join(_EVAL_VERSIONS)}."),
    storage_dtype: str = typer.Option("float32", help=f"Dtype of the saved weights: {' or '.join(_DTYPES)} (numbers "
                                      "are measured on the saved weights)."),
    seed: int = SeedOpt,
    device: str = DeviceOpt,
    data_root: Optional[str] = DataRoot,
    out: Optional[Path] = typer.Option(None, help="Run folder (default: runs/<dataset>-<model>)."),
    resume: bool = typer.Option(True, "--resume/--no-resume", help="Continue an interrupted run in --out."),
    as_json: bool = JsonOpt,
) -> None:
    """Train a target classifier (optionally adversarially); checkpoint every epoch, keep the best on validation
    (robust validation accuracy under PGD for adversarial training), report clean (and AutoAttack) test accuracy."""
    from advshield.training import TrainConfig, train_target

    adv = None if adversarial is None else dict(
        method=adversarial, eps=adv_eps if adv_eps is not None else DEFAULT_EPS.get(dataset.lower(), 0.3), steps=adv_steps, step_size=adv_step_size, beta=trades_beta,
        eps_warmup_epochs=eps_warmup_epochs, patience=patience, eval_n=robust_eval_n, eval_version=robust_eval_version)
    cfg = TrainConfig(dataset=dataset, model=model, model_params=parse_params(model_param), epochs=epochs,
                      batch_size=batch_size, optimizer=optimizer, lr=lr, momentum=momentum, weight_decay=weight_decay,
                      schedule=schedule, warmup_epochs=warmup_epochs,
                      label_smoothing=label_smoothing, augment=augment, val_fraction=val_fraction, n_train=n_train,
                      adversarial=adv, storage_dtype=storage_dtype, seed=seed, device=device, data_root=data_root)
    note_embedded(cfg.dataset.value, data_root)
    out = writable(out or Path("runs") / f"{cfg.dataset.value}-{cfg.model}")
    with progress_bar("training", quiet=as_json) as update:
        result = train_target(cfg, out, resume=resume, progress=lambda d, done, total: update(done, total, d),
                              log=(lambda s: None) if as_json else update.console.print)
    if as_json:
        print(json.dumps(result.card, indent=2))
    else:
        console.print(f"[bold]test accuracy: {result.card['test_accuracy']:.4f}[/bold] "
                      f"({result.card['test_set']['n']} test images) -> {result.checkpoint}")



@app.command("train-defense")
def train_defense_cmd(
    defense: str = typer.Option("cru-net", help=f"A registered restorer: {names_help('defenses', kind='restorer')}."),
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
    seed: int = SeedOpt,
    device: str = DeviceOpt,
    data_root: Optional[str] = DataRoot,
    out: Optional[Path] = typer.Option(None, help="Run folder (default: runs/defenses/<defense>-<target>)."),
    store: Path = StoreOpt,
    resume: bool = typer.Option(True, "--resume/--no-resume"),
    as_json: bool = JsonOpt,
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
        shares = parse_floats(proportions, "--proportions") if proportions else [1.0] * len(names)
        if len(shares) != len(names):
            raise AdvShieldError(f"--proportions has {len(shares)} values for {len(names)} attacks")
        params = attack_params(names, attack_param)
        fly = {a.strip() for a in on_the_fly.split(",") if a.strip()}
        cfg = DefenseTrainConfig(
            defense=defense, defense_params=parse_params(defense_param), target=target, substitute=substitute,
            attacks=[AttackMix(name=n, params=params[n], proportion=p, on_the_fly=n in fly)
                     for n, p in zip(names, shares)],
            n_train=n_train, n_val=n_val, epochs=epochs, batch_size=batch_size, lr=lr, schedule=schedule,
            loss={"mse": mse, "l1": l1, "ssim": ssim_weight, "ce": ce}, init=init, seed=seed, device=device,
            data_root=data_root)
    out = writable(out or Path("runs") / "defenses" / f"{cfg.defense}-{Path(cfg.target).stem}")
    writable(store)
    with progress_bar("training", quiet=as_json) as update:
        result = train_defense(cfg, out, store=store, resume=resume,
                               progress=lambda d, done, total: update(done, total, d),
                               log=(lambda s: None) if as_json else update.console.print)
    if as_json:
        print(json.dumps(result.card, indent=2))
