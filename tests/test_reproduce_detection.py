"""Detection presets (``kind: detection``): validation, an end-to-end tiny run, and reconstruction statistics."""

import json
import shutil
import sys
from pathlib import Path

import pytest
import torch
import yaml

from advshield.detectors.base import Detector
from advshield.detectors.magnet import MagNetAutoencoder, ReconstructionErrorDetector
from advshield.evaluation.detection import reconstruction_stats
from advshield.errors import AdvShieldError
from advshield.reproduce import load_preset
from advshield.reproduce.detection.preset import DetectionPreset

sys.path.insert(0, str(Path(__file__).parent))
from test_cli import run_cli  # noqa: E402

TINY = {
    "kind": "detection", "name": "tiny-cmag", "title": "Tiny CMAG", "paper": "cmag-detection.txt",
    "dataset": "mnist", "target": "a-net", "fpr": 0.05, "detectors": ["cmag-ssim", "magnet-error"],
    "attacks": {"fgsm-0.3": {"attack": "fgsm", "params": {"eps": 0.3}, "label": "FGSM 0.3"},
                "cw-9": {"attack": "cw", "params": {"confidence": 9, "binary_search_steps": 1, "steps": 30,
                                                   "initial_const": 10.0, "stepsize": 0.05}, "label": "CW 9"}},
    "figure_attacks": ["fgsm-0.3", "cw-9"],
    "full": {"n_train": 2000, "n_calibration": 500, "epochs": 3, "n_test": 500},
    "fast": {"n_train": 1000, "n_calibration": 200, "epochs": 3, "n_test": 40, "n_adaptive": 10,
             "checks": 5, "adaptive_steps": 3, "ablation": True, "attack_params": {"cw-9": {"steps": 40}},
             "n_adaptive_reason": "a tiny test"},
    "paper_results": {"table": "Table 3", "detection": {"cmag-ssim": {"fgsm-0.3": 1.0, "cw-9": 1.0}},
                      "ssim_table": "Table 6", "ssim": {"fgsm-0.3": 0.442, "threshold": 0.824},
                      "l2_table": "Table 7", "l2": {"legitimate": 3.165, "fgsm-0.3": 12.073}},
    "notes": ["tiny budget"],
}


def _write(tmp_path, data) -> Path:
    p = tmp_path / "preset.yaml"
    p.write_text(yaml.safe_dump(data, sort_keys=False))
    return p


def test_builtin_detection_presets_cover_the_three_datasets():
    for name, dataset in (("cmag-mnist", "mnist"), ("cmag-fmnist", "fashion-mnist"), ("cmag-gtsrb", "gtsrb")):
        p = load_preset(name)
        assert isinstance(p, DetectionPreset) and p.dataset.value == dataset
        assert {"fgsm-0.1", "fgsm-0.2", "fgsm-0.3", "cw-9", "cw-19", "cw-29"} == set(p.attacks)
        assert [p.attacks[f"cw-{k}"].params["confidence"] for k in (9, 19, 29)] == [9, 19, 29]
        assert set(p.paper_results.detection) == {"magnet-error", "defense-gan", "cmag-ssim"}


@pytest.mark.parametrize("change, fragment", [
    (lambda d: d.update(detectorz=["cmag-ssim"]), "detectorz"),
    (lambda d: d.update(detectors=["cmag-ssim", "feature-squeeze"]), "unknown detector"),
    (lambda d: d["attacks"]["fgsm-0.3"].update(attack="fgsmm"), "attack fgsm-0.3"),
    (lambda d: d.update(figure_attacks=["pgd"]), "figure_attacks"),
    (lambda d: d["fast"]["attack_params"].update(cw=dict(steps=3)), "fast.attack_params"),
    (lambda d: d.update(fpr=1.5), "fpr"),
    (lambda d: d.update(kind="detektion"), "kind"),
])
def test_bad_detection_presets_name_the_problem(tmp_path, change, fragment):
    data = json.loads(json.dumps(TINY))
    change(data)
    with pytest.raises(AdvShieldError, match=fragment):
        load_preset(_write(tmp_path, data))


class _Identity(Detector):
    def reconstruct(self, x):
        return x.clone()

    def score_reconstruction(self, x, r):
        return (x - r).pow(2).flatten(1).mean(1)


def test_reconstruction_stats_of_a_perfect_and_of_a_blank_reconstructor():
    x = torch.rand(30, 1, 28, 28)
    scores, rec = reconstruction_stats(_Identity(), x, torch.device("cpu"))
    assert torch.all(scores == 0) and rec["ssim_min"] == pytest.approx(1.0, abs=1e-4) and rec["l2_mean"] == 0

    class _Blank(_Identity):
        def reconstruct(self, x):
            return torch.zeros_like(x)

    scores, rec = reconstruction_stats(_Blank(), x, torch.device("cpu"))
    assert rec["l2_mean"] == pytest.approx(float(x.flatten(1).norm(dim=1).mean()), rel=1e-5)
    assert rec["ssim_mean"] < 0.1 and torch.allclose(scores, x.pow(2).flatten(1).mean(1))


def test_inspect_agrees_with_score():
    det = ReconstructionErrorDetector(MagNetAutoencoder(1, activation="relu")).eval()
    x = torch.rand(8, 1, 28, 28)
    with torch.no_grad():
        s, r = det.inspect(x)
        assert torch.allclose(s, det.score(x)) and r.shape == x.shape


