"""Train the adversarially trained zoo models (issue 26) with this repository's own code.

    python scripts/train_robust_zoo.py --data-root <folder with mnist/, cifar10/> --only a-net-robust \
        [--budget-s 210] [--runs runs/zoo] [--zoo]

Each recipe is a ``TrainConfig`` (its adversarial part: method, eps, steps, step size, warm-up, held-out PGD
model selection, the AutoAttack evaluation the card carries). ``--budget-s`` picks the number of epochs that
fit a wall-clock budget on this machine: it times a few adversarial training steps first (after a warm-up)
and fixes ``epochs`` before training starts, so the card's recipe states exactly what ran (and the schedule
is the recipe's, not cut short). Without it the recipe's ``epochs`` are used. ``--zoo`` copies the result to
src/advshield/zoo/<dataset>/<name>.{safetensors,json}.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from train_zoo import to_zoo  # scripts/, beside this file

from advshield.device import select_device
from advshield.training import TrainConfig, finish_run, train_target
from advshield.training.budget import fit_budget, stamp_card

MNIST_PGD = dict(method="pgd", eps=0.3, steps=40, step_size=0.01, eps_warmup_epochs=2.0, val_n=1000, val_steps=40,
                 eval_n=10000, eval_batch_size=2500)  # Madry et al. 2018, MNIST: 40 steps of 0.01 at eps 0.3
CIFAR_PGD = dict(method="pgd", eps=8 / 255, steps=7, step_size=2 / 255, eps_warmup_epochs=1.0, val_n=1000,
                 val_steps=20, eval_n=2000)  # Madry et al. 2018, CIFAR-10: 7 steps of 2/255 at eps 8/255
RECIPES: dict[str, dict] = {
    "a-net-robust": dict(model="a-net", dataset="mnist", epochs=40, optimizer="adam", lr=1e-3, schedule="cosine",
                         batch_size=128, val_fraction=0.05, adversarial=MNIST_PGD),
    # ResNet-18 at 24 base channels (1.6 M parameters, float16 storage: 3.2 MB, under the zoo's 5 MB)
    "resnet18-robust": dict(model="resnet18", model_params={"width": 24}, dataset="cifar10", epochs=30,
                            optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=5e-4, schedule="cosine",
                            warmup_epochs=1.0, batch_size=128, val_fraction=0.02, storage_dtype="float16",
                            adversarial=CIFAR_PGD),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", required=True)
    ap.add_argument("--only", default="", help="comma-separated subset of: " + ",".join(RECIPES))
    ap.add_argument("--device", default="auto")
    ap.add_argument("--runs", default="runs/zoo")
    ap.add_argument("--budget-s", type=float, default=None, help="pick the epochs that fit this many seconds")
    ap.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs (e.g. the shipped "
                    "card's, to rerun it)")
    ap.add_argument("--zoo", action="store_true", help="copy the result into src/advshield/zoo")
    ap.add_argument("--smoke", action="store_true", help="a tiny run of each recipe (tests of this script)")
    ap.add_argument("--finish", default=None, help="only evaluate a run folder whose training ended (its "
                    "last.json and best checkpoint), with the epochs its last.json states")
    ap.add_argument("--note", default=None, help="with --finish: the epochs note the training run printed")
    ap.add_argument("--eval-batch-size", type=int, default=None, help="batch of the card's AutoAttack run")
    args = ap.parse_args()
    for name in [n for n in args.only.split(",") if n] or list(RECIPES):
        recipe = dict(RECIPES[name])
        if args.smoke:
            recipe.update(n_train=300, epochs=1, adversarial=dict(recipe["adversarial"], val_n=20, eval_n=20))
        if args.eval_batch_size:
            recipe["adversarial"] = dict(recipe["adversarial"], eval_batch_size=args.eval_batch_size)
        if args.epochs:
            recipe["epochs"] = args.epochs
        cfg = TrainConfig(data_root=args.data_root, device=args.device, seed=0, **recipe)
        note = None
        if args.finish:
            last = json.loads((Path(args.finish) / "last.json").read_text())
            cfg = cfg.model_copy(update={"epochs": last["recipe"]["epochs"]})
            note = args.note
            result = finish_run(cfg, args.finish)
        elif args.budget_s:
            cfg, note = fit_budget(cfg, args.budget_s)
            print(f"== {name}: {note}", flush=True)
        if not args.finish:
            result = train_target(cfg, Path(args.runs) / f"{cfg.dataset.value}-{name}")
        card = stamp_card(result.checkpoint, select_device(args.device), name=name, epochs_note=note)
        if args.zoo:
            to_zoo(result.checkpoint, card, cfg.dataset.value, name)
        print(f"== {name}: clean {card['test_accuracy']:.4f}, AutoAttack {card['robust_test']['robust_accuracy']:.4f} "
              f"on {card['robust_test']['n']}", flush=True)


if __name__ == "__main__":
    main()
