"""Detectors: calibration at a stated FPR, metrics that cannot hide a flag-everything detector, MagNet."""

import math

import numpy as np
import pytest
import torch

from advshield.attacks import Pipeline, create_attack, run_attack
from advshield.data import load_dataset
from advshield.detectors import (DETECTORS, Detector, DivergenceDetector, MagNetAutoencoder, MagNetReformer,
                                 ReconstructionErrorDetector, train_autoencoder)
from advshield.metrics import detection_metrics
from advshield.errors import InputError
from advshield.zoo import load_pretrained


class Fixed(Detector):
    def score(self, x):
        return x.flatten(1).mean(1)


def test_fpr_calibration_and_uncalibrated_use():
    det = Fixed()
    with pytest.raises(InputError, match="not calibrated"):
        det.flag(torch.rand(2, 1, 4, 4))
    clean = torch.arange(100, dtype=torch.float32) / 100
    t = det.calibrate_fpr(clean, 0.05)
    assert float((clean > t).float().mean()) <= 0.05 and float((clean >= t).float().mean()) > 0.0
    assert det.calibrate_max(clean) == pytest.approx(0.99) and det.calibration["rule"] == "max"
    with pytest.raises(InputError, match="fpr"):
        det.calibrate_fpr(clean, 1.0)


def test_metrics_expose_a_detector_that_flags_everything():
    torch.manual_seed(0)  # the bounds below hold for 200 draws with high probability, not surely
    clean, adv = torch.rand(200), torch.rand(200) + 0.5
    m = detection_metrics(clean, adv, threshold=-1.0)  # flags everything
    assert m["detection_rate"] == 1.0 and m["fpr"] == 1.0
    good = detection_metrics(clean, adv, threshold=1.0)
    assert good["fpr"] == 0.0 and 0.4 < good["detection_rate"] < 0.6
    assert 0.85 < good["auc"] < 0.9  # P(U+0.5 > U) = 7/8
    perfect = detection_metrics(torch.zeros(100), torch.ones(100), 0.5)
    assert perfect["auc"] == 1.0 and perfect["tpr_at_1pct_fpr"] == 1.0
    assert math.isclose(detection_metrics(clean, clean, 0.5)["auc"], 0.5)


def test_registry_lists_magnet():
    assert {"magnet-error", "magnet-divergence"} <= set(DETECTORS.names())


@pytest.mark.slow
def test_magnet_detects_fgsm_and_its_reformer_restores():
    torch.manual_seed(0)
    train = load_dataset("mnist", "train")
    x_train = train.tensors(slice(0, 2000))[0]
    ae = MagNetAutoencoder(activation="relu")  # the paper's sigmoids need its 100 epochs
    losses = train_autoencoder(ae, x_train, epochs=8, batch_size=128, lr=3e-3)
    assert losses[-1] < losses[0]
    ae.eval()
    x_val = train.tensors(slice(3000, 3500))[0]
    x, y = load_dataset("mnist", "test").tensors(slice(0, 300))
    model, _ = load_pretrained("a-net")
    adv = run_attack(create_attack("fgsm", eps=0.3), Pipeline(model), x, y, batch_size=300, seed=0).adv
    det = ReconstructionErrorDetector(ae)
    with torch.no_grad():
        det.calibrate_fpr(det.score(x_val), 0.05)
        m = detection_metrics(det.score(x), det.score(adv), det.threshold)
    assert m["fpr"] <= 0.1 and m["detection_rate"] >= 0.95 and m["auc"] >= 0.97  # FGSM 0.3 is loud
    div = DivergenceDetector(ae, model)
    with torch.no_grad():
        assert float(div.score(adv).mean()) > float(div.score(x).mean())
        reformed = MagNetReformer(ae)(adv)
        assert float((model(reformed).argmax(1) == y).float().mean()) > float((model(adv).argmax(1) == y)
                                                                               .float().mean())
    assert np.isfinite(m["tpr_at_1pct_fpr"])


def test_cmag_structure_and_ablation_switch():
    from advshield.detectors import CMAG, CMAGDetector

    model, _ = load_pretrained("a-net")
    cmag = CMAG(model)
    assert cmag.layer == model.last_conv
    x = torch.rand(3, 1, 28, 28)
    a, b = cmag.branches(x)
    assert a.shape == b.shape == x.shape and cmag(x).shape == x.shape
    assert not any(p.requires_grad for p in cmag.classifier.parameters())  # the target stays frozen
    avg = CMAG(model, combine="average")
    avg.load_state_dict(cmag.state_dict())
    assert not torch.allclose(avg(x), cmag(x))  # Fig. 4: attention (Hadamard) vs weighted average
    with pytest.raises(ValueError, match="criterion"):
        CMAGDetector(cmag, "l3")


@pytest.mark.slow
def test_cmag_training_and_fgsm_detection():
    from advshield.detectors import CMAG, CMAGDetector, train_cmag

    torch.manual_seed(0)
    train = load_dataset("mnist", "train")
    model, _ = load_pretrained("a-net")
    cmag = CMAG(model)
    history = train_cmag(cmag, train.tensors(slice(0, 2000))[0], epochs=4, batch_size=100)
    assert history["fmr+lr"][-1] < history["fmr+lr"][0] and history["gr"][-1] < history["gr"][0]
    x, y = load_dataset("mnist", "test").tensors(slice(0, 200))
    adv = run_attack(create_attack("fgsm", eps=0.1), Pipeline(model), x, y, batch_size=200, seed=0).adv
    det = CMAGDetector(cmag, "ssim")
    with torch.no_grad():
        det.calibrate_fpr(det.score(train.tensors(slice(2000, 2500))[0]), 0.05)
        m = detection_metrics(det.score(x), det.score(adv), det.threshold)
    assert m["fpr"] <= 0.1 and m["detection_rate"] >= 0.9


