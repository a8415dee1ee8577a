"""``--json`` on the long-running commands: stdout holds only the result card (no log, no progress bar)."""

import json

from typer.testing import CliRunner

from advshield.cli import app

runner = CliRunner()


def _only_json(result, card_path):
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)  # the whole of stdout parses: nothing else was printed there
    assert printed == json.loads(card_path.read_text())
    return printed


def test_analyze_propagation_json(tmp_path):
    out = tmp_path / "prop"
    res = runner.invoke(app, ["analyze", "propagation", "--model", "a-net", "--attacks", "fgsm", "--n", "12",
                              "--out", str(out), "--store", str(tmp_path / "store"), "--device", "cpu", "--json"])
    card = _only_json(res, out / "propagation.json")
    assert len(card["ne_d"]) == 1 and card["n"] == 12


def test_detect_json(tmp_path):
    out = tmp_path / "det"
    res = runner.invoke(app, ["detect", "--target", "a-net", "--detector", "magnet-error", "--attacks", "fgsm",
                              "--n-train", "200", "--n-calibration", "60", "--epochs", "1", "--n", "16",
                              "--out", str(out), "--store", str(tmp_path / "store"), "--device", "cpu", "--json"])
    card = _only_json(res, out / "detection.json")
    assert card["fpr_target"] == 0.05 and card["n_test"] == 16 and "fgsm" in json.dumps(card["attacks"])
