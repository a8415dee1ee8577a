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
from advshield.report.verdict import percent
from advshield.reproduce import load_preset
from advshield.reproduce.propagation.adaptive import adaptive_markdown, adaptive_settings, table5_red_flags
from advshield.reproduce.propagation.preset import denoiser_key

sys.path.insert(0, str(Path(__file__).parent))
from test_cli import run_cli  # noqa: E402
from test_html_report import _dom  # noqa: E402

TINY = {"kind": "propagation", "name": "tiny-propagation", "title": "Tiny propagation",
        "paper": "perturbation-propagation.txt", "dataset": "mnist", "models": ["a-net"], "substitute": "b-net",
        "reference": "a-net", "eps": 0.3, "denoisers": ["cru-net-for-a-net"],
        "adaptive": {"attacks": {"fgsm": {"eps": 0.3}}},
        "fast": {"n": 12, "n_adaptive": 12, "n_checks": 6}, "full": {"n": 12, "n_adaptive": 500}}


def _write(tmp_path: Path, data: dict) -> Path:
    p = tmp_path / "p.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


def test_adaptive_block_needs_denoisers_known_attacks_and_a_full_sample_of_500(tmp_path):
    with pytest.raises(AdvShieldError, match="no denoisers to attack"):
        load_preset(_write(tmp_path, {**TINY, "denoisers": []}))
    with pytest.raises(AdvShieldError, match="full.n_adaptive = 100: adaptive numbers on mnist use at least 500"):
        load_preset(_write(tmp_path, {**TINY, "full": {"n": 12, "n_adaptive": 100}}))
    with pytest.raises(AdvShieldError, match="full.n_adaptive is 0"):
        load_preset(_write(tmp_path, {**TINY, "full": {"n": 12}}))
    p = load_preset(_write(tmp_path, {**TINY, "full": {"n": 12, "n_adaptive": 100, "n_adaptive_reason": "slow"}}))
    assert p.full.n_adaptive == 100
    with pytest.raises(AdvShieldError, match="attackz"):
        load_preset(_write(tmp_path, {**TINY, "adaptive": {"attackz": {}}}))
    # an unknown attack or parameter fails when the preset loads, before any propagation run
    with pytest.raises(AdvShieldError, match="adaptive attack pgdd"):
        load_preset(_write(tmp_path, {**TINY, "adaptive": {"attacks": {"pgdd": {}}}}))
    with pytest.raises(AdvShieldError, match="adaptive attack autoattack"):
        load_preset(_write(tmp_path, {**TINY, "adaptive": {"attacks": {"fgsm": {}}, "ensemble": {"versio": "x"}}}))


def test_denoisers_get_distinct_safe_folder_names(tmp_path):
    assert denoiser_key("unet-for-inception-resnet-v2") == "unet-for-inception-resnet-v2"
    assert denoiser_key("runs/a b/unet-v1.5.safetensors") == "runs-a-b-unet-v1.5"
    assert denoiser_key("<x>") == "x"
    with pytest.raises(AdvShieldError, match="share the folder name"):
        load_preset(_write(tmp_path, {**TINY, "denoisers": ["a/u.safetensors", "a u.safetensors"]}))


def test_every_attack_runs_oblivious_then_adaptive_and_the_ensemble_last():
    p = load_preset("propagation-cifar10")
    got = [(s.attack, s.threat.kind.value, s.params.get("eps")) for s in adaptive_settings(p)]
    assert got == [("fgsm", "white-box", 0.03137), ("pgd", "white-box", 0.03137), ("fgsm", "adaptive", 0.03137),
                   ("pgd", "adaptive", 0.03137), ("autoattack", "adaptive", 0.03137)]
    assert p.full.n_adaptive >= 500 and p.fast.n_adaptive > 0


def _card(flags: list[dict], adaptive: float) -> dict:
    def row(threat, restored, recovery):
        return {"attack": "pgd", "threat": threat, "n": 40, "params": {"eps": 0.03}, "clean_accuracy": 0.9,
                "defended_clean_accuracy": 0.85, "adv_accuracy": 0.05, "restored_accuracy": restored,
                "restored_accuracy_ci95": [max(restored - 0.1, 0.0), restored + 0.1], "recovery_rate": recovery}
    return {"n": 40, "rows": [row("white-box", 0.6, 0.65), row("adaptive", adaptive, 0.1)], "red_flags": flags,
            "verdict": {"adaptive_worst_case": {"accuracy": adaptive, "ci95": [0.026, 0.199], "attacks": ["pgd"],
                                                "n": 40, "budget": {"norm": "linf", "eps": 0.03},
                                                "excluded": ["cw"]}}}


