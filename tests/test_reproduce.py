import sys
from pathlib import Path

import pytest
import yaml

from advshield.errors import AdvShieldError
from advshield.reproduce import builtin_presets, load_preset, reproduce

sys.path.insert(0, str(Path(__file__).parent))
from test_cli import assert_one_line_error, run_cli  # noqa: E402

TINY = {
    "name": "tiny", "title": "Tiny CRU-Net", "paper": "cru-net.txt", "dataset": "mnist",
    "defense": "cru-net", "defense_params": {"width": 8}, "train_for": ["a-net"],
    "attacks": {"fgsm": {"label": "FGSM", "params": {"eps": 0.3}},
                "deepfool": {"label": "DFA", "params": {"steps": 20, "candidates": 3}, "max_test": 20}},
    "adaptive_attacks": ["fgsm"],
    "training": {"batch_size": 32, "clean_proportion": 0.5},
    "evaluations": [{"target": "a-net", "defense_of": "a-net", "threats": ["white-box", "transfer:b-net", "adaptive"]}],
    "full": {"n_train": 1000, "n_val": 100, "epochs": 2, "n_test": None, "n_adaptive": 100},
    "fast": {"n_train": 150, "n_val": 30, "epochs": 1, "n_test": 40, "n_adaptive": 20},
    "paper_results": [{"table": "Table 2", "target": "a-net", "threat": "white-box", "metric": "restored_accuracy",
                       "values": {"fgsm": 0.9935}}],
    "notes": ["a note for the report"],
}


def _write(tmp_path, data) -> Path:
    p = tmp_path / "preset.yaml"
    p.write_text(yaml.safe_dump(data, sort_keys=False))
    return p


def test_builtin_presets_validate():
    names = set(builtin_presets())
    assert {"cru-net-mnist", "cru-net-cifar10", "dir-mnist", "dir-cifar10"} <= names
    for n in names:
        p = load_preset(n)
        assert p.fast.n_train < p.full.n_train


@pytest.mark.parametrize("change, fragment", [
    (lambda d: d.update(epochz=3), "epochz"),
    (lambda d: d["full"].update(epochs=0), "full.epochs"),
    (lambda d: d["attacks"]["fgsm"]["params"].update(eps=-1), "attack fgsm"),
    (lambda d: d.update(defense="median"), "not a trainable restorer"),
    (lambda d: d["evaluations"][0].update(threats=["transfer"]), "bad threat"),
    (lambda d: d.update(adaptive_attacks=["cw"]), "not in attacks"),
    (lambda d: d["paper_results"][0].update(metric="accuracy"), "paper_results.0.metric"),
])
def test_bad_presets_name_the_problem(tmp_path, change, fragment):
    import copy

    data = copy.deepcopy(TINY)
    change(data)
    with pytest.raises(AdvShieldError, match="invalid preset") as exc:
        load_preset(_write(tmp_path, data))
    assert fragment in str(exc.value)


def test_unknown_preset_and_cli_error(tmp_path):
    with pytest.raises(AdvShieldError, match="built-in presets"):
        load_preset("no-such-preset")
    bad = dict(TINY, epochz=1)
    assert_one_line_error(run_cli("reproduce", str(_write(tmp_path, bad))), "epochz")


@pytest.mark.slow
def test_tiny_reproduction_end_to_end(tmp_path):
    preset = load_preset(_write(tmp_path, TINY))
    summary = reproduce(preset, tmp_path / "out", log=lambda s: None)
    report = (tmp_path / "out" / "report.md").read_text()
    assert "(0.9935)" in report and "a note for the report" in report and "## Adaptive attacks" in report
    [ev] = summary["evaluations"]
    rows = ev["oblivious"]["rows"]
    assert [(r["threat"], r["attack"]) for r in rows] == [
        ("white-box", "fgsm"), ("white-box", "deepfool"), ("transfer:b-net", "fgsm"), ("transfer:b-net", "deepfool")]
    assert rows[0]["n"] == 40 and rows[1]["n"] == 20  # max_test caps DeepFool
    assert [r["threat"] for r in ev["adaptive"]["rows"]] == ["white-box", "adaptive"]
    assert (tmp_path / "out" / "defenses" / "a-net" / "model.safetensors").exists()
    for f in ev["oblivious"]["figures"]:
        assert (tmp_path / "out" / ev["folder"] / f).exists()
