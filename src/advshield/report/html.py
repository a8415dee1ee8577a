"""Self-contained HTML reports: one file, figures inlined as base64, no network access when opened.

The first screen is the red flags, then the verdict (clean accuracy, clean through the defense, oblivious and
adaptive robust accuracy with their 95 % intervals side by side per attack); then sortable tables (click a heading; the URL
fragment ``#sort=<table id>:<column>[:desc]`` sorts on load); then the figures.
"""

from __future__ import annotations

import base64
from pathlib import Path

from advshield.io import atomic_write_bytes
from advshield.report.verdict import (ROW_COLUMNS, cell, headline_line, interval_of, percent, red_flags, summary_line,
                                      threat_label, threats_of, verdict_rows, with_ci, worst_case)

_MIME = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".svg": "image/svg+xml"}


def _environment():
    try:
        import jinja2
    except ImportError:  # pragma: no cover - jinja2 is a runtime dependency
        raise ImportError("HTML reports need Jinja2: pip install jinja2") from None
    return jinja2.Environment(loader=jinja2.PackageLoader("advshield.report", "templates"),
                              autoescape=jinja2.select_autoescape(("html", "j2")), trim_blocks=True,
                              lstrip_blocks=True, undefined=jinja2.StrictUndefined)


def _figure(path: Path) -> dict:
    mime = _MIME.get(path.suffix.lower())
    if mime is None or not path.is_file():
        why = "not found" if not path.is_file() else f"unsupported type {path.suffix}"
        return {"name": path.name, "missing": why}
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return {"name": path.name, "src": f"data:{mime};base64,{data}", "missing": None}


def figures_of(figures: list[str | Path] | None, base: Path | None) -> list[dict]:
    """Inline figures: relative paths are read from ``base`` (the report's folder)."""
    out = []
    for f in figures or []:
        p = Path(f)
        out.append(_figure(p if p.is_absolute() or base is None else base / p))
    return out


def _params(params: dict | None) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(params.items())) if params else ""


def _row_cell(key: str, row: dict) -> tuple:
    """(sort value, text) of one cell of the all-rows table; an interval sorts by its lower end."""
    if key == "restored_accuracy_ci95":
        ci = interval_of(row)
        return (ci[0] if ci else "", cell(key, ci))
    v = row.get(key)
    return (v if isinstance(v, (int, float)) else str(v if v is not None else ""), cell(key, v))


def _evaluation_section(card: dict, section_id: str) -> dict:
    threats = threats_of(card)
    verdict = [{"attack": v["attack"], "params": _params(v["params"]),
                "n": v["n"], "cells": [(v["clean"], percent(v["clean"])),
                                       (v["defended_clean"], percent(v["defended_clean"])),
                                       (v["undefended"], percent(v["undefended"]))]
                + [(v["robust"][t], with_ci(v["robust"][t], v["robust_ci"][t])) for t in threats],
                "cell_params": [""] * 3 + [_params(v["robust_params"].get(t)) for t in threats]}
               for v in verdict_rows(card)]
    rows = [[_row_cell(k, r) for k, _ in ROW_COLUMNS] for r in card.get("rows", [])]
    return {"id": section_id, "summary": summary_line(card), "worst": worst_case(card), "headline": headline_line(card),
            "sample_reason": card.get("sample_reason"),
            "threat_labels": [threat_label(t) for t in threats], "verdict": verdict,
            "columns": [(k, h) for k, h in ROW_COLUMNS], "rows": rows, "red_flags": red_flags(card),
            "notes": card.get("notes") or []}


def render_html(card: dict, figures: list[str | Path] | None = None, *, base: str | Path | None = None,
                title: str = "advshield evaluation") -> str:
    """The report for one evaluation card as an HTML string (see :func:`write_html_report`)."""
    if figures is None:
        figures = card.get("figures")
    section = _evaluation_section(card, "e0")
    return _environment().get_template("report.html.j2").render(
        title=title, sections=[section], figures=figures_of(figures, Path(base) if base else None),
        percent=percent, meta=None)


