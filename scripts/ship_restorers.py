"""Copy the restorers of a finished reproduction into the zoo: src/advshield/zoo/<dataset>/<defense>-for-<target>.

    python scripts/ship_restorers.py runs/restorer-zoo/cru-net-mnist

The weights are re-saved through advshield.checkpoint (new card name, same tensors, fresh SHA-256);
the card keeps the full training recipe, so `advshield reproduce --full` recognises the restorer.
"""

from __future__ import annotations

import sys
from pathlib import Path

from advshield.checkpoint import load_tensors, read_card, save_tensors

ZOO = Path(__file__).resolve().parents[1] / "src" / "advshield" / "zoo"


def main(run: Path) -> None:
    for model in sorted(run.glob("defenses/*/model.safetensors")):
        card = read_card(model)
        tensors = load_tensors(model, card)
        dest = ZOO / card["dataset"] / f"{card['architecture']}-for-{card['target']}.safetensors"
        card = {k: v for k, v in card.items() if k not in ("weights_file", "sha256")}
        save_tensors(dest, tensors, card)
        print(f"{model} -> {dest} ({dest.stat().st_size / 2**20:.1f} MiB)")


if __name__ == "__main__":
    for arg in sys.argv[1:] or sys.exit(__doc__):
        main(Path(arg))
