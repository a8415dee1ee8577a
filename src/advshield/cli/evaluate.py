"""``advshield evaluate`` and ``advshield detect``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from advshield.cli.common import (DataRoot, DefenseWeightsOpt, DeviceOpt, WeightsOpt, JsonOpt, SeedOpt, StoreOpt, app,
                                  attack_params, console, images_option, names_help, note_embedded, parse_params,
                                  print_json_file, progress_bar, quiet_or_print, writable)
from advshield.errors import AdvShieldError


@app.command("evaluate")
def evaluate_cmd(
    target: str = typer.Option(..., help="Protected classifier: a zoo name, a .safetensors checkpoint or your own "
                               "package.module:factory (with --weights)."),
    weights: Optional[Path] = WeightsOpt,
    defense: str = typer.Option(..., help="A trained restorer (zoo name or .safetensors), a registered "
                                f"preprocessing defense ({names_help('defenses', kind='preprocessing')}) or your own "
                                "package.module:factory (with --defense-weights)."),
    defense_weights: Optional[Path] = DefenseWeightsOpt,
    defense_param: list[str] = typer.Option([], "--defense-param", help="NAME=VALUE for a preprocessing defense."),
    attacks: str = typer.Option("fgsm,rfgsm,pgd,deepfool,cw,spatial",
                                help=f"Comma-separated attacks among {names_help('attacks')}."),
    attack_param: list[str] = typer.Option([], "--attack-param", help="ATTACK.NAME=VALUE (repeatable)."),
    threat: list[str] = typer.Option(["white-box", "adaptive"], "--threat", help="white-box (oblivious: ignores the "
                                     "defense), transfer:<substitute> or adaptive (through the defense: BPDA, EOT) "
                                     "(repeatable)."),
    ensemble: bool = typer.Option(True, "--ensemble/--no-ensemble", help="Add the AutoAttack ensemble (standard; "
                                  "rand through a randomised defense) under adaptive at the budget of the first "
                                  "L-inf or L2 attack, so the verdict's "
                                  "worst case meets the field's standard attacker."),
    n: Optional[int] = images_option(None, "First N test images (default: all)"),
    dataset: Optional[str] = typer.Option(None, help="Default: the target card's dataset."),
    seed: int = SeedOpt,
    batch_size: int = typer.Option(250, min=1),
    device: str = DeviceOpt,
    data_root: Optional[str] = DataRoot,
    out: Optional[Path] = typer.Option(None, help="Output folder (default: runs/eval/<target>-<defense>)."),
    store: Path = StoreOpt,
    figures: bool = typer.Option(True, "--figures/--no-figures"),
    checks: int = typer.Option(100, min=0, help="Images the convergence and gradient-masking checks of every "
                               "adaptive setting run on (0: none; failures are red flags in the card and report)."),
    sample_reason: Optional[str] = typer.Option(None, help="Why the adaptive worst case rests on fewer than 500 "
                                                "images (else a sample-size red flag); recorded in the card."),
    as_json: bool = JsonOpt,
) -> None:
    """Robust accuracy through the defense per attack and threat model (oblivious and adaptive by default, with
    the AutoAttack ensemble), its 95 % interval, the adaptive worst case, health checks and red flags; recovery,
    success rate (the papers' metric), SSIM/PSNR and norms. The adaptive settings cost most of the time: --n 500
    gives a first verdict."""
    from advshield.evaluation import run_evaluation
    from advshield.experiment import AttackSetting, RunContext, Threat
    from advshield.experiment.setting import add_ensemble
    from advshield.reproduce.restoration.preset import EVALUATION_THREATS
    from advshield.user_modules import is_user_spec

    names = [a.strip() for a in attacks.split(",") if a.strip()]
    params = attack_params(names, attack_param)
    threats = [Threat.parse(t, allowed=EVALUATION_THREATS) for t in threat]
    for t in threats:
        if t.transfers and not t.substitute:
            raise AdvShieldError(f"--threat {t}: name the substitute, transfer:<substitute>")
    settings = [AttackSetting(a, params[a], t) for t in threats for a in names]
    adaptive = Threat.parse("adaptive")
    note = add_ensemble(settings, adaptive, "--no-ensemble") if ensemble and adaptive in threats else None
    notes = [note] if note else []
    out = out or Path("runs") / "eval" / f"{Path(target).stem}-{Path(defense).parent.name or Path(defense).stem}"
    writable(out, store)
    ctx = RunContext.create(device, distributed=True, store=store, data_root=data_root, seed=seed,
                            batch_size=batch_size,
                            log=(lambda s: None) if as_json else (lambda s: console.print(s, markup=False, soft_wrap=True)))
    if not is_user_spec(defense):
        ctx.load_defense(defense, parse_params(defense_param, "--defense-param"))  # fail before any attack runs
    note_embedded(dataset or "mnist", data_root)
    with progress_bar("evaluating", quiet=as_json) as update:
        ctx.progress = lambda what, done, total: update(done, total, what)
        card = run_evaluation(target, defense, settings, out, ctx, defense_params=parse_params(defense_param),
                              dataset=dataset, n=n, figures=figures, checks=checks, target_weights=weights,
                              defense_weights=defense_weights, notes=notes, sample_reason=sample_reason)
    if as_json:
        print(json.dumps(card, indent=2))
    else:
        console.print(f"results: {out / 'card.json'}, {out / 'results.csv'}", markup=False)


@app.command("detect")
def detect_cmd(
    target: str = typer.Option(..., help="A zoo model name or a .safetensors checkpoint."),
    detector: str = typer.Option("cmag-ssim", help=f"A registered detector: {names_help('detectors')}."),
    attacks: str = typer.Option("fgsm,cw", help="Comma-separated attacks, crafted white-box on the target; "
                                "LABEL=ATTACK names one setting, e.g. cw-29=cw with --attack-param cw-29.confidence=29."),
    attack_param: list[str] = typer.Option([], "--attack-param", help="ATTACK.NAME=VALUE (or LABEL.NAME=VALUE), "
                                           "e.g. cw.confidence=9."),
    fpr: float = typer.Option(0.05, min=0.0001, max=0.9999, help="False-positive rate on held-out clean images that sets the threshold."),
    n_train: int = typer.Option(5000, min=1, help="Clean training images for the generative model."),
    n_calibration: int = typer.Option(1000, min=1, help="Held-out clean training images for the threshold."),
    epochs: int = typer.Option(10, min=1),
    n: int = images_option(1000, "Test images (clean, and attacked)"),
    dataset: Optional[str] = typer.Option(None),
    seed: int = SeedOpt,
    device: str = DeviceOpt,
    data_root: Optional[str] = DataRoot,
    store: Path = StoreOpt,
    out: Optional[Path] = typer.Option(None, help="Output folder (default: runs/detect/<target>-<detector>)."),
    gan_steps: int = typer.Option(200, min=1, help="Defense-GAN: gradient steps L of the latent search."),
    gan_restarts: int = typer.Option(10, min=1, help="Defense-GAN: random starts R of the latent search."),
    gan_search_lr: float = typer.Option(10.0, help="Defense-GAN: initial rate of the latent search (decays 10x)."),
    gan_lr: float = typer.Option(1e-4, help="Defense-GAN: Adam rate of the WGAN-GP training."),
    adaptive: int = typer.Option(0, min=0, help="Also attack this many test images with the joint loss "
                                                "(misclassify and stay under the threshold): APGD-CE (two "
                                                "restarts: from the clean image, then the eps-sphere) and PGD, "
                                                "per-image worst case."),
    adaptive_eps: float = typer.Option(0.3, help="L-inf budget of the adaptive attacks."),
    adaptive_steps: int = typer.Option(100, min=1, help="Steps of each adaptive attack (PGD's step: 2.5 eps / "
                                                        "steps)."),
    checks: Optional[int] = typer.Option(None, min=0, help="Images of the adaptive attack's convergence and "
                                         "gradient-masking checks, judged like it (a win needs an unflagged "
                                         "misclassification); 0 skips them. Used only with --adaptive. Default: 100, "
                                         "but 0 for defense-gan (each attack step runs its latent search: hours)."),
    max_rule_n: int = typer.Option(0, min=0, help="Training images for the papers' max-rule threshold "
                                                  "(0: all of --n-train)."),
    checkpoint: Optional[Path] = typer.Option(None, help="A detector.safetensors saved by an earlier run: reuse it "
                                                         "instead of training (recalibrated on the held-out images)."),
    as_json: bool = JsonOpt,
) -> None:
    """Train a detector on clean data, calibrate it at --fpr, report detection rate, FPR, AUC and TPR@1%/5%.

    The trained detector is saved as <out>/detector.safetensors with its JSON card."""
    from advshield.detectors import DETECTORS, Projection
    from advshield.evaluation.detection import detection_experiment
    from advshield.evaluation.detection_adaptive import default_adaptive
    from advshield.experiment import AttackSetting, RunContext

    DETECTORS.entry(detector)  # an unknown name fails here, naming the registered ones
    labelled = dict((a.partition("=")[0].strip(), (a.partition("=")[2] or a).strip())
                    for a in attacks.split(",") if a.strip())
    params = attack_params(list(labelled), attack_param)
    settings = [AttackSetting(name, params[label], label=label) for label, name in labelled.items()]
    note_embedded(dataset or "mnist", data_root)
    ctx = RunContext.create(device, store=store, data_root=data_root, seed=seed, log=quiet_or_print(as_json))
    out = out or Path("runs") / "detect" / f"{Path(target).stem}-{detector}"
    writable(out, store)
    with progress_bar("detection", quiet=as_json) as update:
        ctx.progress = lambda what, done, total: update(done, total, what)
        detection_experiment(target, detector, settings, out, ctx, fpr=fpr, n_train=n_train,
                             n_calibration=n_calibration, epochs=epochs, n=n, dataset=dataset, gan_lr=gan_lr,
                             projection=Projection(steps=gan_steps, restarts=gan_restarts, lr=gan_search_lr,
                                                   final_lr=gan_search_lr / 10),
                             adaptive=adaptive, adaptive_settings=default_adaptive(adaptive_eps, adaptive_steps),
                             max_rule_n=max_rule_n, checkpoint=checkpoint,
                             checks=(0 if detector == "defense-gan" else 100) if checks is None else checks)
    print_json_file(out / "detection.json", as_json)