@pytest.mark.slow
def test_detect_cli_writes_a_card_with_fpr_beside_detection(tmp_path):
    import json

    from test_cli import assert_one_line_error, run_cli

    r = run_cli("detect", "--target", "a-net", "--detector", "magnet-error", "--attacks", "fgsm,fgsm-0.1=fgsm",
                "--attack-param", "fgsm.eps=0.3", "--attack-param", "fgsm-0.1.eps=0.1", "--n-train", "2000", "--n-calibration", "300", "--epochs", "8",
                "--n", "200", "--store", str(tmp_path / "store"), "--out", str(tmp_path / "out"),
                "--adaptive", "50", "--adaptive-steps", "30")
    assert r.returncode == 0, r.stderr
    card = json.loads((tmp_path / "out" / "detection.json").read_text())
    m = card["attacks"]["fgsm"]["calibrated"]
    weak = card["attacks"]["fgsm-0.1"]  # a second intensity of the same attack, under its own label
    assert weak["attack"] == "fgsm" and weak["params"]["eps"] == 0.1 and card["attacks"]["fgsm"]["params"]["eps"] == 0.3
    assert weak["calibrated"]["auc"] <= m["auc"] + 1e-9
    joint = card["attacks"]["adaptive-joint"]
    assert joint["n"] == 50 and joint["params"]["eps"] == 0.3 and joint["n_clean_correct"] >= 45
    assert joint["detection_rate"] < m["detection_rate"] - 0.3  # the detector-aware attack gets through
    # its self-checks (--checks, default 100, capped at --adaptive), judged like its row: the base run is the row's
    # own attack on the same images, so it leaves the row's robust accuracy
    health = card["health"]["adaptive apgd-ce"]
    assert health["n"] == 50 and [c["name"] for c in health["checks"]] == [
        "convergence", "gradient-free", "unbounded", "beats-noise", "gradients"]
    assert health["checks"][0]["numbers"]["accuracy"] == pytest.approx(joint["members"][0]["robust_accuracy"], abs=1e-9)
    assert {"health: " + c["name"] for c in health["failures"]} <= {f["check"] for f in card["red_flags"]}
    assert {"detection_rate", "fpr", "auc", "tpr_at_1pct_fpr", "tpr_at_5pct_fpr"} <= set(m)
    assert m["fpr"] <= 0.15 and m["auc"] > 0.9
    assert card["attacks"]["fgsm"]["paper_threshold"]["fpr"] <= m["fpr"]  # the max rule is stricter
    saved = tmp_path / "out" / "detector.safetensors"
    assert card["checkpoint"] == saved.name and saved.stat().st_size > 0
    r = run_cli("detect", "--target", "a-net", "--detector", "magnet-error", "--attacks", "fgsm", "--attack-param",
                "fgsm.eps=0.3", "--n-train", "2000", "--n-calibration", "300", "--n", "200", "--checkpoint",
                str(saved), "--store", str(tmp_path / "store"), "--out", str(tmp_path / "reused"))
    assert r.returncode == 0, r.stderr
    reused = json.loads((tmp_path / "reused" / "detection.json").read_text())  # no training, same detector
    assert reused["history"]["loaded_from"] == str(saved) and reused["threshold"] == pytest.approx(card["threshold"])
    assert reused["attacks"]["fgsm"]["calibrated"]["auc"] == pytest.approx(m["auc"])
    r = run_cli("detect", "--target", "a-net", "--detector", "defense-gan", "--attacks", "fgsm", "--attack-param",
                "fgsm.eps=0.3", "--n-train", "300", "--n-calibration", "50", "--epochs", "1", "--n", "20",
                "--gan-steps", "5", "--gan-restarts", "2", "--max-rule-n", "40", "--store", str(tmp_path / "store"),
                "--out", str(tmp_path / "gan"))
    assert r.returncode == 0, r.stderr
    card = json.loads((tmp_path / "gan" / "detection.json").read_text())
    assert card["projection"]["steps"] == 5 and card["projection"]["restarts"] == 2
    assert card["max_rule_images"] == 40 and card["n_train"] == 300
    assert len(card["history"]["wasserstein"]) == 1  # 300 images x 1 epoch / 64 = 4 generator iterations
    assert_one_line_error(run_cli("detect", "--target", "a-net", "--detector", "nope", "--n", "10",
                                  "--n-train", "10", "--n-calibration", "10", "--epochs", "1",
                                  "--out", str(tmp_path / "x")), "unknown detector")


def test_cmag_builds_on_the_classifiers_device():
    # A classifier already on another device (here "meta": no memory, no CPU) must not meet a CPU probe tensor:
    # on a GPU, loading a CMAG checkpoint for a classifier on cuda failed with a device mismatch.
    from advshield.detectors.factory import make_detector
    from advshield.models import create_model

    det = make_detector("cmag-ssim", create_model("a-net").to("meta"), (1, 28, 28))
    assert type(det).__name__ == "CMAGDetector"
