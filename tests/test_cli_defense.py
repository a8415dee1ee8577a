import json
import sys
from pathlib import Path

from typer.testing import CliRunner

from advshield.cli import app

sys.path.insert(0, str(Path(__file__).parent))
from test_cli import assert_one_line_error, run_cli  # noqa: E402

runner = CliRunner()


def test_train_defense_then_evaluate(tmp_path):
    store = str(tmp_path / "store")
    res = runner.invoke(app, ["train-defense", "--defense", "unet", "--target", "a-net", "--attacks", "fgsm,clean",
                              "--proportions", "3,1", "--attack-param", "fgsm.eps=0.3", "--defense-param", "width=8",
                              "--n-train", "120", "--n-val", "40", "--epochs", "1", "--batch-size", "40",
                              "--out", str(tmp_path / "d"), "--store", store, "--json"])
    assert res.exit_code == 0, res.output
    card = json.loads(res.stdout)
    assert card["architecture"] == "unet" and card["train_pairs"] == {"fgsm": 90, "clean": 30}
    assert card["recipe"]["attacks"][0]["params"] == {"eps": 0.3}
    ev = runner.invoke(app, ["evaluate", "--target", "a-net", "--defense", str(tmp_path / "d" / "model.safetensors"),
                             "--attacks", "fgsm", "--attack-param", "fgsm.eps=0.3", "--threat", "white-box",
                             "--threat", "transfer:b-net", "--n", "30", "--out", str(tmp_path / "e"), "--store", store,
                             "--no-figures", "--json"])
    assert ev.exit_code == 0, ev.output
    rows = json.loads(ev.stdout)["rows"]
    assert [r["threat"] for r in rows] == ["white-box", "transfer:b-net"] and rows[0]["n"] == 30
    assert (tmp_path / "e" / "results.csv").exists()


def test_defense_cli_errors_are_one_line(tmp_path):
    assert_one_line_error(run_cli("train-defense", "--attacks", "fgsm", "--attack-param", "pgd.steps=3"),
                          "not among the attacks")
    assert_one_line_error(run_cli("train-defense", "--defense", "median"), "not a trainable restorer")
    assert_one_line_error(run_cli("evaluate", "--target", "a-net", "--defense", "cru-net", "--attacks", "fgsm"),
                          "must be trained first")
    assert_one_line_error(run_cli("evaluate", "--target", "a-net", "--defense", "median", "--threat", "transfer"),
                          "transfer:<substitute>")


def test_train_defense_from_a_yaml_config(tmp_path):
    config = tmp_path / "mix.yaml"
    config.write_text("defense: unet\ndefense_params: {width: 4}\ntarget: a-net\nsubstitute: b-net\n"
                      "attacks:\n"
                      "  - {name: fgsm, label: fgsm-v1, params: {eps: 0.3, search: 10}, threat: transfer}\n"
                      "  - {name: fgsm, label: fgsm-v2, params: {eps: 0.3, search: 10}, threat: transfer-feedback}\n"
                      "n_train: 60\nn_val: 20\nepochs: 1\nbatch_size: 20\n")
    r = run_cli("train-defense", "--config", str(config), "--out", str(tmp_path / "run"), "--store",
                str(tmp_path / "store"), "--json")
    assert r.returncode == 0, r.stderr
    card = json.loads(r.stdout)
    assert card["train_pairs"] == {"fgsm-v1": 30, "fgsm-v2": 30} and card["recipe"]["substitute"] == "b-net"
    assert card["recipe"]["attacks"][1]["threat"] == "transfer-feedback"
    config.write_text("defense: unet\natacks: []\n")
    r = run_cli("train-defense", "--config", str(config), "--out", str(tmp_path / "run2"))
    assert r.returncode != 0 and "atacks" in r.stderr


def test_attack_takes_the_defense_parameters(tmp_path):
    """--defense-param reaches the preprocessing defense: behind a 1-bit and an 8-bit squeezer the same oblivious
    set (crafted on the classifier alone, stored once) scores differently, an adaptive set is crafted per defense,
    and a parameter without a defense fails in one line."""
    out = {}
    for threat in ("white-box", "adaptive"):
        for bits in (1, 8):
            res = runner.invoke(app, ["attack", "--model", "a-net", "--attack", "fgsm", "--eps", "0.15", "--images",
                                      "40", "--threat", threat, "--no-health", "--defense", "squeeze",
                                      "--defense-param", f"bits={bits}", "--defense-param", "size=2",
                                      "--out", str(tmp_path / "store"), "--json"])
            assert res.exit_code == 0, res.output
            out[threat, bits] = json.loads(res.stdout)
    assert out["white-box", 8]["cached"] and out["white-box", 1]["adv_accuracy"] != out["white-box", 8]["adv_accuracy"]
    assert out["adaptive", 1]["path"] != out["adaptive", 8]["path"] and not out["adaptive", 8]["cached"]
    assert out["adaptive", 1]["defense"] == "squeeze" and out["adaptive", 1]["defense_params"] == {"bits": 1, "size": 2}
    for extra in ([], ["--defense", "cru-net-for-a-net"]):  # no defense, or a trained restorer: nothing to set
        assert_one_line_error(run_cli("attack", "--model", "a-net", "--attack", "fgsm", *extra, "--defense-param",
                                      "bits=2"), "--defense-param sets a registered preprocessing defense")
