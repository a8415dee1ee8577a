"""Write the golden cards that tests/test_golden_cards.py compares the current code against.

    python scripts/make_golden_cards.py OUT_FOLDER            # tiny presets of each kind
    python scripts/make_golden_cards.py OUT_FOLDER --builtin  # every built-in MNIST preset on a fixed subset
    python scripts/make_golden_cards.py OUT_FOLDER --builtin dir-mnist  # only the named built-in presets (folder first)

Run it with the code whose numbers are the reference (e.g. a checkout of an earlier commit first on
PYTHONPATH); it keeps only the numbers of each reproduction kind (restoration rows, detection metrics,
propagation distances), so the cards hold no host paths or timings.
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from golden_presets import BUILTIN, DETECTION, PROPAGATION, RESTORATION  # noqa: E402

NUMERIC = ("n", "clean_accuracy", "defended_clean_accuracy", "adv_accuracy", "restored_accuracy", "recovery_rate",
           "ssim_restored", "psnr_restored", "mean_l2", "mean_linf")


def _cli(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "advshield", *args], check=True, stdout=subprocess.DEVNULL)


def restoration_numbers(summary: dict) -> dict:
    out = {}
    for e in summary["evaluations"]:
        folder = e["folder"]
        for part, card in (("oblivious", e["oblivious"]), ("adaptive", e["adaptive"])):
            for r in (card or {}).get("rows", []):
                out[f"{folder}/{part}/{r['threat']}/{r['attack']}"] = {k: r[k] for k in NUMERIC}
        for name, b in e["baselines"].items():
            for r in b["oblivious"]["rows"]:
                out[f"{folder}/{name}/{r['threat']}/{r['attack']}"] = {k: r[k] for k in NUMERIC}
    return out


def detection_numbers(summary: dict) -> dict:
    return {f"{kind}/{label}": {k: v for k, v in res["calibrated"].items()}
            for kind, d in summary["detectors"].items() for label, res in d["attacks"].items()}


def propagation_numbers(card: dict) -> dict:
    return {"ne_d": card["ne_d"], "cos_d": card["cos_d"], "accuracy": card["accuracy"],
            "reference_accuracy": {k: v["reference_accuracy"] for k, v in card["settings"].items()}}


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name, preset, numbers in (("restoration", RESTORATION, restoration_numbers),
                                      ("detection", DETECTION, detection_numbers)):
            (tmp / f"{name}.yaml").write_text(yaml.safe_dump(preset, sort_keys=False))
            _cli("reproduce", str(tmp / f"{name}.yaml"), "--out", str(tmp / name), "--device", "cpu")
            summary = json.loads((tmp / name / "reproduction.json").read_text())
            (out / f"{name}.json").write_text(json.dumps(numbers(summary), indent=1, sort_keys=True) + "\n")
        _cli("analyze", "propagation", *PROPAGATION, "--out", str(tmp / "prop"), "--store", str(tmp / "store"),
             "--device", "cpu")
        card = json.loads((tmp / "prop" / "propagation.json").read_text())
        (out / "propagation.json").write_text(json.dumps(propagation_numbers(card), indent=1, sort_keys=True) + "\n")


def main_builtin(out: Path, names: list[str] | None = None) -> None:
    """``builtin-<preset>.json`` for each preset of ``BUILTIN`` (or ``names``): its fast variant on a subset."""
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name in names or list(BUILTIN):
            (tmp / f"{name}.yaml").write_text(yaml.safe_dump({"extends": name, "fast": BUILTIN[name]}))
            _cli("reproduce", str(tmp / f"{name}.yaml"), "--out", str(tmp / name), "--device", "cpu")
            summary = json.loads((tmp / name / "reproduction.json").read_text())
            numbers = detection_numbers if "detectors" in summary else restoration_numbers
            (out / f"builtin-{name}.json").write_text(json.dumps(numbers(summary), indent=1, sort_keys=True) + "\n")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """``OUT_FOLDER [--builtin [NAME ...]]``; a missing folder or an unknown preset name fails in one line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, nargs="?", help="folder the cards are written to (first)")
    parser.add_argument("--builtin", nargs="*", metavar="NAME", default=None,
                        help=f"built-in presets instead of the tiny ones (all when no name is given): {', '.join(BUILTIN)}")
    args = parser.parse_args(argv)
    if args.out is None:  # "--builtin NAME OUT" lets --builtin swallow the folder
        sys.exit("error: give the output folder first: make_golden_cards.py OUT_FOLDER [--builtin [NAME ...]]")
    unknown = [n for n in args.builtin or [] if n not in BUILTIN]
    if unknown:
        sys.exit(f"error: unknown built-in preset(s) {', '.join(unknown)}; choose from {', '.join(BUILTIN)}")
    return args


if __name__ == "__main__":
    args = parse_args()
    if args.builtin is None:
        main(args.out)
    else:
        main_builtin(args.out, args.builtin or None)
