"""Render committed reproductions' reports again from their JSON, after a change to the reports (not the numbers).

    python scripts/rerender_reports.py                      # every folder of docs/reproductions
    python scripts/rerender_reports.py docs/reproductions/dkn-mnist-full ...

A folder is rendered only where its run recorded today's preset (``reproduction.json``'s ``preset``, which
has its keys sorted, so the preset's own order of attacks comes from the registry's copy); a folder whose preset
changed since keeps its reports. Restoration presets: ``report.md`` and ``report.html`` from
``reproduction.json``; detection presets: ``report.md``,
the bars and ``report.html`` (``write_detection_reports``); every committed evaluation card with a ``report.md``
beside it (the propagation denoisers under attack): that ``report.md``. The numbers and red flags are the ones the
run wrote into its JSON: a check added to the code since is not run again (rerun the preset's command for that).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from advshield.io import atomic_write_bytes
from advshield.report import card_markdown, render_reproduction_html
from advshield.reproduce import load_preset
from advshield.reproduce.detection.preset import DetectionPreset
from advshield.reproduce.detection.runner import write_detection_reports
from advshield.reproduce.restoration.preset import Preset
from advshield.reproduce.restoration.report import write_report

ROOT = Path(__file__).resolve().parents[1] / "docs" / "reproductions"


def rerender(folder: Path) -> list[Path]:
    """Rewrite the reports of one collected reproduction; the files written."""
    written = []
    summary_path = folder / "reproduction.json"
    if summary_path.is_file():
        summary = json.loads(summary_path.read_text())
        preset = load_preset(summary["preset"]["name"])
        recorded = json.dumps(summary["preset"], sort_keys=True)
        if recorded != json.dumps(preset.model_dump(mode="json"), sort_keys=True):
            # the preset changed since the run (budgets, attacks, notes): its text would not describe this run
            print(f"{folder}: kept its reports (the preset changed since the run; rerun its command)", file=sys.stderr)
            preset = None
        if isinstance(preset, Preset):
            write_report(preset, summary, folder / "report.md")
            atomic_write_bytes(folder / "report.html", render_reproduction_html(summary, base=folder).encode())
            written += [folder / "report.md", folder / "report.html"]
        elif isinstance(preset, DetectionPreset):
            write_detection_reports(preset, summary, folder)
            written += [folder / "report.md", folder / "report.html"]
    for card_path in sorted(folder.glob("**/card.json")):
        if (card_path.parent / "report.md").is_file():
            card = json.loads(card_path.read_text())
            atomic_write_bytes(card_path.parent / "report.md", card_markdown(card, "advshield evaluation").encode())
            written.append(card_path.parent / "report.md")
    return written


def main(folders: list[str]) -> None:
    missing = [f for f in folders if not Path(f).is_dir()]
    if missing:
        sys.exit(f"not a folder: {', '.join(missing)}")
    for folder in [Path(f) for f in folders] or sorted(p for p in ROOT.iterdir() if p.is_dir()):
        for path in rerender(folder):
            print(path)


if __name__ == "__main__":
    main(sys.argv[1:])
