"""The scorecard as a Markdown table, a CSV and the report package's self-contained HTML page (the JSON holds
everything)."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

from markupsafe import Markup

from advshield.io import atomic_write_bytes
from advshield.metrics import wilson_interval
from advshield.report.html import cell_of, render_page
from advshield.zoo import zoo_root

# (key in a row, heading): the columns every output shares, in order
COLUMNS = (("name", "defense"), ("kind", "kind"), ("classifier", "classifier"), ("n", "images"),
           ("clean_accuracy", "clean"), ("defended_clean_accuracy", "clean through defense"),
           ("oblivious_robust_accuracy", "oblivious"), ("oblivious_recovery", "oblivious recovery"),
           ("transfer_robust_accuracy", "transfer"), ("worst_case_robust_accuracy", "adaptive worst case"),
           ("worst_case_ci95", "95 % interval"), ("worst_case_recovery", "worst-case recovery"),
           ("red_flags", "red flags"), ("ms_per_image", "ms / image"), ("card", "card"))
_PERCENT = {"clean_accuracy", "defended_clean_accuracy", "oblivious_robust_accuracy", "oblivious_recovery",
            "transfer_robust_accuracy", "worst_case_robust_accuracy", "worst_case_recovery"}
#: robust accuracies whose cell carries its 95 % Wilson interval (the worst case has its own column)
_WITH_INTERVAL = {"oblivious_robust_accuracy", "transfer_robust_accuracy"}


def card_target(row: dict, out: Path) -> Path:
    """The file a row's card link points to: its zoo card, its fitted detector's card, or the row's own JSON."""
    if row.get("card"):
        return zoo_root() / row["card"]
    if row.get("detector_card"):
        return out / row["detector_card"]
    return out / "rows" / row["file"] if row.get("file") else out / "scorecard.json"


def cell(key: str, row: dict) -> str:
    v = row.get(key)
    if key == "red_flags":
        if not row.get("measured", True):
            return "-"
        return "none" if not v else f"{len(v)}: " + ", ".join(dict.fromkeys(f["check"] for f in v))
    if v is None:
        return "-"
    if key in _WITH_INTERVAL and row.get("n"):
        lo, hi = wilson_interval(round(v * row["n"]), row["n"])
        return f"{100 * v:.1f} % [{100 * lo:.1f}, {100 * hi:.1f}]"
    if key in _PERCENT:
        return f"{100 * v:.1f} %"
    if key == "worst_case_ci95":
        return f"{100 * v[0]:.1f}-{100 * v[1]:.1f} %"
    if key == "ms_per_image":
        return f"{v:.3g}"
    return str(v)


def _link(row: dict, out: Path, base: Path) -> str:
    target = card_target(row, out)
    return Path(os.path.relpath(target.resolve(), base.resolve())).as_posix()


def _card_cell(row: dict, out: Path, base: Path, outside: bool) -> str:
    """A Markdown link to the row's card; with ``outside`` False a card outside ``base`` is named, not linked (a
    documentation site refuses links that leave it): by its path from the working folder, else from the zoo's."""
    link = _link(row, out, base)
    if outside or not link.startswith("../"):
        return f"[card]({link})"
    target = card_target(row, out).resolve()
    if target.is_relative_to(Path.cwd().resolve()):
        return f"`{target.relative_to(Path.cwd().resolve()).as_posix()}`"
    return f"`advshield/zoo/{row['card']}`" if row.get("card") else f"`{target.name}`"


