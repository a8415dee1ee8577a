"""report.html of `advshield detect`, of detection reproductions and of propagation reproductions: the verdict
first, and its numbers are the JSON card's (tiny CLI runs on the embedded MNIST sample); in headless Chromium the
page's script runs and sorts a table as the URL asks."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest
import yaml

from advshield.report import write_detection_html
from advshield.report.verdict import percent

sys.path.insert(0, str(Path(__file__).parent))
from test_cli import run_cli  # noqa: E402
from test_html_report import _browser, _dom, needs_browser  # noqa: E402

ADAPTIVE = "adaptive-joint"


@pytest.fixture(scope="module")
def detect_run(tmp_path_factory) -> Path:
    """A tiny `advshield detect`: MagNet on A-net, a loud and a quiet FGSM, the adaptive attack on 10 images."""
    tmp = tmp_path_factory.mktemp("detect")
    proc = run_cli("detect", "--target", "a-net", "--detector", "magnet-error", "--attacks", "fgsm,fgsm-small=fgsm",
                   "--attack-param", "fgsm.eps=0.3", "--attack-param", "fgsm-small.eps=0.05", "--n-train", "300",
                   "--n-calibration", "100", "--epochs", "2", "--n", "40", "--adaptive", "10", "--adaptive-steps",
                   "5", "--device", "cpu", "--out", str(tmp / "out"), "--store", str(tmp / "store"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return tmp / "out"


def _strong(html: str) -> dict[str, tuple[str, str]]:
    """The verdict's headline numbers: id -> (data-value, shown text)."""
    from html.parser import HTMLParser

    found, current = {}, []

    class P(HTMLParser):
        def handle_starttag(self, tag, attrs):
            a = dict(attrs)
            if tag == "strong" and "id" in a:
                current.append((a["id"], a.get("data-value", "")))

        def handle_data(self, data):
            if current:
                key, value = current.pop()
                found[key] = (value, data.strip())

    P().feed(html)
    return found


def _worst(card: dict) -> tuple[str, dict]:
    return min(((k, a) for k, a in card["attacks"].items() if k != ADAPTIVE), key=lambda ka: ka[1]["robust_accuracy"])


def _check_detection_verdict(html: str, cards: list[dict], names: dict[str, str] | None = None,
                             labels: dict[str, str] | None = None) -> None:
    dom, strong = _dom(html), _strong(html)
    assert dom.sections[:2] == ["red-flags", "verdict"]  # the red flags open the page, then the verdict
    assert float(strong["clean-accuracy"][0]) == cards[0]["clean_accuracy"]
    assert strong["clean-accuracy"][1] == percent(cards[0]["clean_accuracy"])
    head, *rows = dom.tables["verdict-table"]
    assert len(rows) == len(cards)
    for card, row in zip(cards, rows):
        kind, (_, worst), joint = card["detector"], _worst(card), card["attacks"][ADAPTIVE]
        checked = "; worst case with the self-checks' runs" if joint.get("worst_case") else ""
        joint = dict(joint, **(joint.get("worst_case") or {}))  # the verdict quotes the worst case with the checks
        assert float(strong[f"robust-oblivious-{kind}"][0]) == worst["robust_accuracy"]
        assert float(strong[f"robust-adaptive-{kind}"][0]) == joint["robust_accuracy"]
        assert strong[f"robust-adaptive-{kind}"][1] == percent(joint["robust_accuracy"])
        cells = dict(zip(head, row))
        assert cells["clean accuracy"] == percent(card["clean_accuracy"])
        assert cells["clean, right and unflagged"] == percent(card["clean_accuracy_unflagged"])
        assert cells["clean FPR (test)"].startswith(percent(card["clean_fpr"]))
        lo, hi = worst["robust_accuracy_ci95"]
        assert cells["robust: oblivious (worst attack)"].startswith(percent(worst["robust_accuracy"]))
        assert f"95 % CI {percent(lo)} - {percent(hi)}" in cells["robust: oblivious (worst attack)"]
        lo, hi = joint["robust_accuracy_ci95"]
        assert cells["robust: adaptive (detector-aware)"] == (
            f"{percent(joint['robust_accuracy'])}{joint['n']} images; 95 % CI {percent(lo)} - {percent(hi)}{checked}")
    text = " ".join("".join(dom.text).split())
    flags = [f for c in cards for f in c["red_flags"]]
    assert all(f["check"] in text for f in flags) and (flags or "None fired." in text)
    head, *rows = dom.tables["attacks-table"]
    robust = {(r[0], r[1]): r[head.index("robust accuracy")] for r in rows}
    for card in cards:
        name = (names or {}).get(card["detector"], card["detector"])
        for k, a in card["attacks"].items():
            a = dict(a, **(a.get("worst_case") or {}))
            assert robust[(name, (labels or {}).get(k, k))].startswith(percent(a["robust_accuracy"]))


@pytest.mark.slow
def test_detect_writes_a_report_whose_verdict_is_the_card(detect_run):
    card = json.loads((detect_run / "detection.json").read_text())
    assert set(card["attacks"]) == {"fgsm", "fgsm-small", ADAPTIVE}
    for a in card["attacks"].values():  # every robust accuracy has its interval, inside [0, 1]
        lo, hi = a["robust_accuracy_ci95"]
        assert 0 <= lo <= a["robust_accuracy"] <= hi <= 1
    assert card["clean_accuracy_unflagged"] <= card["clean_accuracy"]
    html = (detect_run / "report.html").read_text()
    assert "http://" not in html and "https://" not in html
    _check_detection_verdict(html, [card])
    images = _dom(html).images  # the robust-accuracy bars (oblivious attacks and the adaptive one), inline
    assert len(images) == 1 and images[0].startswith("data:image/png;base64,")


