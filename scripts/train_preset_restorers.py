"""Train a restoration preset's restorers with its full recipe and ship them to the zoo (the GPU path).

    python scripts/train_preset_restorers.py cru-net-cifar10 --data-root <data> [--targets densenet] [--runs DIR]

Each restorer is trained with exactly the recipe ``advshield reproduce <preset> --full`` would train (same
``DefenseTrainConfig``), so that command then finds it in the zoo and evaluates it instead of training
again; it ships as ``<defense>-for-<target>``, its card naming the device. Unlike
scripts/train_restorer_zoo.sh it runs no evaluation: the reproduction can then run anywhere.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ship_restorers import ship  # noqa: E402

from advshield.experiment import RunContext  # noqa: E402
from advshield.reproduce import load_preset  # noqa: E402
from advshield.reproduce.restoration.recipes import training_config  # noqa: E402
from advshield.training.budget import stamp_card  # noqa: E402
from advshield.training.defense_trainer import train_defense  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("preset")
    ap.add_argument("--data-root", required=True)
    ap.add_argument("--targets", default="", help="comma-separated subset of the preset's trained targets")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--runs", default="runs/restorer-zoo")
    ap.add_argument("--no-ship", action="store_true", help="train only (a restorer over the zoo's 5 MB limit)")
    ap.add_argument("--smoke", action="store_true", help="70 pairs, 1 epoch, nothing shipped (tests of this script)")
    args = ap.parse_args()
    preset = load_preset(args.preset)
    targets = [t for t in args.targets.split(",") if t] or preset.trained_targets
    unknown = sorted(set(targets) - set(preset.trained_targets))
    if unknown:
        ap.error(f"{preset.name} trains restorers for {preset.trained_targets}, not {unknown}")
    out = Path(args.runs) / preset.name
    ctx = RunContext.create(args.device, store=out / "adversarial", data_root=args.data_root, seed=0)
    for target in targets:
        cfg = training_config(preset, target, preset.full, ctx)
        if args.smoke:
            cfg = cfg.model_copy(update={"n_train": 70, "n_val": 14, "epochs": 1})
        result = train_defense(cfg, out / "defenses" / target, store=ctx.store, log=ctx.log)
        print(f"== {preset.defense} for {target}: validation restored accuracy "
              f"{result.card['val']['restored_accuracy']:.3f}", flush=True)
        stamp_card(result.checkpoint, ctx.device)
        if not (args.smoke or args.no_ship):
            ship(result.checkpoint)


if __name__ == "__main__":
    main()
