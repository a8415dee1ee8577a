"""Write docs/robust-models.md from the zoo cards of the adversarially trained models and their checks.

    python scripts/robust_zoo_page.py [--out docs/robust-models.md]

Every measured number on the page comes from a card in src/advshield/zoo (``recipe.adversarial`` set) or from
a committed check in docs/benchmarks/robust-card-check-<name>.json (benchmarks/robust_cards.py); the
shortfalls and the time estimates are arithmetic on them. The only other numbers are the reference recipes'
lengths (``REFERENCE``, cited), offered as what would close a gap: an estimate, labelled so on the page.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from advshield.zoo import list_checkpoints

ROOT = Path(__file__).resolve().parents[1]
GOALS = {"mnist": (0.90, 0.985), "cifar10": (0.40, 0.70)}  # issue 26: (AutoAttack robust, clean) goals
ORDER = ("clean", "apgd-ce", "apgd-t", "fab-t", "square")
# The reference recipes (Madry et al. 2018, their released training configurations), not measured here: the
# length of a run known to reach such goals, quoted as what would close a gap. (epochs, text)
REFERENCE = {
    "mnist": (83, "Madry et al. (2018) train their MNIST model with PGD-40 (step 0.01, eps 0.3) for 100,000 steps "
                  "of batch 50, about 83 epochs of MNIST's 60,000 training images (MadryLab/mnist_challenge, "
                  "config.json)"),
    "cifar10": (205, "Madry et al. (2018) train their CIFAR-10 model, a wide ResNet, with PGD at eps 8/255 for "
                     "80,000 steps of batch 128, about 205 epochs of the 50,000 training images "
                     "(MadryLab/cifar10_challenge, config.json)"),
}
# A card's epochs note when --budget-s picked the epochs (scripts/train_robust_zoo.py)
BUDGET_NOTE = re.compile(r"the most that fit (?P<budget>[0-9.]+) s at [0-9.]+ s per epoch .*at most (?P<full>[0-9]+)")


def pct(v: float) -> str:
    return f"{100 * v:.1f} %"


def points(goal: float, measured: float) -> str:
    """The shortfall of ``measured`` against ``goal`` in percentage points (``met`` when there is none)."""
    gap = 100 * (goal - measured)
    return f"{gap:.1f} points short" if gap > 0 else "met"


def checked_figure(name: str) -> dict | None:
    """The committed independent check of ``name`` (torchattacks' AutoAttack), when there is one: its figure,
    advshield's, whether they agree within 1.5 points, and the lower of the two."""
    path = ROOT / "docs" / "benchmarks" / f"robust-card-check-{name}.json"
    if not path.exists():
        return None
    r = json.loads(path.read_text())
    ta = r["rows"]["torchattacks"]
    same = "advshield" in r["rows"]
    ours = r["rows"]["advshield"]["robust_accuracy"] if same else r["card"]
    gap = abs(ta["robust_accuracy"] - ours) * 100
    return {"report": r, "torchattacks": ta, "same": same, "ours": ours, "gap": gap, "agree": gap <= 1.5,
            "lower": min(ta["robust_accuracy"], ours)}


def curve(c: dict) -> list[str]:
    """The training history of card ``c``, one row per epoch, the selected epoch marked."""
    adv = c["recipe"]["adversarial"]
    lines = ["Training curve (the card's `history`). Train loss and accuracy are on each epoch's adversarial "
             f"training batches; clean and PGD-{adv['val_steps']} robust accuracy on the {adv['val_n']} held-out "
             f"training images that select the model (epoch {c['best_epoch']}, marked *).", "",
             "| epoch | eps | train loss | train accuracy (adversarial) | held-out clean | held-out PGD robust | seconds |",
             "|---|---|---|---|---|---|---|"]
    for h in c["history"]:
        mark = " *" if h["epoch"] == c.get("best_epoch") else ""
        lines.append(f"| {h['epoch']}{mark} | {h['eps']:.4g} | {h['loss']:.3f} | {pct(h['train_accuracy'])} | "
                     f"{pct(h['val_accuracy'])} | {pct(h['val_robust_accuracy'])} | {h['seconds']:.0f} |")
    return lines


def closing(e, name: str, check: dict | None) -> list[str]:
    """The shortfall against the goals in points and what would close it: an estimate from the card's own
    numbers and the reference recipes, labelled as one."""
    c, rt = e.card, e.card["robust_test"]
    goal_robust, goal_clean = GOALS[e.dataset]
    short = [f"clean test accuracy {pct(c['test_accuracy'])} against {pct(goal_clean)}: "
             f"{points(goal_clean, c['test_accuracy'])}",
             f"AutoAttack robust accuracy {pct(rt['robust_accuracy'])} against {pct(goal_robust)}: "
             f"{points(goal_robust, rt['robust_accuracy'])}"]
    lower = check and not check["agree"] and check["lower"] < rt["robust_accuracy"]
    if lower:
        short.append(f"read at the lower figure of the failed independent check, {pct(check['lower'])}: "
                     f"{points(goal_robust, check['lower'])}")
    if rt["robust_accuracy"] >= goal_robust and c["test_accuracy"] >= goal_clean and not lower:
        return ["**Goals reached:** " + "; ".join(short) + "."]
    hist = c["history"]
    rob = [h["val_robust_accuracy"] for h in hist]
    best = max(range(len(hist)), key=lambda i: rob[i])
    tail = min(3, len(hist) - 1)
    eps = c["recipe"]["adversarial"]["eps"]
    full_eps = next((h for h in hist if abs(h["eps"] - eps) <= 1e-9 * eps), hist[0])  # after the eps warm-up
    lines = ["**Short of the goal:** " + "; ".join(short) + ".", "",
             f"The curve: held-out PGD robust accuracy {pct(rob[0])} after epoch {hist[0]['epoch']}, {pct(rob[best])} "
             f"at its best (epoch {hist[best]['epoch']} of {len(hist)})"
             + (f", {100 * (rob[-1] - rob[-1 - tail]):+.1f} points over the last {tail} epochs" if tail > 0 else "")
             + f"; train loss at the full eps {full_eps['loss']:.3f} in epoch {full_eps['epoch']}, "
             f"{hist[-1]['loss']:.3f} in the last. The {c['recipe']['schedule']} schedule was compressed into the "
             f"{c['epochs']} epochs the budget allowed.", "",
             "What would close the gap, **an estimate, not measured**:", ""]
    per_epoch = sum(h["seconds"] for h in hist) / len(hist)
    where = c.get("gpu") or c["device"]
    m = BUDGET_NOTE.search(c.get("epochs_note") or "")
    if m:
        full = int(m["full"])
        lines.append(f"* the recipe's full length: this run had {c['epochs']} epochs, the most that fit a "
                     f"{float(m['budget']):.0f} s budget on a lent GPU; the recipe asks for {full} "
                     f"(`python scripts/train_robust_zoo.py --only {name}` without `--budget-s`; resumable), about "
                     f"{full * per_epoch / 60:.0f} min at this run's {per_epoch:.1f} s per epoch on {where};")
    if e.dataset in REFERENCE:
        epochs, text = REFERENCE[e.dataset]
        lines.append(f"* the reference recipe's length: {text}; at this run's speed about "
                     f"{epochs * per_epoch / 60:.0f} min on {where};")
    if e.dataset == "mnist":
        lines.append("* capacity and objective: Madry et al. (Sec. 4) find that robustness at eps 0.3 needs more "
                     "capacity than a standard network; TRADES (`advshield train-target --adversarial trades`) "
                     "trades clean for robust accuracy explicitly.")
    elif c.get("arch_kwargs"):
        lines.append(f"* capacity: this `{c['architecture']}` is built with {c['arch_kwargs']}; the reference "
                     "model is a wide ResNet.")
    lines += ["", "Whether these reach the goals is not known until they are run: the page states how far the card "
              "is from them and what the longer runs would cost, nothing more."]
    return lines


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
             f"Trained on {c.get('gpu') or c['device']} in {c['train_time_s']:.0f} s."
             + (f" {c['epochs_note'].rstrip('.')}." if c.get("epochs_note") else ""), "",
             "| | measured | goal (issue 26) | shortfall |", "|---|---|---|---|",
             f"| clean test accuracy ({c['test_set']['n']} images) | {pct(c['test_accuracy'])} | "
             f"{pct(goal_clean) if goal_clean else '-'} | "
             f"{points(goal_clean, c['test_accuracy']) if goal_clean else '-'} |",
             f"| clean accuracy on the {rt['n']} images attacked | {pct(rt['clean_accuracy'])} | | |",
             f"| AutoAttack {rt['version']} robust accuracy ({rt['n']} images, batch {rt.get('batch_size', 500)}) | "
             f"{pct(rt['robust_accuracy'])} [{pct(lo)}, {pct(hi)}] | {pct(goal_robust) if goal_robust else '-'} | "
             f"{points(goal_robust, rt['robust_accuracy']) if goal_robust else '-'} |", "",
             "Robust accuracy after each member of the ensemble (cumulative): "
             + ", ".join(f"{k} {pct(rt['per_member'][k])}" for k in ORDER if k in rt["per_member"]) + ".", ""]
    health = rt.get("health")
    if health:
        lines += [f"Attack self-checks (APGD-CE on {health['n']} images): "
                  + ", ".join(f"{h['name']} {'passed' if h['passed'] else 'FAILED'}" for h in health["checks"]) + ".", ""]
    check = checked_figure(name)
    if check:
        r, ta, ours = check["report"], check["torchattacks"], check["ours"]
        lo_ta, hi_ta = ta["interval_95"]
        lines += [f"Independent check (`benchmarks/robust_cards.py`, {r['device']}): torchattacks' AutoAttack standard "
                  f"leaves {pct(ta['robust_accuracy'])} [{pct(lo_ta)}, {pct(hi_ta)}] on the first {r['n']} test "
                  "images; advshield's " + (f"ensemble on the same images {pct(ours)}" if check["same"] else
                                            f"card figure ({r['card_n']} images, not the same set) is {pct(ours)}")
                  + (f" (the card's {pct(r['card'])} is measured on {r['card_n']} images)"
                     if check["same"] and r["card_n"] != r["n"] else "")
                  + f": a gap of {check['gap']:.1f} points, "
                  + ("within the issue's 1.5 points." if check["agree"] else
                     "**the check fails** (more than 1.5 points). Until the two are compared on the same images, "
                     f"the lower figure, {pct(check['lower'])}, is this model's robust accuracy."),
                  ""]
    lines += curve(c)
    if goal_robust:
        lines += [""] + closing(e, name, check)
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
