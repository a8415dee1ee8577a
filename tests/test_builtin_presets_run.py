"""Every built-in preset runs end to end: its fast variant, shrunk to a handful of images (issue 27: "the fast
variant of each preset still runs in CI").

`extends` keeps each preset's attacks, targets, restorers, baselines and paper values; the budget is replaced
and the attacks' iteration counts are capped (SHRINK), so every code path of the preset runs in seconds. MNIST presets run on the embedded sample; the others read the offline copies in
``../shared/data`` and are skipped where those are absent. Many minutes of CPU in all (the CIFAR-10 presets
evaluate DenseNet, MobileNet-V2 and the propagation study's seven classifiers): run with
ADVSHIELD_PRESET_RUNS=1; not yet a step of .ci/run (its time on an unloaded host is not measured yet).
"""

import json
import os
import subprocess
import sys

import pytest
import yaml

from advshield.reproduce.core import builtin_presets, load_preset
from conftest import SHARED_DATA

# Per preset kind, the shrunk budget of the fast variant (the AutoAttack ensemble and the health checks are left
# out here: tests/test_reproduce.py runs both through the tiny presets).
RESTORATION = {"n_train": 32, "n_val": 8, "epochs": 1, "batch_size": 16, "n_test": 6, "n_adaptive": 2,
               "n_checks": 0, "zoo_restorer": True, "adaptive_ensemble": False, "ablation_n_train": 30,
               "ablation_epochs": 1}
DETECTION = {"n_train": 300, "n_calibration": 100, "epochs": 1, "magnet_epochs": 2, "gan_epochs": 1, "gan_steps": 5,
             "gan_restarts": 1, "gan_search_lr": 100.0, "gan_lr": 0.0005, "max_rule_n": 50, "n_test": 16,
             "n_adaptive": 3, "adaptive_steps": 5, "n_adaptive_gan": 0, "checks": 0,
             "attack_params": {"cw-9": {"binary_search_steps": 2, "steps": 20},
                               "cw-19": {"binary_search_steps": 2, "steps": 20},
                               "cw-29": {"binary_search_steps": 2, "steps": 20}}}
PROPAGATION = {"n": 8, "n_adaptive": 2, "n_checks": 0}
BUDGETS = {"restoration": RESTORATION, "detection": DETECTION, "propagation": PROPAGATION}
# Caps on the attacks' iteration counts and grids (the preset's own value where smaller).
SHRINK = {"steps": 5, "binary_search_steps": 1, "n_queries": 50, "restarts": 1, "candidates": 3,
          "num_rotations": 2, "num_translations": 2}


def _shrunk(params: dict) -> dict:
    return {k: min(v, SHRINK[k]) if k in SHRINK and isinstance(v, int) else v for k, v in params.items()}


def _overrides(name: str) -> dict:
    """The top-level keys the shrunk variant replaces: the budget, and the attacks with capped iterations."""
    preset = load_preset(name)
    out = {"extends": name, "fast": dict(BUDGETS[preset.kind])}
    if preset.kind == "restoration":
        for key in ("attacks", "train_attacks"):
            entries = {k: v.model_dump(mode="json", exclude_defaults=True) for k, v in getattr(preset, key).items()}
            for entry in entries.values():
                for part in ("params", "adaptive_params"):
                    if part in entry:
                        entry[part] = _shrunk(entry[part])
            if entries:
                out[key] = entries
    elif preset.kind == "detection":  # only the preset's own CW columns
        out["fast"]["attack_params"] = {k: v for k, v in DETECTION["attack_params"].items() if k in preset.attacks}
    else:
        adaptive = preset.adaptive.model_dump(mode="json", exclude_defaults=True)
        adaptive["attacks"] = {k: _shrunk(v) for k, v in adaptive.get("attacks", {}).items()}
        adaptive["ensemble"] = dict(adaptive.get("ensemble", {}), version="fast")
        out["adaptive"] = adaptive
    return out


def _kind(name: str) -> str:
    return load_preset(name).kind


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("ADVSHIELD_PRESET_RUNS"),
                    reason="many minutes of CPU: run with ADVSHIELD_PRESET_RUNS=1")
@pytest.mark.parametrize("name", sorted(builtin_presets()))
def test_each_builtin_preset_runs_its_shrunk_fast_variant(name, tmp_path):
    dataset = str(getattr(load_preset(name).dataset, "value", load_preset(name).dataset))
    if dataset != "mnist" and not SHARED_DATA.is_dir():
        pytest.skip(f"{name} reads {dataset} from the offline copies, not present here")
    (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(_overrides(name)))
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "advshield", "reproduce", str(tmp_path / f"{name}.yaml"), "--out", str(out),
           "--device", "cpu"]
    if dataset != "mnist":
        cmd += ["--data-root", str(SHARED_DATA)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((out / "reproduction.json").read_text())
    assert summary["variant"] == "fast" and summary["preset"]["name"] == load_preset(name).name
    report = out / ("README.md" if _kind(name) == "propagation" else "report.md")
    text = report.read_text()
    assert text.startswith("# ") and "Red flags" in text.split("\n## ", 3)[1], "Red flags come first"
    if _kind(name) == "restoration":  # every evaluation block of the preset was measured
        assert len(summary["evaluations"]) == len(load_preset(name).evaluations)
    elif _kind(name) == "detection":  # every detector was trained, calibrated and attacked
        assert set(summary["detectors"]) == set(load_preset(name).detectors)
