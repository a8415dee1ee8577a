"""Loss ablation of a reproduction (DKN Fig. 2): one restorer per loss variant, all on the same adversarial sets."""

from __future__ import annotations

from pathlib import Path

from advshield.evaluation import run_evaluation
from advshield.evaluation.figures import grouped_bars
from advshield.experiment import RunContext
from advshield.reproduce.restoration.preset import Budget, Preset
from advshield.reproduce.restoration.recipes import settings_for, training_config
from advshield.training.defense_trainer import train_defense

TOTAL = "total loss"


def run_loss_ablation(preset: Preset, budget: Budget, restorers: dict[str, dict], evaluations: list[dict], out: Path,
                      ctx: RunContext) -> dict | None:
    """Train a restorer for ``train_for[0]`` per variant of ``preset.loss_ablation`` and evaluate it obliviously.

    With the main budget the whole-loss restorer is the one already trained and evaluated (the runner's
    ``evaluations``); with a smaller ablation budget (``ablation_n_train`` / ``ablation_epochs``) it is trained
    again under that budget, so the bars compare alike.
    """
    if not preset.loss_ablation:
        return None
    target = preset.train_for[0]
    log = ctx.log
    n_train = budget.ablation_n_train or budget.n_train
    epochs = budget.ablation_epochs or budget.epochs
    same_budget = (n_train, epochs) == (budget.n_train, budget.epochs)
    rows: list[dict] = []
    variants: dict[str, dict] = {}
    for label in [TOTAL, *preset.loss_ablation]:
        folder = out / "ablation" / label.replace(" ", "-")
        reuse = label == TOTAL and same_budget
        if reuse:
            ckpt = restorers[target]["checkpoint"]
            loss = preset.training.loss
        else:
            loss = preset.training.loss if label == TOTAL else preset.ablation_loss(label)
            log(f"== loss ablation: {label} {loss.model_dump()}")
            cfg = training_config(preset, target, budget, ctx)
            cfg = cfg.model_copy(update={"loss": loss, "n_train": n_train, "epochs": epochs})
            ckpt = str(train_defense(cfg, folder / "defense", store=ctx.store, log=log,
                                     progress=ctx.progress).checkpoint)
        variants[label] = {"loss": loss.model_dump(), "checkpoint": ckpt}
        for ev in (e for e in preset.evaluations if e.defense_of == target and not e.restorer):  # not shipped variants
            card = (next(e["oblivious"] for e in evaluations if e["evaluation"] == ev.model_dump()) if reuse else
                    run_evaluation(ev.target, ckpt, settings_for(preset, ev.threats, False), folder / ev.target, ctx,
                                   n=budget.n_test, dataset=preset.dataset.value, figures=False))
            rows += [{"variant": label, "target": ev.target, "threat": r["threat"], "attack": r["attack"],
                      "restored_accuracy": r["restored_accuracy"],
                      "defended_clean_accuracy": r["defended_clean_accuracy"]} for r in card["rows"]]
    figures = []
    for target_name, threat in dict.fromkeys((r["target"], r["threat"]) for r in rows):
        groups: dict[str, dict[str, float]] = {}
        for r in rows:
            if (r["target"], r["threat"]) == (target_name, threat):
                name = preset.attacks[r["attack"]].label or r["attack"]
                groups.setdefault(name, {})[r["variant"]] = r["restored_accuracy"]
        path = out / "figures" / f"ablation-{target_name}-{threat.replace(':', '-')}.png"
        grouped_bars(groups, f"{target_name}, {threat}: accuracy after {preset.defense} per training loss", path)
        figures.append(str(path.relative_to(out)))
    return {"target": target, "n_train": n_train, "epochs": epochs, "variants": variants, "rows": rows,
            "figures": figures}


def ablation_lines(preset: Preset, ablation: dict | None) -> list[str]:
    """The report section: accuracy after the restorer per loss variant, attack and threat."""
    if not ablation:
        return []
    # the run's order (reproduction.json has its keys sorted): the whole loss, then the preset's variants
    names = [n for n in [TOTAL, *preset.loss_ablation] if n in ablation["variants"]] + [
        n for n in ablation["variants"] if n not in (TOTAL, *preset.loss_ablation)]
    lines = ["## Loss ablation (DKN Fig. 2)", "",
             f"Restorers for {ablation['target']} trained on {ablation['n_train']} images for {ablation['epochs']} "
             f"epochs, one per loss; accuracy after each on the same stored adversarial examples (the last row: clean "
             f"images through it). Losses: " + "; ".join(f"{n} = {dict(sorted(ablation['variants'][n]['loss'].items()))}"
                                                       for n in names)
             + ".", "", "| target | threat | attack | " + " | ".join(names) + " |", "|---" * (3 + len(names)) + "|"]
    cells: dict[tuple, dict[str, float]] = {}
    clean: dict[tuple, dict[str, float]] = {}
    for r in ablation["rows"]:
        cells.setdefault((r["target"], r["threat"], r["attack"]), {})[r["variant"]] = r["restored_accuracy"]
        clean.setdefault((r["target"], "-", "clean"), {})[r["variant"]] = r["defended_clean_accuracy"]
    for (target, threat, attack), vals in {**cells, **clean}.items():
        label = (preset.attacks[attack].label or attack) if attack in preset.attacks else "clean"
        lines.append(f"| {target} | {threat} | {label} | " + " | ".join(f"{vals[n]:.4f}" for n in names) + " |")
    return lines + [""] + [f"![{f}]({f})" for f in ablation["figures"]] + [""]
