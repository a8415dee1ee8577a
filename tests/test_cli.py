"""The command line, run as a user runs it (a subprocess) where exit codes and stderr matter."""

import json
import pickle
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from advshield.cli import app
from conftest import cifar_python_batch, make_cifar_python, make_mnist_root, write_idx

runner = CliRunner()


def run_cli(*args, env_extra=None, cwd=None):
    import os

    env = dict(os.environ, **(env_extra or {}))
    env.pop("ADVSHIELD_DATA", None)
    return subprocess.run([sys.executable, "-m", "advshield", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=300)


def assert_one_line_error(proc, *fragments):
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    for f in fragments:
        assert f in lines[0]


def test_help_lists_commands():
    proc = run_cli("--help")
    assert proc.returncode == 0
    for cmd in ("train-target", "models", "data"):
        assert cmd in proc.stdout


def test_missing_data_root_is_one_line(tmp_path):
    assert_one_line_error(run_cli("data", "info", "--dataset", "cifar10", "--data-root", str(tmp_path / "none")),
                          "does not exist", "cifar-10-batches-py")


def test_no_data_root_for_cifar_is_one_line():
    assert_one_line_error(run_cli("data", "info", "--dataset", "cifar10"), "no data root", "ADVSHIELD_DATA")


def test_truncated_idx_is_one_line(tmp_path):
    root = make_mnist_root(tmp_path, 40, 10)
    p = root / "mnist" / "train-images-idx3-ubyte.gz"
    p.write_bytes(p.read_bytes()[:-40])
    assert_one_line_error(run_cli("data", "info", "--data-root", str(root)), "train-images-idx3-ubyte.gz",
                          "truncated or corrupted")


def test_pickle_with_foreign_object_is_one_line(tmp_path):
    root = make_cifar_python(tmp_path, 4)
    batch = cifar_python_batch(4, 0)
    batch[b"evil"] = subprocess.Popen  # any non-data global
    (root / "cifar10" / "cifar-10-batches-py" / "data_batch_1").write_bytes(pickle.dumps(batch, protocol=2))
    assert_one_line_error(run_cli("data", "info", "--dataset", "cifar10", "--data-root", str(root)),
                          "forbidden object", "Popen")


def test_invalid_option_is_one_line():
    assert_one_line_error(run_cli("train-target", "--optimizer", "rmsprop", "--epochs", "1"), "optimizer")


def test_unknown_model_is_one_line():
    assert_one_line_error(run_cli("train-target", "--model", "lenet7"), "unknown model 'lenet7'")


def test_train_then_list_and_eval(tmp_path):
    root = make_mnist_root(tmp_path / "data", 200, 50)
    out = tmp_path / "run"
    res = runner.invoke(app, ["train-target", "--data-root", str(root), "--model", "m2", "--epochs", "1",
                              "--out", str(out), "--device", "cpu", "--json"])
    assert res.exit_code == 0, res.output
    card = json.loads(res.output)
    assert card["architecture"] == "m2" and card["test_set"]["n"] == 50
    assert (out / "model.safetensors").exists() and (out / "last.json").exists()
    listed = runner.invoke(app, ["models", "list", "--dir", str(tmp_path), "--json"])
    names = [c["architecture"] for c in json.loads(listed.output)["checkpoints"]]
    assert "m2" in names and "a-net" in json.loads(listed.output)["architectures"]
    ev = runner.invoke(app, ["models", "eval", str(out / "model.safetensors"), "--data-root", str(root), "--json"])
    assert ev.exit_code == 0, ev.output
    assert json.loads(ev.output)["accuracy"] == pytest.approx(card["test_accuracy"])


def test_main_job_on_embedded_sample(tmp_path):
    """The README's main job: no data root, embedded MNIST sample, prints the test accuracy."""
    proc = run_cli("train-target", "--model", "a-net", "--epochs", "2", "--n-train", "2000", "--out",
                   str(tmp_path / "run"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "embedded MNIST sample" in proc.stderr and "test accuracy:" in proc.stdout
    acc = float(proc.stdout.split("test accuracy:")[1].split()[0])
    assert acc > 0.7  # chance is 0.1


def test_data_info_json(tmp_path):
    root = make_mnist_root(tmp_path, 30, 10)
    res = runner.invoke(app, ["data", "info", "--data-root", str(root), "--json"])
    info = json.loads(res.output)
    assert info["train"]["n"] == 30 and info["test"]["n"] == 10 and info["classes"][3] == "3"
