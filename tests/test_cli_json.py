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


def test_images_is_n_for_torchrun(tmp_path):
    """``--images`` is ``--n`` (torchrun's own parser takes ``--n`` for ``--nnodes``): attack and evaluate read it."""
    res = runner.invoke(app, ["attack", "--model", "a-net", "--attack", "fgsm", "--images", "7", "--out",
                              str(tmp_path / "store"), "--device", "cpu", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["n"] == 7
    out = tmp_path / "eval"
    res = runner.invoke(app, ["evaluate", "--target", "a-net", "--defense", "bit-depth", "--attacks", "fgsm",
                              "--images", "9", "--store", str(tmp_path / "store2"), "--out", str(out), "--no-figures",
                              "--device", "cpu", "--json"])
    assert res.exit_code == 0, res.output
    card = json.loads(res.stdout)
    # by default oblivious and adaptive, and the AutoAttack ensemble through the defense at FGSM's budget
    assert card["n"] == 9 and [(r["threat"], r["attack"], r["n"]) for r in card["rows"]] == [
        ("white-box", "fgsm", 9), ("adaptive", "fgsm", 9), ("adaptive", "autoattack", 9)]
    worst = card["verdict"]["adaptive_worst_case"]
    assert worst["attacks"] == ["fgsm", "autoattack"]
    # the self-checks (APGD-CE at that budget, doubled, Square) ran on all 9 images and joined the worst case
    assert worst["self_checks"]["images"] == 9 and "apgd-ce 100 steps" in worst["self_checks"]["runs"][0]
    added = "with EOT over 20 draws) was added under adaptive at linf eps"
    assert any(added in n for n in card["notes"])
