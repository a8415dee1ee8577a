"""Reports of evaluation cards: Markdown and self-contained HTML (red flags first, then the verdict, tables and figures).

This package reads cards (plain JSON dicts) and imports only core modules, so every layer can render one.
"""

from advshield.report.detection import write_detection_html
from advshield.report.html import render_html, render_page, render_reproduction_html, write_html_report
from advshield.report.propagation import write_propagation_html
from advshield.report.verdict import card_markdown, red_flags, verdict_rows, worst_case

__all__ = ["card_markdown", "red_flags", "render_html", "render_page", "render_reproduction_html", "verdict_rows",
           "worst_case", "write_detection_html", "write_html_report", "write_propagation_html"]
