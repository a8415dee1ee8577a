"""Train the pretrained zoo shipped in src/advshield/zoo with this repository's own code.

    python scripts/train_zoo.py --data-root <folder with mnist/, cifar10/...> [--only a-net,b-net]

A recipe named ``<dataset>/<model>`` trains a registered architecture on another dataset (CMAG's targets).

Each run writes runs/zoo/<dataset>-<model>/ (resumable) and copies the final
checkpoint and card to src/advshield/zoo/<dataset>/<model>.{safetensors,json}.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from advshield.training import TrainConfig, train_target

ADAM = dict(optimizer="adam", lr=1e-3, schedule="cosine", batch_size=128, val_fraction=0.1)
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
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", required=True)
    ap.add_argument("--only", default="", help="comma-separated subset of: " + ",".join(RECIPES))
    ap.add_argument("--device", default="auto")
    ap.add_argument("--runs", default="runs/zoo")
    args = ap.parse_args()
    zoo = Path(__file__).resolve().parents[1] / "src" / "advshield" / "zoo"
    names = [n for n in args.only.split(",") if n] or list(RECIPES)
    for name in names:
        recipe = RECIPES[name]
        name = name.rpartition("/")[2]
        cfg = TrainConfig(model=name, data_root=args.data_root, device=args.device, seed=0, **recipe)
        result = train_target(cfg, Path(args.runs) / f"{recipe['dataset']}-{name}")
        dest = zoo / recipe["dataset"]
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(result.checkpoint, dest / f"{name}.safetensors")
        card = json.loads(result.checkpoint.with_suffix(".json").read_text())
        (dest / f"{name}.json").write_text(json.dumps(dict(card, weights_file=f"{name}.safetensors"), indent=2,
                                                      sort_keys=True) + "\n")
        print(f"== zoo {recipe['dataset']}/{name}: test accuracy {result.card['test_accuracy']:.4f}", flush=True)


if __name__ == "__main__":
    main()