def write_html_report(card: dict, path: str | Path, figures: list[str | Path] | None = None,
                      title: str = "advshield evaluation") -> Path:
    """Write ``card`` as a self-contained ``report.html`` at ``path``; returns the path.

    ``figures`` (default: the card's ``figures``, relative to the report's folder) are inlined as base64.
    """
    path = Path(path)
    html = render_html(card, figures, base=path.parent, title=title)
    atomic_write_bytes(path, html.encode("utf-8"))
    return path


def render_reproduction_html(summary: dict, base: str | Path | None = None) -> str:
    """A reproduction's ``reproduction.json`` as HTML: one verdict per evaluation (oblivious and adaptive
    rows side by side), the command that regenerates it and the machine it ran on."""
    sections = []
    for i, ev in enumerate(summary.get("evaluations", [])):
        cards = [c for c in (ev.get("oblivious"), ev.get("adaptive")) if c]
        if not cards:
            continue
        behind = [(f" (behind {b})", c) for b, r in sorted((ev.get("baselines") or {}).items())
                  for c in (r.get("oblivious"), r.get("adaptive")) if c]  # the baselines' flags, as report.md lists them
        merged = dict(cards[0], rows=[r for c in cards for r in c.get("rows", [])],
                      red_flags=[f for c in cards for f in c.get("red_flags", []) or []]
                      + [dict(f, check=f["check"] + where) for where, c in behind for f in c.get("red_flags", []) or []],
                      verdict=cards[-1].get("verdict"),  # the adaptive card's per-image worst case, when run
                      **({"sample_reason": cards[-1]["sample_reason"]} if cards[-1].get("sample_reason") else {}))
        spec = ev.get("evaluation", {})
        merged.setdefault("target", spec.get("target", "?"))
        section = _evaluation_section(merged, f"e{i}")
        section["summary"] = (f"{spec.get('target', '?')} behind the restorer for {spec.get('defense_of', '?')}"
                              + (f" ({spec['label']})" if spec.get("label") else "") + f", {merged.get('n', '?')} images")
        sections.append(section)
    preset = summary.get("preset", {})
    meta = {"command": summary.get("command", ""), "variant": summary.get("variant", ""),
            "seconds": summary.get("seconds"), "machine": summary.get("machine", {})}
    figures = [summary["comparison_figure"]] if summary.get("comparison_figure") else []
    return _environment().get_template("report.html.j2").render(
        title=f"advshield reproduction: {preset.get('name', '')}".strip(), sections=sections,
        figures=figures_of(figures, Path(base) if base else None), percent=percent, meta=meta)


def cell_of(value, text: str | None = None, note: str = "", cls: str = "") -> dict:
    """One cell of a generic table: ``value`` sorts it (written as ``data-value``), ``text`` shows it."""
    shown = text if text is not None else ("-" if value is None else str(value))
    return {"value": "" if value is None else value, "text": shown, "note": note, "cls": cls}


def render_page(title: str, page: dict, figures: list[str | Path] | None = None, base: str | Path | None = None) -> str:
    """A page from generic parts, red flags first, then the verdict (``tables.html.j2``): ``page`` holds ``summary`` (lines),
    ``headline`` (``{id, label, value, text, note}``), ``verdict`` (a table), ``verdict_notes``, ``red_flags``,
    ``tables`` (``{id, title, caption, columns: [(key, heading)], rows: [[cell_of(...)]]}``) and ``notes``."""
    page = {"summary": [], "headline": [], "verdict_notes": [], "red_flags": [], "tables": [], "notes": [], **page}
    return _environment().get_template("tables.html.j2").render(
        title=title, page=page, figures=figures_of(figures, Path(base) if base else None))


__all__ = ["cell_of", "figures_of", "render_html", "render_page", "render_reproduction_html", "write_html_report"]
