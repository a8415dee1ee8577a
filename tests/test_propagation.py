"""Perturbation-propagation analysis: distances, hooks on any module, streaming, CLI."""

import json

import pytest
import torch
from torch import nn

from advshield.analysis import FeatureTaps, distances, propagation
from advshield.analysis.propagation import batched
from advshield.errors import InputError
from test_cli import run_cli


def test_distances_follow_the_papers_definitions():
    ref = torch.tensor([[3.0, 4.0, 0.0, 0.0]])
    assert [float(t) for t in distances(ref, ref)] == [0.0, pytest.approx(0.0, abs=1e-7)]
    ne, cos = distances(ref, torch.tensor([[0.0, 0.0, 3.0, 4.0]]))  # orthogonal, |diff| = sqrt(50)
    assert float(ne) == pytest.approx(50 ** 0.5 / 4) and float(cos) == pytest.approx(1.0)
    ne, cos = distances(ref, 2 * ref)  # same direction: COS-D 0, NE-D |ref| / n
    assert float(ne) == pytest.approx(5.0 / 4) and float(cos) == pytest.approx(0.0, abs=1e-6)


class UserNet(nn.Module):
    """Any nn.Module: no registry, no named stages."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1), nn.ReLU())
        self.fc = nn.Linear(4 * 8 * 8, 3)

    def forward(self, x):
        return self.fc(self.body(x).flatten(1))


def test_user_model_with_layer_names_and_denoiser():
    torch.manual_seed(0)
    net = UserNet()
    x = torch.rand(10, 1, 8, 8)
    y = net(x).argmax(1)
    small, big = (x + 0.01).clamp(0, 1), (x + 0.3 * torch.sign(torch.randn_like(x))).clamp(0, 1)
    layers = ["body.1", "body.3", "fc"]
    identity = nn.Identity()
    res = propagation(net, layers, batched(x, {"small": small, "big": big}, y, 4), denoiser=identity)
    assert res.n == 10 and res.layers == layers
    assert set(res.ne_d) == {"small", "big", "small+denoiser", "big+denoiser", "clean+denoiser"}
    for i in range(3):  # the bigger perturbation moves every layer further
        assert res.ne_d["big"][i] > res.ne_d["small"][i] > 0
    assert res.ne_d["big+denoiser"] == pytest.approx(res.ne_d["big"])  # identity denoiser changes nothing
    assert res.ne_d["clean+denoiser"] == pytest.approx([0.0] * 3, abs=1e-9)
    assert res.accuracy["clean"] == 1.0 and res.mse["big"] > res.mse["small"]
    # Streaming: the result does not depend on the batch size.
    res1 = propagation(net, layers, batched(x, {"small": small, "big": big}, y, 10))
    assert res1.ne_d["big"] == pytest.approx(res.ne_d["big"], rel=1e-5)


def test_unknown_layer_is_named():
    with pytest.raises(InputError, match="unknown layer 'nope'"):
        FeatureTaps(UserNet(), ["nope"])


@pytest.mark.slow
def test_cli_on_zoo_model_with_restorer(tmp_path):
    r = run_cli("analyze", "propagation", "--model", "a-net", "--attacks", "fgsm,bim", "--attack-param",
                "fgsm.eps=0.2", "--attack-param", "bim.eps=0.2", "--denoiser", "cru-net-for-a-net", "--n", "40",
                "--store", str(tmp_path / "store"), "--out", str(tmp_path / "out"))
    assert r.returncode == 0, r.stderr
    card = json.loads((tmp_path / "out" / "propagation.json").read_text())
    assert card["n"] == 40 and card["layers"][-1] == "logits"
    # The restorer brings the logits of adversarial images back towards the clean ones.
    assert card["ne_d"]["fgsm+cru-net"][-1] < card["ne_d"]["fgsm"][-1]
    assert card["accuracy"]["fgsm+cru-net"] > card["accuracy"]["fgsm"]
    assert (tmp_path / "out" / "propagation.png").stat().st_size > 1000
    assert "NE-D" in (tmp_path / "out" / "propagation.md").read_text()
    r = run_cli("analyze", "propagation", "--model", "a-net", "--attacks", "fgsm", "--attack-param", "fgsm.eps=0.2",
                "--denoiser", "none", "--n", "40", "--store", str(tmp_path / "store"), "--out", str(tmp_path / "bare"))
    assert r.returncode == 0, r.stderr
    bare = json.loads((tmp_path / "bare" / "propagation.json").read_text())
    assert set(bare["ne_d"]) == {"fgsm"} and bare["ne_d"]["fgsm"] == card["ne_d"]["fgsm"]


def test_observation_ratios():
    from advshield.analysis.report import observation

    card = {"ne_d": {"s": [0.01, 0.02, 1.0]}, "cos_d": {"s": [0.1, 0.3, 0.05]}, "sizes": [1000, 100, 10]}
    o = observation(card, "s")
    assert o["ne_d_ratio"] == pytest.approx(50) and o["ne_d_jumps"]
    assert o["rms_ratio"] == pytest.approx(10 ** 0.5 / (0.01 * 1000 ** 0.5)) and o["rms_jumps"]
    assert o["cos_d_ratio"] == pytest.approx(1 / 6) and o["cos_d_fades"]
    card["cos_d"]["s"] = [0.1, 0.3, 0.6]
    assert not observation(card, "s")["cos_d_fades"]


def test_several_denoisers_are_measured_side_by_side():
    torch.manual_seed(0)
    net, x = UserNet(), torch.rand(6, 1, 8, 8)
    y = net(x).argmax(1)
    adv = (x + 0.2 * torch.sign(torch.randn_like(x))).clamp(0, 1)
    blur = nn.AvgPool2d(3, 1, 1)
    res = propagation(net, ["fc"], batched(x, {"a": adv}, y, 3), denoiser={"id": nn.Identity(), "blur": blur})
    assert set(res.ne_d) == {"a", "a+id", "a+blur", "clean+id", "clean+blur"}
    assert res.ne_d["a+id"] == pytest.approx(res.ne_d["a"]) and res.ne_d["clean+blur"][0] > 0


@pytest.mark.slow
def test_cli_paper_settings_on_a_reference_with_a_substitute(tmp_path):
    """Table 2 on MNIST: crafted on B-net, stopped on B-net (v1) or on the reference A-net (v2, MI-FGSM)."""
    args = ("analyze", "propagation", "--attacks", "paper", "--eps", "0.3", "--substitute", "b-net",
            "--reference", "a-net", "--n", "40", "--store", str(tmp_path / "store"))
    r = run_cli(*args, "--model", "a-net", "--out", str(tmp_path / "a"))
    assert r.returncode == 0, r.stderr
    card = json.loads((tmp_path / "a" / "propagation.json").read_text())
    sets = card["settings"]
    assert list(sets) == ["fgsm-v1", "fgsm-v2", "ifgsm-v1", "ifgsm-v2", "mifgsm"]
    assert sets["fgsm-v1"]["threat"] == "transfer" and sets["mifgsm"]["threat"] == "transfer-feedback"
    for v in ("fgsm", "ifgsm"):  # v2 goes on until the reference is fooled: larger, and fools it more
        assert sets[f"{v}-v2"]["mean_linf"] > sets[f"{v}-v1"]["mean_linf"]
        assert sets[f"{v}-v2"]["reference_accuracy"] < sets[f"{v}-v1"]["reference_accuracy"]
    # Another model analysed on the very same sets (found in the store, not crafted again).
    r = run_cli(*args, "--model", "lenet5", "--out", str(tmp_path / "l"))
    assert r.returncode == 0, r.stderr
    other = json.loads((tmp_path / "l" / "propagation.json").read_text())
    assert {k: s["set"] for k, s in other["settings"].items()} == {k: s["set"] for k, s in sets.items()}
    assert "found" in r.stdout and "crafted" not in r.stdout
    r = run_cli("analyze", "propagation-report", str(tmp_path / "a"), str(tmp_path / "l"), "--out",
                str(tmp_path / "report"))
    assert r.returncode == 0, r.stderr
    text = (tmp_path / "report" / "README.md").read_text()
    assert "Table 5" in text and "| a | a-net |" in text and "| l | lenet5 |" in text and "![l](l/propagation.png)" in text
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert set(summary["runs"]) == {"a", "l"} and "fgsm-v2" in summary["runs"]["l"]
    r = run_cli("analyze", "propagation", "--model", "a-net", "--attacks", "paper", "--n", "4")
    assert r.returncode != 0 and "--substitute" in r.stderr


def test_shipped_denoiser_config_uses_the_papers_sets():
    from pathlib import Path

    from advshield.analysis.settings import PAPER_PROPORTIONS, paper_settings
    from advshield.config_file import load_yaml_model
    from advshield.training.defense_config import DefenseTrainConfig

    path = Path(__file__).resolve().parents[1] / "configs" / "propagation-unet-cifar10.yaml"
    cfg = load_yaml_model(path, DefenseTrainConfig, "training config")
    got = [(m.key, m.name, m.params, m.threat, m.proportion) for m in cfg.attacks]
    assert got == [(s.label, s.attack, s.params, s.threat, PAPER_PROPORTIONS[s.label]) for s in paper_settings()]