def test_red_flags_of_every_denoiser_reach_the_top_of_the_markdown_and_the_page():
    flag = {"check": "not-converged", "detail": "doubling steps and restarts: 10.0 % -> 5.0 %"}
    cards = {"unet-for-x": _card([flag], 0.1), "fusionnet-for-x": _card([], 0.075)}
    model = {"accuracy": {"clean": 0.9, "fgsm-v2": 0.2, "fgsm-v2+unet-for-x": 0.95, "clean+unet-for-x": 0.99},
             "ne_d": {}, "cos_d": {}, "layers": ["out"], "sizes": [10], "model": "m", "n": 40}
    top, section = adaptive_markdown(cards, {"n_adaptive": 40, "n_checks": 20}, {"m": model})
    assert top[0] == "## Red flags" and "on the first 20 images" in top[2]
    # Table 5: 0.95 through the U-Net against 0.90 clean is two images above (clean+ rows are not sets)
    assert top[4].startswith("- **label-leaking**: m: the fgsm-v2 set through unet-for-x is classified at 0.950")
    assert top[5:] == ["- **not-converged**: unet-for-x: doubling steps and restarts: 10.0 % -> 5.0 %"]
    text = "\n".join(section)
    assert "**unet-for-x** (40 images; [report](adaptive/unet-for-x/report.md)): adaptive worst-case robust " \
           "accuracy **10.0 %** [2.6 %, 19.9 %] over every attack at L-inf eps 0.03: pgd; not in it (unbounded or " \
           "another budget): cw." in text
    assert "**fusionnet-for-x** (40 images; [report](adaptive/fusionnet-for-x/report.md)): adaptive worst-case " \
           "robust accuracy **7.5 %**" in text
    assert ('| pgd | {"eps": 0.03} | oblivious (white-box) | 90.0 % | 85.0 % | 5.0 % | 60.0 % [50.0 %, 70.0 %] '
            '| 65.0 % |') in text
    assert '| pgd | {"eps": 0.03} | adaptive | 90.0 % | 85.0 % | 5.0 % | 7.5 % [0.0 %, 17.5 %] | 10.0 % |' in text
    quiet_top, _ = adaptive_markdown({"fusionnet-for-x": _card([], 0.075)}, {"n_adaptive": 40, "n_checks": 0})
    assert quiet_top[-1] == "None fired." and "health checks were off" in quiet_top[2]
    none_top, none_section = adaptive_markdown({}, {}, {"m": dict(model, accuracy={"clean": 0.9, "a+d": 0.91})})
    assert none_section == [] and "No denoiser was attacked" in none_top[2] and none_top[-1] == "None fired."
    page = propagation_page({"m": model}, {"runs": {}, "holds": {}}, attacked=cards)
    assert page["red_flags"] == [{"check": "not-converged", "detail": "unet-for-x: " + flag["detail"]}]
    assert {h["id"]: h["value"] for h in page["headline"]} == {"worst-case-0": 0.1, "worst-case-1": 0.075}
    rows = page["tables"][0]["rows"]
    assert [(r[0]["text"], r[3]["text"], r[6]["text"], r[6]["note"], r[7]["text"]) for r in rows] == [
        ("unet-for-x", "oblivious (white-box)", "60.0 %", "95 % CI 50.0 % - 70.0 %", "65.0 %"),
        ("unet-for-x", "adaptive", "10.0 %", "95 % CI 0.0 % - 20.0 %", "10.0 %"),
        ("fusionnet-for-x", "oblivious (white-box)", "60.0 %", "95 % CI 50.0 % - 70.0 %", "65.0 %"),
        ("fusionnet-for-x", "adaptive", "7.5 %", "95 % CI 0.0 % - 17.5 %", "10.0 %")]
    assert table5_red_flags({"m": model}) == [{"check": "label-leaking", "detail": top[4].split("**: ", 1)[1]}]


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
    if not card["red_flags"]:
        assert "None fired." in first_section
    for r in card["rows"]:
        lo, hi = r["restored_accuracy_ci95"]
        assert (f"| {percent(r['restored_accuracy'])} [{percent(lo)}, {percent(hi)}] | {percent(r['recovery_rate'])} |"
                in readme)
    worst = card["verdict"]["adaptive_worst_case"]
    assert f"adaptive worst-case robust accuracy **{percent(worst['accuracy'])}**" in readme
    summary = json.loads((out / "reproduction.json").read_text())
    assert summary["red_flags"] == [{"check": f["check"], "detail": "cru-net-for-a-net: " + f["detail"]}
                                    for f in card["red_flags"]]
    dom = _dom((out / "report.html").read_text())
    assert dom.sections[:2] == ["red-flags", "verdict"]
    head, *rows = dom.tables["denoisers-under-attack"]
    assert [r[3] for r in rows] == ["oblivious (white-box)", "adaptive"]
    assert [r[6] for r in rows] == [  # the cell shows the value, then its interval as a note
        f"{percent(r['restored_accuracy'])}95 % CI {percent(r['restored_accuracy_ci95'][0])} - "
        f"{percent(r['restored_accuracy_ci95'][1])}" for r in card["rows"]]
