"""The HTML report in a real browser: headless Chromium renders it, runs its script, and the DOM it leaves
shows the red flags first, then the verdict, and tables sorted as the URL asked; a screenshot is kept.

Chromium comes from ``scripts/install_browser.sh`` (CI runs it); without a chromium binary the browser
tests are skipped, the rendering tests still run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from advshield.report import card_markdown, render_html, write_html_report

BROWSER = next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)
needs_browser = pytest.mark.skipif(BROWSER is None, reason="no chromium binary on PATH (bash scripts/install_browser.sh)")


def _row(threat, attack, robust, adv, params=None):
    return {"threat": threat, "attack": attack, "params": params or {"eps": 0.03}, "n": 200,
            "clean_accuracy": 0.94, "defended_clean_accuracy": 0.91, "adv_accuracy": adv,
            "restored_accuracy": robust, "success_rate": robust / 0.94, "recovery_rate": robust,
            "attack_success_rate": 1 - adv, "ssim_restored": 0.81, "psnr_restored": 27.5, "ssim_adv": 0.9,
            "psnr_adv": 30.1, "mean_l2": 1.2, "mean_linf": 0.03, "attack_seconds": 1.5}


CARD = {"target": "SmallCNN", "target_sha256": "c0ffee" * 10 + "abcd", "dataset": "cifar10", "n": 200,
        "defense": {"name": "Denoiser", "sha256": "ab" * 32}, "seed": 0,
        "rows": [_row("white-box", "fgsm", 0.62, 0.11), _row("adaptive", "fgsm", 0.35, 0.30),
                 _row("white-box", "pgd", 0.71, 0.0), _row("adaptive", "pgd", 0.04, 0.02)],
        "red_flags": [{"check": "above-clean", "detail": "white-box cw: accuracy after the defense 0.97 > clean 0.94"}],
        "figures": ["figures/bars.png"], "notes": ["a note <with> markup"]}


class _Dom(HTMLParser):
    """Tables (id -> rows of cell texts), section ids in order, text, and the body's attributes."""

    def __init__(self):
        super().__init__()
        self.tables, self.sections, self.body, self.images, self.text = {}, [], {}, [], []
        self._table = self._row = self._cell = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "body":
            self.body = a
        elif tag == "section":
            self.sections.append(a.get("id"))
        elif tag == "table":
            self._table = self.tables.setdefault(a.get("id"), [])
        elif tag == "tr" and self._table is not None:
            self._row = []
            self._table.append(self._row)
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []
        elif tag == "img":
            self.images.append(a.get("src", ""))

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)


def _dom(html: str) -> _Dom:
    d = _Dom()
    d.feed(html)
    return d


def _browser(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                           "--hide-scrollbars", *args], capture_output=True, text=True, timeout=120)


@pytest.fixture
def report(tmp_path) -> Path:
    from PIL import Image

    (tmp_path / "figures").mkdir()
    Image.new("RGB", (40, 30), (200, 30, 30)).save(tmp_path / "figures" / "bars.png")
    return write_html_report(CARD, tmp_path / "report.html")


def test_report_is_self_contained_with_red_flags_first_then_the_verdict(report):
    html = report.read_text()
    dom = _dom(html)
    assert dom.sections[:3] == ["red-flags-e0", "verdict-e0", "rows-e0"] and dom.sections[-1] == "figures"
    assert "http://" not in html and "https://" not in html  # opens offline
    assert dom.images and dom.images[0].startswith("data:image/png;base64,")
    head, *body = dom.tables["verdict-table-e0"]
    assert head[-2:] == ["robust: oblivious (white-box) (95 % CI)", "robust: adaptive (95 % CI)"]
    assert [r[0].split()[0] for r in body] == ["fgsm", "pgd"]
    # pgd: clean ... oblivious, adaptive; the card's rows carry no interval, so it is Wilson's of 142 and 8 of 200
    assert body[1][2:] == ["94.0 %", "91.0 %", "0.0 %", "71.0 % [64.4, 76.8]", "4.0 % [2.0, 7.7]"]
    assert "recovery of the originally correct images, lowest over the oblivious attacks: 62.0 %" in html
    rows_head, *rows = dom.tables["rows-table-e0"]
    assert [r[rows_head.index("robust, 95 % CI")] for r in rows][2:] == ["[64.4, 76.8]", "[2.0, 7.7]"]
    assert "a note <with> markup" in "".join(dom.text)  # escaped in the page, read back as text


def test_no_red_flag_says_none_fired():
    dom = _dom(render_html(dict(CARD, red_flags=[], figures=[])))
    assert "None fired." in "".join(dom.text)
    markdown = card_markdown(dict(CARD, red_flags=[]))
    assert "None fired." in markdown and markdown.index("## Red flags") < markdown.index("## Verdict")


def test_missing_figure_is_named_not_fatal(tmp_path):
    dom = _dom(render_html(CARD, base=tmp_path))
    assert "Figure bars.png: not found." in " ".join("".join(dom.text).split())


@needs_browser
def test_report_in_headless_chromium(report, tmp_path):
    url = report.as_uri() + "#sort=rows-table-e0:restored_accuracy:desc"
    proc = _browser("--virtual-time-budget=3000", "--dump-dom", url)
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = _dom(proc.stdout)
    assert dom.body.get("data-sortable") == "ready"  # the page's script ran to its end
    assert "Worst-case robust accuracy: 4.0 %" in " ".join("".join(dom.text).split())
    assert "above-clean" in "".join(dom.text)
    head, *rows = dom.tables["rows-table-e0"]
    robust = head.index("robust (through defense)")
    assert [r[robust] for r in rows] == ["71.0 %", "62.0 %", "35.0 %", "4.0 %"]  # sorted by the URL, descending
    assert [r[0] for r in rows] == ["white-box", "white-box", "adaptive", "adaptive"]

    shot = tmp_path / "report.png"
    proc = _browser("--window-size=1280,900", f"--screenshot={shot}", report.as_uri())
    assert proc.returncode == 0 and shot.stat().st_size > 10_000, proc.stderr[-2000:]
    if os.environ.get("ADVSHIELD_TEST_ARTIFACTS"):
        dest = Path(os.environ["ADVSHIELD_TEST_ARTIFACTS"])
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, dest / "html-report.png")


def test_reproduction_summary_renders_one_verdict_per_evaluation():
    import json

    from advshield.report import render_reproduction_html

    path = Path(__file__).resolve().parents[1] / "docs" / "reproductions" / "cru-net-mnist-full" / "reproduction.json"
    summary = json.loads(path.read_text())
    dom = _dom(render_reproduction_html(summary, base=path.parent))
    verdicts = [t for t in dom.tables if t.startswith("verdict-table-")]
    assert len(verdicts) == len(summary["evaluations"]) > 0
    assert summary["command"] in "".join(dom.text)
    first = summary["evaluations"][0]["oblivious"]["rows"][0]
    head, *body = dom.tables["verdict-table-e0"]
    assert body[0][0].split()[0] == first["attack"] and body[0][2] == f"{100 * first['clean_accuracy']:.1f} %"
