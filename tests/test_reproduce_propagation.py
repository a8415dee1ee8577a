"""The propagation reproduction's denoisers under attack (beyond the paper): the preset's ``adaptive`` block, the
Red flags at the top of README.md and report.html, and the rows taken from each denoiser's evaluation card."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

from advshield.errors import AdvShieldError
from advshield.report.propagation import propagation_page
from advshield.report.verdict import percent, verdict_rows
from advshield.reproduce import load_preset
from advshield.reproduce.propagation.adaptive import adaptive_markdown, adaptive_settings

sys.path.insert(0, str(Path(__file__).parent))
from test_cli import run_cli  # noqa: E402
from test_html_report import _dom  # noqa: E402

TINY = {"kind": "propagation", "name": "tiny-propagation", "title": "Tiny propagation",
        "paper": "perturbation-propagation.txt", "dataset": "mnist", "models": ["a-net"], "substitute": "b-net",
        "reference": "a-net", "eps": 0.3, "denoisers": ["cru-net-for-a-net"],
        "adaptive": {"attacks": {"fgsm": {"eps": 0.3}}},
        "fast": {"n": 12, "n_adaptive": 12, "n_checks": 6}, "full": {"n": 12}}


def _write(tmp_path: Path, data: dict) -> Path:
    p = tmp_path / "p.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


def test_adaptive_block_needs_denoisers_and_a_full_sample_of_500(tmp_path):
    with pytest.raises(AdvShieldError, match="no denoisers to attack"):
        load_preset(_write(tmp_path, {**TINY, "denoisers": []}))
    with pytest.raises(AdvShieldError, match="full.n_adaptive = 100: adaptive numbers on mnist use at least 500"):
        load_preset(_write(tmp_path, {**TINY, "full": {"n": 12, "n_adaptive": 100}}))
    p = load_preset(_write(tmp_path, {**TINY, "full": {"n": 12, "n_adaptive": 100, "n_adaptive_reason": "slow"}}))
    assert p.full.n_adaptive == 100
    with pytest.raises(AdvShieldError, match="attackz"):
        load_preset(_write(tmp_path, {**TINY, "adaptive": {"attackz": {}}}))


def test_every_attack_runs_oblivious_then_adaptive_and_the_ensemble_last():
    p = load_preset("propagation-cifar10")
    got = [(s.attack, s.threat.kind.value, s.params.get("eps")) for s in adaptive_settings(p)]
    assert got == [("fgsm", "white-box", 0.03137), ("pgd", "white-box", 0.03137), ("fgsm", "adaptive", 0.03137),
                   ("pgd", "adaptive", 0.03137), ("autoattack", "adaptive", 0.03137)]
    assert p.full.n_adaptive >= 500 and p.fast.n_adaptive > 0


def _card(flags: list[dict]) -> dict:
    def row(threat, restored):
        return {"attack": "pgd", "threat": threat, "n": 40, "params": {"eps": 0.03}, "clean_accuracy": 0.9,
                "defended_clean_accuracy": 0.85, "adv_accuracy": 0.05, "restored_accuracy": restored}
    return {"n": 40, "rows": [row("white-box", 0.6), row("adaptive", 0.1)], "red_flags": flags,
            "verdict": {"adaptive_worst_case": {"accuracy": 0.075, "ci95": [0.026, 0.199], "attacks": ["pgd"],
                                                "n": 40}}}


def test_red_flags_of_every_denoiser_reach_the_top_of_the_markdown_and_the_page():
    flag = {"check": "not-converged", "detail": "doubling steps and restarts: 10.0 % -> 5.0 %"}
    cards = {"unet-for-x": _card([flag]), "fusionnet-for-x": _card([])}
    top, section = adaptive_markdown(cards, {"n_adaptive": 40})
    assert top[0] == "## Red flags"
    assert top[-1] == "- **not-converged**: unet-for-x: doubling steps and restarts: 10.0 % -> 5.0 %"
    text = "\n".join(section)
    assert "worst-case adaptive robust accuracy **7.5 %** (95 % CI 2.6 % - 19.9 %)" in text
    assert "| pgd | 90.0 % | 85.0 % | 5.0 % | 60.0 % | 10.0 % |" in text  # oblivious 60 %, adaptive 10 %
    quiet_top, _ = adaptive_markdown({"fusionnet-for-x": _card([])}, {"n_adaptive": 40})
    assert quiet_top[-1] == "None fired."
    assert adaptive_markdown({}, {}) == ([], [])
    model = {"accuracy": {"clean": 0.9}, "ne_d": {}, "cos_d": {}, "layers": ["out"], "sizes": [10], "model": "m",
             "n": 40}
    page = propagation_page({"m": model}, {"runs": {}, "holds": {}}, attacked=cards)
    assert page["red_flags"] == [{"check": "not-converged", "detail": "unet-for-x: " + flag["detail"]}]
    worst = {h["id"]: h["value"] for h in page["headline"]}
    assert worst == {"worst-case-unet-for-x": 0.075, "worst-case-fusionnet-for-x": 0.075}
    rows = page["tables"][0]["rows"]
    assert [(r[0]["text"], r[2]["text"], r[5]["text"]) for r in rows] == [
        ("unet-for-x", "oblivious (white-box)", "60.0 %"), ("unet-for-x", "adaptive", "10.0 %"),
        ("fusionnet-for-x", "oblivious (white-box)", "60.0 %"), ("fusionnet-for-x", "adaptive", "10.0 %")]


@pytest.mark.slow
def test_the_reproduction_attacks_each_denoiser_and_reports_what_its_card_says(tmp_path):
    out = tmp_path / "run"
    proc = run_cli("reproduce", str(_write(tmp_path, TINY)), "--out", str(out), "--store", str(tmp_path / "store"),
                   "--device", "cpu")
    assert proc.returncode == 0, proc.stderr[-3000:]
    card = json.loads((out / "adaptive" / "cru-net-for-a-net" / "card.json").read_text())
    assert card["n"] == 12 and {(r["attack"], r["threat"]) for r in card["rows"]} == {
        ("fgsm", "white-box"), ("fgsm", "adaptive")}
    assert list(card["health"]) == ["adaptive fgsm"]  # the adaptive setting was checked, the oblivious one not
    readme = (out / "README.md").read_text()
    first_section = readme.split("\n## ", 1)[1]
    assert first_section.startswith("Red flags")
    for f in card["red_flags"]:
        assert f"- **{f['check']}**: cru-net-for-a-net: {f['detail']}" in first_section
    (v,) = verdict_rows(card)
    assert (f"| fgsm | {percent(v['clean'])} | {percent(v['defended_clean'])} | {percent(v['undefended'])} | "
            f"{percent(v['robust']['white-box'])} | {percent(v['robust']['adaptive'])} |") in readme
    summary = json.loads((out / "reproduction.json").read_text())
    assert summary["red_flags"] == [{"check": f["check"], "detail": "cru-net-for-a-net: " + f["detail"]}
                                    for f in card["red_flags"]]
    dom = _dom((out / "report.html").read_text())
    assert dom.sections[:2] == ["verdict", "red-flags"]
    head, *rows = dom.tables["denoisers-under-attack"]
    assert [r[2] for r in rows] == ["oblivious (white-box)", "adaptive"]
    assert rows[1][5] == percent(v["robust"]["adaptive"])
