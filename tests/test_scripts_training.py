"""The zoo training scripts: a preset's full-recipe restorers (the GPU path) and budgeted classifier training."""

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from advshield.experiment import RunContext
from advshield.reproduce import load_preset
from advshield.reproduce.restoration.recipes import training_config
from conftest import SHARED_DATA

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
ZOO = SCRIPTS.parent / "src" / "advshield" / "zoo"
needs_shared = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="offline data copies not present")


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _script(name: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPTS / name), *args], capture_output=True, text=True, timeout=600)


def test_preset_restorers_refuse_a_target_the_preset_does_not_train(tmp_path):
    proc = _script("train_preset_restorers.py", "cru-net-mnist", "--data-root", str(tmp_path), "--targets", "lenet5")
    assert proc.returncode == 2 and "trains restorers for ['a-net', 'b-net'], not ['lenet5']" in proc.stderr


@needs_shared
def test_preset_restorer_is_trained_with_the_full_recipe(tmp_path):
    shipped = _digest(ZOO / "mnist" / "cru-net-for-a-net.safetensors")
    proc = _script("train_preset_restorers.py", "cru-net-mnist", "--data-root", str(SHARED_DATA), "--targets",
                   "a-net", "--smoke", "--runs", str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-2000:]
    card = json.loads((tmp_path / "cru-net-mnist" / "defenses" / "a-net" / "model.json").read_text())
    p = load_preset("cru-net-mnist")
    full = training_config(p, "a-net", p.full, RunContext(requested_device="cpu")).recipe()
    assert card["recipe"] == dict(full, n_train=70, n_val=14, epochs=1)  # the smoke run's only changes
    assert _digest(ZOO / "mnist" / "cru-net-for-a-net.safetensors") == shipped  # a smoke run ships nothing


@needs_shared
def test_budgeted_zoo_training_writes_its_epochs_note(tmp_path):
    shipped = _digest(ZOO / "mnist" / "m2.safetensors")
    proc = _script("train_zoo.py", "--data-root", str(SHARED_DATA), "--only", "m2", "--smoke", "--epochs", "2",
                   "--budget-s", "1e6", "--runs", str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-2000:]
    card = json.loads((tmp_path / "mnist-m2" / "model.json").read_text())
    # a budget that fits every epoch keeps the recipe's (here --epochs 2), and the card says why
    assert card["epochs"] == 2 and len(card["history"]) == 2
    note = card["epochs_note"]
    assert note.startswith("epochs = 2: the most that fit 1000000 s") and "at most 2" in note
    assert _digest(ZOO / "mnist" / "m2.safetensors") == shipped
