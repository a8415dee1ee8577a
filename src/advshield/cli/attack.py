"""``advshield attack``: craft a stored adversarial set and summarise it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from advshield.cli.common import (DataRoot, DefenseWeightsOpt, DeviceOpt, WeightsOpt, JsonOpt, SeedOpt, app, console,
                                  images_option, names_help, note_embedded, notes, parse_params, progress_bar,
                                  writable)


@app.command("attack")
def attack_cmd(
    model: str = typer.Option(..., help="Target: a zoo model name, a .safetensors checkpoint or your own "
                              "package.module:factory (with --weights)."),
    weights: Optional[Path] = WeightsOpt,
    attack: str = typer.Option(..., help=f"A registered attack ({names_help('attacks')})."),
    eps: Optional[float] = typer.Option(None, help="Perturbation budget, for attacks that have one."),
    param: list[str] = typer.Option([], "--param", help="Other attack parameters, NAME=VALUE (repeatable), "
                                    "e.g. --param steps=40 --param confidence=9."),
    threat: str = typer.Option("white-box", help="white-box, transfer:<substitute model or checkpoint>, "
                               "transfer-feedback:<substitute> (substitute gradients, early stop on the "
                               "target's labels) or adaptive."),
    defense: Optional[str] = typer.Option(None, help="A defense placed before the classifier: a trained restorer "
                                          f"(zoo name or .safetensors), one of {names_help('defenses', kind='preprocessing')} "
                                          "or your own package.module:factory (with --defense-weights)."),
    defense_weights: Optional[Path] = DefenseWeightsOpt,
    defense_param: list[str] = typer.Option([], "--defense-param", help="NAME=VALUE for a preprocessing defense, "
                                            "e.g. --defense squeeze --defense-param bits=2 --defense-param size=3."),
    dataset: Optional[str] = typer.Option(None, help="Default: the checkpoint card's dataset."),
    split: str = typer.Option("test"),
    n: Optional[int] = images_option(None, "Attack the first N images of the split (default: all)"),
    seed: int = SeedOpt,
    batch_size: int = typer.Option(250, min=1),
    device: str = DeviceOpt,
    data_root: Optional[str] = DataRoot,
    out: Path = typer.Option(Path("runs/adversarial"), help="Folder of the adversarial-set store."),
    health: bool = typer.Option(True, "--health/--no-health", help="With --threat adaptive: run the attack "
                                "health checks on 100 images and warn when gradients look masked."),
    as_json: bool = JsonOpt,
) -> None:
    """Craft an adversarial set (stored exactly, named by a content hash, resumable) and summarise it."""
    from advshield.attacks import Pipeline
    from advshield.defenses import DEFENSES, is_restorer
    from advshield.errors import AdvShieldError
    from advshield.experiment import AttackSetting, RunContext, Threat, acquire_set, on_victim
    from advshield.evaluation.sample_size import sample_size_flags
    from advshield.evaluation.verdict import health_flags
    from advshield.experiment.health import setting_health

    params = parse_params(param)
    defense_params = parse_params(defense_param, "--defense-param")
    if defense_params and not (defense in DEFENSES and not is_restorer(defense)):
        raise AdvShieldError("--defense-param sets a registered preprocessing defense's parameters "
                             f"({names_help('defenses', kind='preprocessing')}); got --defense {defense}")
    if eps is not None:
        params["eps"] = eps
    setting = AttackSetting(attack, params, Threat.parse(threat), n)
    writable(out)
    ctx = RunContext.create(device, store=out, data_root=data_root, seed=seed, batch_size=batch_size)
    victim = ctx.load_target(model, dataset, weights)
    ds_name = ctx.dataset_of(victim, dataset)
    sub = ctx.load_target(setting.threat.substitute, ds_name) if setting.threat.transfers else None
    note_embedded(ds_name, data_root)
    data = ctx.load_data(ds_name, split, n, target=victim)
    defense_obj, defense_id, _ = (ctx.load_defense(defense, defense_params, weights=defense_weights,
                                                   probe=data.tensors(slice(0, 8))[0])
                                  if defense else (None, None, None))
    pipeline = Pipeline(victim.model, defense_obj)
    with progress_bar(f"{attack} on {victim.architecture}", len(data), quiet=as_json) as update:
        stored = acquire_set(setting, victim, data, ctx, dataset=ds_name, split=split, substitute=sub,
                             defense=defense_obj, defense_id=defense_id, progress=lambda done, total: update(done))
    result = on_victim(stored, setting, pipeline, data, ctx)
    summary = dict(result.summary(), path=str(stored.folder), cached=stored.cached, attack=attack,
                   params=setting.create().params(), model=victim.architecture, dataset=ds_name, split=split,
                   threat=str(setting.threat), defense=defense, defense_params=defense_params)
    if setting.threat.adaptive and health:
        with progress_bar("health checks", quiet=as_json) as update:
            ctx.progress = lambda what, done, total: update(done, total, what)
            summary["health"] = setting_health(setting, pipeline, data, ctx)
        for c in summary["health"].get("failures", []):
            notes.print(f"[red]warning: health check '{c['check']}' failed: {c['detail']} (gradients may be "
                        "masked; do not trust these numbers)[/red]")
    if setting.threat.adaptive:  # as an evaluation card's: failed checks, then the sample size of this one attack
        ci = summary["adv_accuracy_ci95"] or (0.0, 1.0)
        block = {"n": summary["n"], "accuracy": summary["adv_accuracy"], "ci95": list(ci)}
        summary["red_flags"] = (health_flags({str(setting.threat) + " " + attack: summary["health"]})
                                if "health" in summary else []) + sample_size_flags({"adaptive_worst_case": block})
        notes.print("Red flags: " + ("; ".join(f"{f['check']}: {f['detail']}" for f in summary["red_flags"])
                                     or "none fired") + ("" if "health" in summary else " (health checks off)"),
                    markup=False)
    if as_json:
        print(json.dumps(summary, indent=2))
        return
    ci = summary["adv_accuracy_ci95"] or (0.0, 1.0)
    console.print(f"{attack} on {victim.architecture} ({threat}, {summary['n']} {ds_name}/{split} images"
                  f"{', cached' if summary['cached'] else ''}): accuracy {summary['clean_accuracy']:.4f} -> "
                  f"{summary['adv_accuracy']:.4f} [95 % CI {ci[0]:.4f}, {ci[1]:.4f}], success {summary['success_rate']:.4f}, median L2 "
                  f"{summary['median_l2'] or 0:.3f}, L-inf {summary['median_linf'] or 0:.3f}; {stored.folder}",
                  markup=False)