def test_several_detectors_share_one_verdict(detect_run, tmp_path):
    """The reproduction's page: one verdict row and two headline numbers per detector, red flags named by it."""
    card = json.loads((detect_run / "detection.json").read_text())
    other = dict(card, detector="cmag-ssim", red_flags=[{"check": "fpr-above-target", "detail": "made up"}])
    names = {"cmag-ssim": "CMAG (SSIM)"}
    html = write_detection_html([card, other], tmp_path / "report.html", names=names).read_text()
    _check_detection_verdict(html, [card, other], names)
    assert "CMAG (SSIM): made up" in " ".join("".join(_dom(html).text).split())


@pytest.mark.slow
def test_detection_reproduction_writes_a_report(tmp_path):
    preset = {"kind": "detection", "name": "tiny-magnet", "title": "Tiny MagNet", "paper": "cmag-detection.txt",
              "dataset": "mnist", "target": "a-net", "detectors": ["magnet-error"],
              "attacks": {"fgsm-0.3": {"attack": "fgsm", "params": {"eps": 0.3}, "label": "FGSM 0.3"}},
              "full": {"n_train": 300, "n_calibration": 100, "epochs": 1, "n_test": 30},
              "fast": {"n_train": 300, "n_calibration": 100, "epochs": 1, "n_test": 30, "n_adaptive": 6,
                       "adaptive_steps": 3}}
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(preset))
    out = tmp_path / "run"
    proc = run_cli("reproduce", str(tmp_path / "p.yaml"), "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    cards = list(json.loads((out / "reproduction.json").read_text())["detectors"].values())
    html = (out / "report.html").read_text()
    _check_detection_verdict(html, cards, {"magnet-error": "MagNet"}, {"fgsm-0.3": "FGSM 0.3"})
    assert "Tiny MagNet" in html
    images = _dom(html).images  # the bars and the reconstruction grid, inline
    assert len(images) == 2 and all(src.startswith("data:image/png;base64,") for src in images)
    _check_detection_verdict((out / "magnet-error" / "report.html").read_text(), cards)  # the detector's own


@pytest.mark.slow
def test_propagation_reproduction_writes_a_report(tmp_path):
    preset = {"kind": "propagation", "name": "tiny-propagation", "title": "Tiny propagation",
              "paper": "perturbation-propagation.txt", "dataset": "mnist", "models": ["a-net"], "substitute": "b-net",
              "reference": "a-net", "eps": 0.3, "fast": {"n": 12}, "full": {"n": 12}}
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(preset))
    out = tmp_path / "run"
    proc = run_cli("reproduce", str(tmp_path / "p.yaml"), "--out", str(out), "--store", str(tmp_path / "store"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    card = json.loads((out / "a-net" / "propagation.json").read_text())
    html = (out / "report.html").read_text()
    dom, strong = _dom(html), _strong(html)
    assert dom.sections[:2] == ["red-flags", "verdict"]
    for key, value in summary["holds"].items():
        assert strong[f"holds-{key.replace('_', '-')}"] == (value, value)
    head, *rows = dom.tables["verdict-table"]
    assert [r[1] for r in rows] == list(summary["runs"]["a-net"])
    for r in rows:
        cells, ratios = dict(zip(head, r)), summary["runs"]["a-net"][r[1]]
        assert cells["accuracy on the set"] == percent(card["accuracy"][r[1]])
        assert cells["clean accuracy"] == percent(card["accuracy"]["clean"])
        assert cells["NE-D ratio"] == f"{ratios['ne_d_ratio']:.3g}"
        assert cells["jumps"] == ("yes" if ratios["ne_d_jumps"] else "no")
        assert cells["COS-D at the output"] == f"{card['cos_d'][r[1]][-1]:.3g}"
    head, *rows = dom.tables["ne-d-a-net"]
    assert [r[0] for r in rows] == card["layers"]
    assert dom.images and all(src.startswith("data:image/png;base64,") for src in dom.images)  # curves inline


@needs_browser
def test_detection_report_in_headless_chromium(detect_run, tmp_path):
    card = json.loads((detect_run / "detection.json").read_text())
    page = tmp_path / "report.html"
    shutil.copy(detect_run / "report.html", page)
    proc = _browser("--virtual-time-budget=3000", "--dump-dom", page.as_uri() + "#sort=attacks-table:robust")
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = _dom(proc.stdout)
    assert dom.body.get("data-sortable") == "ready"
    _check_detection_verdict(proc.stdout, [card])
    head, *rows = dom.tables["attacks-table"]
    shown = [r[head.index("robust accuracy")] for r in rows]
    values = sorted(a["robust_accuracy"] for a in card["attacks"].values())
    assert [s[:len(percent(v))] for s, v in zip(shown, values)] == [percent(v) for v in values]  # sorted, ascending
    shot = tmp_path / "detection.png"
    proc = _browser("--window-size=1280,900", f"--screenshot={shot}", page.as_uri())
    assert proc.returncode == 0 and shot.stat().st_size > 10_000, proc.stderr[-2000:]
    if os.environ.get("ADVSHIELD_TEST_ARTIFACTS"):
        dest = Path(os.environ["ADVSHIELD_TEST_ARTIFACTS"])
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, dest / "html-report-detection.png")