def markdown(card: dict, out: Path, base: Path, outside: bool = True) -> str:
    """The red flags first (every row's, or "None fired."), then the table, links relative to ``base`` (the folder
    the Markdown file lies in; ``outside`` False: no link leaves it), then notes."""
    head = [h for _, h in COLUMNS]
    flagged = [(r["name"], f) for r in card["rows"] for f in r.get("red_flags") or []]
    lines = [f"# advshield scorecard: {card['dataset']}", "",
             f"`{card['command']}`", "",
             f"{card['n']} test images; attack {card['attack_label']}, L-inf eps {card['eps']:.4g}; seed {card['seed']}; "
             f"machine: {card['machine_label']}.", "", "## Red flags", "",
             *([f"* **{name}** {f['check']}: {f['detail']}" for name, f in flagged] or ["None fired."]), "",
             "## Defenses", "",
             "Robust accuracies with their 95 % interval in brackets (the adaptive worst case's in its own column).", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in card["rows"]:
        cells = [cell(k, row) for k, _ in COLUMNS[:-1]] + [_card_cell(row, out, base, outside)]
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    lines += ["", *[f"* {n}" for n in card["notes"]]]
    noted = [(r["name"], r["note"]) for r in card["rows"] if r.get("note")]
    if noted:
        lines += ["", "## Row notes", ""] + [f"* **{name}**: {note}" for name, note in noted]
    return "\n".join(lines) + "\n"


def write_csv(card: dict, path: Path) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([k for k, _ in COLUMNS] + ["adaptive_robust_accuracy", "note"])
    for row in card["rows"]:
        vals = []
        for k, _ in COLUMNS:
            v = row.get(k)
            if k == "red_flags":
                v = ";".join(f["check"] for f in v or [])
            elif k == "worst_case_ci95" and v:
                v = "-".join(f"{x:.6g}" for x in v)
            elif isinstance(v, float):
                v = f"{v:.6g}"
            vals.append("" if v is None else v)
        extra = row.get("adaptive_robust_accuracy")
        w.writerow(vals + ["" if extra is None else f"{extra:.6g}", row.get("note") or ""])
    atomic_write_bytes(path, buf.getvalue().encode())


def write_html(card: dict, out: Path, path: Path) -> None:
    """The report package's page (red flags first, then the verdict): the best adaptive worst case beside the undefended reference,
    the sortable table (card links kept), red flags, notes."""
    measured = [r for r in card["rows"] if r.get("worst_case_robust_accuracy") is not None]
    headline = []
    trusted = [r for r in measured if not r.get("red_flags")]  # a flagged row (label leaking, failed checks) is
    if trusted:                                                # never a headline
        best = max(trusted, key=lambda r: r["worst_case_robust_accuracy"])
        headline.append({"id": "best-worst-case", "label": "Highest adaptive worst-case robust accuracy "
                         "(rows without red flags)",
                         "value": best["worst_case_robust_accuracy"],
                         "text": f"{best['name']}: {cell('worst_case_robust_accuracy', best)}",
                         "note": f"95 % interval {cell('worst_case_ci95', best)}; clean {cell('clean_accuracy', best)}, "
                                 f"through the defense {cell('defended_clean_accuracy', best)}; worst-case recovery "
                                 f"{cell('worst_case_recovery', best)}"})
    for r in measured:
        if r["kind"] == "undefended":
            headline.append({"id": "undefended", "label": f"{r['classifier']} without a defense",
                             "value": r["worst_case_robust_accuracy"],
                             "text": cell("worst_case_robust_accuracy", r),
                             "note": f"clean {cell('clean_accuracy', r)}; worst-case recovery "
                                     f"{cell('worst_case_recovery', r)}"})
    rows = []
    for r in card["rows"]:
        cells = []
        for k, _ in COLUMNS[:-1]:
            v = r.get(k)
            value = len(v) if k == "red_flags" and v is not None else v[0] if k == "worst_case_ci95" and v else v
            cells.append(cell_of(value if isinstance(value, (int, float)) else cell(k, r), cell(k, r)))
        link = Markup('<a href="{}">card</a>').format(_link(r, out, path.parent))
        cells.append(cell_of(r["name"], link))
        rows.append(cells)
    page = {"summary": [f"{card['n']} test images of {card['dataset']}; attack {card['attack_label']}, L-inf eps "
                        f"{card['eps']:.4g}; seed {card['seed']}; machine: {card['machine_label']}", card["command"]],
            "headline": headline, "verdict": {"id": "scorecard-table", "columns": list(COLUMNS), "rows": rows},
            "red_flags": [{"check": f"{r['name']}: {f['check']}", "detail": f["detail"]}
                          for r in card["rows"] for f in r.get("red_flags") or []],
            "notes": card["notes"] + [f"{r['name']}: {r['note']}" for r in card["rows"] if r.get("note")]}
    html = render_page(f"advshield scorecard: {card['dataset']}", page)
    atomic_write_bytes(path, html.encode("utf-8"))


__all__ = ["COLUMNS", "cell", "markdown", "write_csv", "write_html"]
