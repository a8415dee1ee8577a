"""Write docs/robust-models.md from the zoo cards of the adversarially trained models and their checks.

    python scripts/robust_zoo_page.py [--out docs/robust-models.md]

Every number on the page comes from a card in src/advshield/zoo (``recipe.adversarial`` set) or from a
committed check in docs/benchmarks/robust-card-check-<name>.json (benchmarks/robust_cards.py).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from advshield.zoo import list_checkpoints

ROOT = Path(__file__).resolve().parents[1]
GOALS = {"mnist": (0.90, 0.985), "cifar10": (0.40, 0.70)}  # issue 26: (AutoAttack robust, clean) goals
ORDER = ("clean", "apgd-ce", "apgd-t", "fab-t", "square")


def pct(v: float) -> str:
    return f"{100 * v:.1f} %"


def model_section(e) -> list[str]:
    c, name = e.card, e.path.stem
    adv, rt = c["recipe"]["adversarial"], c["robust_test"]
    goal_robust, goal_clean = GOALS.get(e.dataset, (None, None))
    lo, hi = rt["interval_95"]
    lines = [f"## `{name}` ({e.dataset})", "",
             f"`{c['architecture']}` {c.get('arch_kwargs') or ''}, {c['n_params']:,} parameters, weights stored as "
             f"{c.get('storage_dtype', 'float32')}; {adv['method'].upper()} adversarial training at L-inf eps "
             f"{adv['eps']:.4g} ({adv['steps']} steps of {adv.get('step_size') or 2.5 * adv['eps'] / adv['steps']:.4g}, "
             f"eps warm-up {adv['eps_warmup_epochs']:g} epochs), {c['recipe']['optimizer']} lr {c['recipe']['lr']:g} "
             f"{c['recipe']['schedule']}, batch {c['recipe']['batch_size']}, {c['epochs']} epochs; model selection on "
             f"PGD-{adv['val_steps']} robust accuracy of {adv['val_n']} held-out training images.",
             f"Trained on {c.get('gpu') or c['device']} in {c['train_time_s']:.0f} s. {c.get('epochs_note', '')}", "",
             "| | measured | goal (issue 26) |", "|---|---|---|",
             f"| clean test accuracy (10000 images) | {pct(c['test_accuracy'])} | "
             f"{pct(goal_clean) if goal_clean else '-'} |",
             f"| clean accuracy on the {rt['n']} images attacked | {pct(rt['clean_accuracy'])} | |",
             f"| AutoAttack {rt['version']} robust accuracy ({rt['n']} images, batch {rt.get('batch_size', 500)}) | "
             f"{pct(rt['robust_accuracy'])} [{pct(lo)}, {pct(hi)}] | {pct(goal_robust) if goal_robust else '-'} |", "",
             "Robust accuracy after each member of the ensemble (cumulative): "
             + ", ".join(f"{k} {pct(rt['per_member'][k])}" for k in ORDER if k in rt["per_member"]) + ".", ""]
    health = rt.get("health")
    if health:
        lines += [f"Attack self-checks (APGD-CE on {health['n']} images): "
                  + ", ".join(f"{h['name']} {'passed' if h['passed'] else 'FAILED'}" for h in health["checks"]) + ".", ""]
    check = ROOT / "docs" / "benchmarks" / f"robust-card-check-{name}.json"
    if check.exists():
        r = json.loads(check.read_text())
        ta = r["rows"]["torchattacks"]
        same = "advshield" in r["rows"]
        ours = r["rows"]["advshield"]["robust_accuracy"] if same else r["card"]
        gap = abs(ta["robust_accuracy"] - ours) * 100
        lo_ta, hi_ta = ta["interval_95"]
        lines += [f"Independent check (`benchmarks/robust_cards.py`, {r['device']}): torchattacks' AutoAttack standard "
                  f"leaves {pct(ta['robust_accuracy'])} [{pct(lo_ta)}, {pct(hi_ta)}] on the first {r['n']} test "
                  "images; advshield's " + (f"ensemble on the same images {pct(ours)}" if same else
                                            f"card figure ({r['card_n']} images, not the same set) is {pct(ours)}")
                  + f": a gap of {gap:.1f} points, "
                  + ("within the issue's 1.5 points." if gap <= 1.5 else
                     "**the check fails** (more than 1.5 points). Until the two are compared on the same images, "
                     f"the lower figure, {pct(min(ta['robust_accuracy'], ours))}, is this model's robust accuracy."),
                  ""]
    lines += ["Training curve (held-out images):", "", "| epoch | eps | clean | PGD robust | seconds |",
              "|---|---|---|---|---|"]
    lines += [f"| {h['epoch']} | {h['eps']:.4g} | {pct(h['val_accuracy'])} | {pct(h['val_robust_accuracy'])} | "
              f"{h['seconds']:.0f} |" for h in c["history"]]
    if goal_robust and (rt["robust_accuracy"] < goal_robust or c["test_accuracy"] < goal_clean):
        lines += ["", f"**Short of the goal.** The run was cut to {c['epochs']} epochs by the time budget of a lent "
                  "GPU: the whole cosine schedule was compressed into them, and the held-out robust accuracy rose "
                  "over most of the run. What would close the gap: the recipe's full length (`--budget-s` unset: "
                  f"{'40' if e.dataset == 'mnist' else '30'} epochs; Madry et al. train about 100 on MNIST), run by "
                  f"`scripts/train_robust_zoo.py --only {name}` (resumable); on MNIST also a wider network (capacity "
                  "matters at eps 0.3, Madry et al. Sec. 4) or TRADES (`advshield train-target --adversarial "
                  "trades`). Not measured here."]
    return lines + [""]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default=str(ROOT / "docs" / "robust-models.md"))
    args = ap.parse_args()
    robust = [e for e in list_checkpoints() if (e.card.get("recipe") or {}).get("adversarial")]
    lines = ["# Adversarially trained reference models", "",
             "The defense that holds, measured the way every other defense here is: the AutoAttack ensemble "
             "(Croce & Hein 2020) run by advshield's own engine, its self-checks, and an independent AutoAttack. "
             "Generated by `python scripts/robust_zoo_page.py` from the zoo cards; the models are made by "
             "`python scripts/train_robust_zoo.py --data-root DATA --only NAME --epochs E` with the epochs of the "
             "card (`--budget-s S` picked them on the GPU that trained them; `advshield train-target --adversarial "
             "pgd|trades|fgsm-rs ...` underneath); the independent checks by `python benchmarks/robust_cards.py NAME "
             "--n 1000 --data-root DATA --out docs/benchmarks/robust-card-check-NAME.json`.", ""]
    for e in robust:
        lines += model_section(e)
    Path(args.out).write_text("\n".join(lines).rstrip() + "\n")


if __name__ == "__main__":
    main()
