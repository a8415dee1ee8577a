"""The headline table of README.md and docs/index.md, generated from the committed restoration reproductions
(their reproduction.json).

    python scripts/headline_table.py            # print the table
    python scripts/headline_table.py --write    # replace the table between the headline markers of both pages
    python scripts/headline_table.py --check    # exit 1 when a page's table is not the generated one (a test runs it)

One row per defended evaluation that has an adaptive run (the restorer trained for the classifier it guards):
clean accuracy, clean accuracy through the defense, PGD obliviously (on the report's whole image set) with the
recovery over the images correct when clean, the adaptive worst case with its 95 % interval (the per-image worst
case over every adaptive attack at one threat budget; a report that predates it gives its lowest single bounded
adaptive attack, said so), the
report's red flags, and the papers' success rate (restored / clean accuracy), labelled as theirs. A restored
accuracy above the clean accuracy by more than one image is label leaking: flagged, never shown as a result.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from advshield.evaluation.verdict import above_clean, budget_of
from advshield.report.verdict import budget_label
from advshield.metrics.interval import wilson_interval

ROOT = Path(__file__).resolve().parents[1]
REPORTS = ROOT / "docs" / "reproductions"
PAGES = {ROOT / "README.md": "docs/reproductions/", ROOT / "docs" / "index.md": "reproductions/"}  # page -> link base
PREDATES = "†"  # the README explains it: the report predates the per-image worst case and the health checks
START, END = "<!-- headline table: python scripts/headline_table.py --write -->", "<!-- end of headline table -->"

#: report folder -> its name in the table (the order of the table)
TITLES = {"cru-net-mnist-full": "CRU-Net, MNIST", "cru-net-mnist-guided-full": "CRU-Net guided, MNIST",
          "cru-net-cifar10-full": "CRU-Net, CIFAR-10", "cru-net-cifar10-guided-full": "CRU-Net guided, CIFAR-10",
          "dir-mnist-full": "DIR, MNIST", "dir-cifar10-full": "DIR, CIFAR-10", "dkn-mnist-full": "DKN, MNIST",
          "dkn-cifar10-full": "DKN, CIFAR-10"}


def pct(v: float) -> str:
    return f"{100 * v:.1f} %"


def leaking(row: dict) -> bool:
    return above_clean(row["restored_accuracy"], row["clean_accuracy"], row["n"])


def _pgd(card: dict) -> dict | None:
    return next((r for r in card["rows"] if r["attack"] == "pgd" and r["threat"] == "white-box"), None)


def adaptive_cell(card: dict) -> str:
    block = (card.get("verdict") or {}).get("adaptive_worst_case")
    if block and block.get("budget"):
        lo, hi = block["ci95"]
        checks = block.get("self_checks")
        return (f"{pct(block['accuracy'])} [{pct(lo)}, {pct(hi)}] ({block['n']}; {budget_label(block['budget'])}: "
                f"{', '.join(block['attacks'])}" + (f"; the self-checks' runs on {checks['images']} broke "
                                                     f"{checks['broken']} more" if checks else "") + ")")
    # A report from before the worst case at one budget: its lowest single bounded adaptive attack (an upper bound)
    rows = [r for r in card["rows"] if r["threat"] == "adaptive" and budget_of(r) is not None]
    if not rows:
        return "no bounded adaptive attack (unbounded ones have no threat budget)"
    r = min(rows, key=lambda r: r["restored_accuracy"])
    lo, hi = wilson_interval(round(r["restored_accuracy"] * r["n"]), r["n"])
    return (f"{pct(r['restored_accuracy'])} [{pct(lo)}, {pct(hi)}] ({r['n']}; lowest single: {r['attack']} of "
            f"{', '.join(sorted({x['attack'] for x in rows}))}) {PREDATES}")


def flags_cell(evaluation: dict) -> str:
    """The red flags of the row's own defense; those of the preprocessing baselines evaluated beside it (DKN's
    Table 1) are counted apart, since the row's numbers are not theirs."""
    n = sum(len(evaluation[k].get("red_flags") or []) for k in ("oblivious", "adaptive"))
    n_base = sum(len(c.get("red_flags") or []) for b in (evaluation.get("baselines") or {}).values()
                 for c in (b.get("oblivious"), b.get("adaptive")) if c)
    beside = f"; {n_base} more on the baselines beside it" if n_base else ""
    if "health" not in evaluation["adaptive"]:  # the health checks did not run; the row checks may have
        return (f"**{n}** (see the report){beside}, health checks not run {PREDATES}" if n + n_base
                else f"not run {PREDATES}")
    return f"**{n}** (see the report){beside}" if n else f"none fired{beside}"


def rows(base: str = "docs/reproductions/") -> list[str]:
    out = []
    for folder, title in TITLES.items():
        summary = json.loads((REPORTS / folder / "reproduction.json").read_text())
        for e in summary["evaluations"]:
            ev = e["evaluation"]
            if not e.get("adaptive") or ev["target"] != ev["defense_of"]:
                continue
            pgd = _pgd(e["oblivious"])
            oblivious = recovery = success = "-"
            if pgd is not None and leaking(pgd):
                oblivious = f"red flag: label leaking ({pct(pgd['restored_accuracy'])} above clean, {pgd['n']})"
                recovery = success = "red flag"
            elif pgd is not None:
                lo, hi = wilson_interval(round(pgd["restored_accuracy"] * pgd["n"]), pgd["n"])
                oblivious = f"{pct(pgd['restored_accuracy'])} [{pct(lo)}, {pct(hi)}] ({pgd['n']})"
                recovery, success = pct(pgd["recovery_rate"]), f"{pgd['success_rate']:.3f}"
            clean = pgd or e["oblivious"]["rows"][0]
            out.append(f"| [{title}]({base}{folder}/report.md) | {ev['target']} | "
                       f"{pct(clean['clean_accuracy'])} | {pct(clean['defended_clean_accuracy'])} | {oblivious} | "
                       f"{recovery} | {adaptive_cell(e['adaptive'])} | {flags_cell(e)} | {success} | "
                       f"`{summary['command']}` |")
    return out


def table(base: str = "docs/reproductions/") -> str:
    head = ("| report | target | clean | clean through defense | PGD oblivious [95 % CI] (images) | recovery, PGD "
            "oblivious | "
            "adaptive worst case [95 % CI] (images; attacks) | red flags | success rate (the papers' metric), PGD "
            "oblivious | regenerate |")
    return "\n".join([head, "|" + "---|" * 10] + rows(base))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--write", action="store_true", help="replace the table in README.md and docs/index.md")
    ap.add_argument("--check", action="store_true", help="exit 1 when a page's table differs")
    args = ap.parse_args(argv)
    if not (args.check or args.write):
        print(table())
        return 0
    status = 0
    for page, base in PAGES.items():
        text = page.read_text()
        if START not in text or END not in text:
            print(f"error: {page.name} has no headline table markers", file=sys.stderr)
            return 2
        before, rest = text.split(START, 1)
        current, after = rest.split(END, 1)
        generated = "\n" + table(base) + "\n"
        if args.write:
            page.write_text(before + START + generated + END + after)
        elif current != generated:
            print(f"error: the headline table of {page.name} is stale: run python scripts/headline_table.py --write",
                  file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
