"""Train the pretrained zoo shipped in src/advshield/zoo with this repository's own code.

    python scripts/train_zoo.py --data-root <folder with mnist/, cifar10/...> [--only a-net,b-net] [--budget-s 300]

A recipe named ``<dataset>/<model>`` trains a registered architecture on another dataset (CMAG's targets).

Each run writes runs/zoo/<dataset>-<model>/ (resumable) and copies the final
checkpoint and card to src/advshield/zoo/<dataset>/<model>.{safetensors,json}. ``--budget-s`` times a few
training steps first and fixes the epochs that fit the budget (at most the recipe's; the card's
``epochs_note`` says so); ``--epochs N`` reruns a shipped card's recipe exactly. The recipes marked GPU were
trained on a GPU with this script (their cards name it), all at once in one call:
``--only model-a,model-b,model-c,alexnet-mnist --budget-s 30`` (model-d: ``--only model-d`` on the CPU),
``--only densenet --budget-s 140`` (then ``scripts/train_preset_restorers.py cru-net-cifar10 --targets
densenet``; the same for mobilenetv2) and ``--only <name> --budget-s 230`` for densenet-201,
densenet-201-conv, densenet-201-prelu and senet-154.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from advshield.device import select_device
from advshield.io import atomic_write_bytes, atomic_write_json
from advshield.training import TrainConfig, train_target
from advshield.training.budget import fit_budget, stamp_card

ZOO = Path(__file__).resolve().parents[1] / "src" / "advshield" / "zoo"

ADAM = dict(optimizer="adam", lr=1e-3, schedule="cosine", batch_size=128, val_fraction=0.1)
SGD = dict(optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=5e-4, schedule="onecycle", label_smoothing=0.1,
           batch_size=128, val_fraction=0.02)
RECIPES: dict[str, dict] = {
    "a-net": dict(dataset="mnist", epochs=8, **ADAM),
    "b-net": dict(dataset="mnist", epochs=10, **ADAM),
    "resnet20": dict(dataset="cifar10", epochs=15, optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=5e-4,
                     schedule="onecycle", label_smoothing=0.1, batch_size=128, val_fraction=0.02),
    "m1": dict(dataset="mnist", epochs=8, **ADAM),
    "m2": dict(dataset="mnist", epochs=15, **ADAM),
    "lenet5": dict(dataset="mnist", epochs=10, **ADAM),
    "dkn-a": dict(dataset="mnist", epochs=10, **ADAM),
    "dkn-b": dict(dataset="mnist", epochs=10, **ADAM),
    # The propagation study's classifiers (perturbation-propagation.txt, Table 3), scaled to train on two CPU cores.
    "vgg19": dict(dataset="cifar10", epochs=10, model_params={"width": 14, "fc": 256}, **dict(ADAM, lr=2e-3)),
    "resnet-v2-50": dict(dataset="cifar10", epochs=6, model_params={"width": 8}, **dict(ADAM, lr=2e-3)),
    "inception-resnet-v2": dict(dataset="cifar10", epochs=6, model_params={"width": 8, "blocks": [3, 5, 3]},
                                **dict(ADAM, lr=2e-3)),
    # DKN's CIFAR-10 targets (defense-kernel-network.txt, Sec. 4.1) at a quarter of the channels, for two CPU cores.
    "vgg19-bn": dict(dataset="cifar10", epochs=12, model_params={"width": 16}, optimizer="sgd", lr=0.05, momentum=0.9,
                     weight_decay=5e-4, schedule="onecycle", label_smoothing=0.1, batch_size=128, val_fraction=0.02),
    "resnet18": dict(dataset="cifar10", epochs=12, model_params={"width": 16}, optimizer="sgd", lr=0.1, momentum=0.9,
                     weight_decay=5e-4, schedule="onecycle", label_smoothing=0.1, batch_size=128, val_fraction=0.02),
    # CMAG's targets (cmag-detection.txt, Sec. 4.1 names the datasets, not the models).
    "fashion-mnist/a-net": dict(dataset="fashion-mnist", epochs=10, **ADAM),
    "gtsrb-cnn": dict(dataset="gtsrb", epochs=8, **ADAM),
    # Defense-GAN's MNIST classifiers A-D (cru-net.txt Table 8 / Table 9) and the DIR transfer target AlexNet.
    "model-a": dict(dataset="mnist", epochs=10, **ADAM),
    "model-b": dict(dataset="mnist", epochs=10, **ADAM),
    "model-c": dict(dataset="mnist", epochs=10, **ADAM),
    "model-d": dict(dataset="mnist", epochs=10, **ADAM),
    "alexnet-mnist": dict(dataset="mnist", epochs=10, **ADAM),
    # GPU: CRU-Net's D-net and M-net (cru-net.txt Sec. 4.1; DIR Table 5). MobileNet-V2 has 2.2 M parameters:
    # float16 storage keeps it under the zoo's 5 MB.
    "densenet": dict(dataset="cifar10", epochs=40, **SGD),
    "mobilenetv2": dict(dataset="cifar10", epochs=40, storage_dtype="float16", **SGD),
    # GPU: the propagation study's DenseNet-201 (and Table 7's two modified heads) at growth 11 and SENet-154 at
    # width 8, float16, so each file stays under 5 MB; depth and block counts are the paper's.
    "densenet-201": dict(dataset="cifar10", epochs=40, model_params={"growth": 11}, storage_dtype="float16",
                         **dict(SGD, batch_size=256)),
    "densenet-201-conv": dict(dataset="cifar10", epochs=40, model_params={"growth": 11}, storage_dtype="float16",
                              **dict(SGD, batch_size=256)),
    "densenet-201-prelu": dict(dataset="cifar10", epochs=40, model_params={"growth": 11}, storage_dtype="float16",
                               **dict(SGD, batch_size=256)),
    "senet-154": dict(dataset="cifar10", epochs=40, model_params={"width": 8}, storage_dtype="float16",
                      **dict(SGD, batch_size=256)),
}


def to_zoo(checkpoint: Path, card: dict, dataset: str, name: str) -> None:
    """Copy a trained classifier and its card to src/advshield/zoo/<dataset>/<name>.{safetensors,json}."""
    dest = ZOO / dataset
    dest.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(dest / f"{name}.safetensors", checkpoint.read_bytes())
    atomic_write_json(dest / f"{name}.json", dict(card, weights_file=f"{name}.safetensors"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", required=True)
    ap.add_argument("--only", default="", help="comma-separated subset of: " + ",".join(RECIPES))
    ap.add_argument("--device", default="auto")
    ap.add_argument("--runs", default="runs/zoo")
    ap.add_argument("--budget-s", type=float, default=None, help="pick the epochs that fit this many seconds")
    ap.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs (a shipped card's, "
                    "to rerun it exactly)")
    ap.add_argument("--smoke", action="store_true",
                    help="300 images, 1 epoch (unless --epochs), nothing copied (tests)")
    args = ap.parse_args()
    names = [n for n in args.only.split(",") if n] or list(RECIPES)
    for name in names:
        recipe = RECIPES[name]
        name = name.rpartition("/")[2]
        if args.smoke:
            recipe = dict(recipe, n_train=300, epochs=1, batch_size=32)
        if args.epochs:
            recipe = dict(recipe, epochs=args.epochs)
        cfg = TrainConfig(model=name, data_root=args.data_root, device=args.device, seed=0, **recipe)
        note = None
        if args.budget_s:
            cfg, note = fit_budget(cfg, args.budget_s)
            print(f"== {name}: {note}", flush=True)
        result = train_target(cfg, Path(args.runs) / f"{recipe['dataset']}-{name}")
        card = stamp_card(result.checkpoint, select_device(args.device), epochs_note=note)
        if not args.smoke:
            to_zoo(result.checkpoint, card, recipe["dataset"], name)
        print(f"== zoo {recipe['dataset']}/{name}: test accuracy {result.card['test_accuracy']:.4f}", flush=True)


if __name__ == "__main__":
    main()