def test_tiny_detection_reproduction_end_to_end(tmp_path):
    out = tmp_path / "run"
    proc = run_cli("reproduce", str(_write(tmp_path, TINY)), "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    s = json.loads((out / "reproduction.json").read_text())
    assert s["variant"] == "fast" and set(s["detectors"]) == {"cmag-ssim", "magnet-error"}
    cmag = s["detectors"]["cmag-ssim"]
    m = cmag["attacks"]["fgsm-0.3"]["calibrated"]
    assert m["detection_rate"] >= 0.9 and m["fpr"] <= 0.25 and m["n_adv"] > 30  # FGSM 0.3 is loud
    assert 0 <= s["detectors"]["magnet-error"]["attacks"]["fgsm-0.3"]["calibrated"]["auc"] <= 1
    assert cmag["attacks"]["cw-9"]["params"]["steps"] == 40  # the fast variant's override
    rec = cmag["reconstruction"]
    adv_ssim = cmag["attacks"]["fgsm-0.3"]["reconstruction"]["ssim_mean"]
    assert adv_ssim < rec["clean_test"]["ssim_mean"]  # Table 6's point: adversarial inputs reconstruct worse
    assert "adaptive-joint" in cmag["attacks"] and s["ablation"]["cmag_combine"] == "average"
    assert cmag["health"]["adaptive apgd-ce"]["n"] == 5  # the joint attack's self-checks, on the budget's images
    joint, after = cmag["attacks"]["adaptive-joint"], cmag["health"]["adaptive apgd-ce"]["after_checks"]
    worst = joint["worst_case"]  # the joint attack and its checks' runs, per image on the checked images
    assert worst["checked_images"] == 5 and worst["n"] == joint["n"] and len(after["per_image"]) == 5
    assert after["threat"] == "adaptive" and after["budget"] == {"norm": "linf", "eps": 0.3}
    report = (out / "report.md").read_text()
    assert "Table 3" in report and "Table 6" in report and "Table 7" in report and "(0.442)" in report
    assert "Fig. 4 ablation" in report and "clean FPR" in report and "tiny budget" in report
    assert "Fewer than 500 images because a tiny test." in report
    assert "## Red flags" in report and report.index("## Red flags") < report.index("## Detection")
    # the committed reproduction.json (keys sorted) renders the same report.md and report.html as the run did
    from advshield.reproduce.detection.runner import write_detection_reports
    again = tmp_path / "again"
    shutil.copytree(out / "figures", again / "figures")  # the run's figures, which the HTML inlines
    write_detection_reports(load_preset(_write(tmp_path, TINY)), s, again)
    assert (again / "report.md").read_text() == report
    assert (again / "report.html").read_text() == (out / "report.html").read_text()
    assert "self-checks did not run" not in report and "worst case with the self-checks" in report
    assert {"fig2", "fig3-fgsm-0.3", "fig3-cw-9", "fig5-cw-9"} <= set(s["figures"])  # Fig. 2: legit, CW, FGSM
    for fig in s["figures"].values():
        assert (out / fig).stat().st_size > 1000


def test_report_lists_each_detectors_red_flags_or_says_none_fired():
    from advshield.reproduce.detection.report import _red_flags

    summary = {"detectors": {"cmag-ssim": {"red_flags": []}, "magnet-error": {"red_flags": [
        {"check": "fpr-above-target", "detail": "flags 12.0 % of the 300 clean test images"}]}}}
    lines = _red_flags(summary)
    assert any("**fpr-above-target**: flags 12.0 %" in line for line in lines) and "None fired." not in lines
    summary["detectors"]["magnet-error"]["red_flags"] = []
    assert "None fired." in _red_flags(summary)
    del summary["detectors"]["cmag-ssim"]["red_flags"]
    assert any(line.startswith("Not checked for") for line in _red_flags(summary))


def test_ablation_detectors_red_flags_reach_both_reports(tmp_path):
    """The Fig. 4 ablation's CMAG is calibrated like the others: its failed checks are listed, named, in the
    markdown Red flags and in the HTML page (the committed MNIST run's ablation flagged 11.3 % at 5 % FPR)."""
    from advshield.report.detection import detection_page
    from advshield.reproduce.detection.report import ABLATION_LABEL, _red_flags, ablation_flags

    flag = {"check": "fpr-above-target", "detail": "flags 11.3 % of the 300 clean test images"}
    summary = {"detectors": {"cmag-ssim": {"red_flags": []}}, "ablation": {"red_flags": [flag]}}
    lines = _red_flags(summary)
    assert f"- {ABLATION_LABEL}: **fpr-above-target**: flags 11.3 % of the 300 clean test images" in lines
    assert "None fired." not in lines
    card = {"detector": "cmag-ssim", "target": "a-net", "target_sha256": "0" * 64, "dataset": "mnist",
            "n_test": 10, "clean_accuracy": 1.0, "clean_accuracy_unflagged": 0.9, "clean_fpr": 0.1,
            "fpr_target": 0.05, "attacks": {}, "red_flags": []}
    page = detection_page([card], extra_flags=ablation_flags(summary))
    assert [f["detail"] for f in page["red_flags"]] == [f"{ABLATION_LABEL}: {flag['detail']}"]
    summary["ablation"] = None  # a run without the ablation
    assert "None fired." in _red_flags(summary) and ablation_flags(summary) == []
