"""CMAG Figs. 7-8 alone, in a few CPU minutes, without the detectors of ``advshield reproduce cmag-mnist --full``.

    python scripts/cmag_gradient_figures.py --data-root <data> --out runs/cmag-figs-7-8

Trains the SSIM- and the l2-loss autoencoder on the preset's ``gradients`` budget (``full`` unless ``--fast``)
exactly as the reproduction does, and writes ``figures/fig7-*.png``, ``figures/fig8-*.png``, ``gradients.json``
(the card section: recipe, shares with their intervals, training losses) and ``report.md`` (the report's
"Figs. 7-8" section).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from advshield.experiment import RunContext
from advshield.io import atomic_write_bytes, atomic_write_json
from advshield.reproduce import load_preset
from advshield.reproduce.detection.gradients import gradient_section, preset_gradients


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="cmag-mnist", help="a detection preset whose budget has 'gradients'")
    ap.add_argument("--fast", action="store_true", help="the preset's fast budget instead of the full one")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--out", type=Path, default=Path("runs/cmag-figs-7-8"))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    preset = load_preset(args.preset)
    budget = (preset.fast if args.fast else preset.full).gradients
    if budget is None:
        raise SystemExit(f"error: {args.preset}'s {'fast' if args.fast else 'full'} budget has no 'gradients'")
    ctx = RunContext.create(args.device, data_root=args.data_root, seed=args.seed)
    t0 = time.perf_counter()
    card = preset_gradients(budget, preset.dataset.value, args.out, ctx)
    command = (f"python scripts/cmag_gradient_figures.py --preset {args.preset}{' --fast' if args.fast else ''} "
               f"--data-root <data> --out {args.out} --device {args.device} --seed {args.seed}")
    atomic_write_json(args.out / "gradients.json", {"command": command, "preset": preset.name, **card})
    lines = [f"# {preset.title}: Figs. 7-8 only", "", f"Written by `{command}`.", "", *gradient_section(card)]
    atomic_write_bytes(args.out / "report.md", "\n".join(lines).encode())
    print(f"done in {time.perf_counter() - t0:.0f} s: {args.out / 'report.md'}")


if __name__ == "__main__":
    main()
