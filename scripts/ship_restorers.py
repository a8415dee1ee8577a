"""Copy trained restorers into the zoo: src/advshield/zoo/<dataset>/<name>.

    python scripts/ship_restorers.py runs/restorer-zoo/cru-net-mnist        # every restorer of a reproduction,
                                                                            # as <defense>-for-<target>
    python scripts/ship_restorers.py runs/ft/guided-a --name cru-net-guided-for-a-net   # one train-defense run

The weights are re-saved through advshield.checkpoint (new card name, same tensors, fresh SHA-256);
the card keeps the full training recipe, so `advshield reproduce --full` recognises the restorer.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from advshield.checkpoint import load_tensors, read_card, save_tensors

ZOO = Path(__file__).resolve().parents[1] / "src" / "advshield" / "zoo"
LIMIT = 5 * 2**20  # the zoo's file limit


def ship(model: Path, name: str | None = None) -> Path:
    card = read_card(model)
    if model.stat().st_size >= LIMIT:
        raise SystemExit(f"{model}: {model.stat().st_size / 2**20:.1f} MiB, over the zoo's 5 MiB: not shipped")
    tensors = load_tensors(model, card)
    dest = ZOO / card["dataset"] / f"{name or card['architecture'] + '-for-' + card['target']}.safetensors"
    card = {k: v for k, v in card.items() if k not in ("weights_file", "sha256")}
    save_tensors(dest, tensors, card)
    print(f"{model} -> {dest} ({dest.stat().st_size / 2**20:.1f} MiB)")
    return dest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="reproduction folders, or train-defense run folders")
    parser.add_argument("--name", help="zoo name (one train-defense run only); default <defense>-for-<target>")
    args = parser.parse_args()
    models = [m for run in args.runs
              for m in ([run / "model.safetensors"] if (run / "model.safetensors").is_file()
                        else sorted(run.glob("defenses/*/model.safetensors")))]
    if args.name and len(models) != 1:
        parser.error(f"--name needs exactly one restorer; found {len(models)}")
    for m in models:
        ship(m, args.name)


if __name__ == "__main__":
    main()
