"""Crash safety: a kill or a full disk leaves no state that breaks a later run, and no litter."""

import errno
import json
import logging
import os
import subprocess
import sys
import tarfile

import numpy as np
import pytest
import torch

from advshield import adversarial, io
from advshield.adversarial import AdversarialSpec, generate_adversarial_set, load_adversarial_set
from advshield.attacks import FGSM, Pipeline
from advshield.checkpoint import load_tensors, save_tensors
from advshield.data import cache, load_dataset
from advshield.errors import CheckpointError, StorageError
from advshield.zoo import load_pretrained
from conftest import make_cifar_python


def _litter(folder):
    return sorted(p.name for p in folder.rglob("*") if ".tmp-" in p.name)


def _disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_full_disk_leaves_no_temporary_and_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(io.os, "fsync", _disk_full)
    for attempt in range(3):  # a retry must not add one more .tmp file each time
        with pytest.raises(StorageError, match="No space left on device; free some space"):
            save_tensors(tmp_path / "w.safetensors", {"w": torch.zeros(3)}, {"architecture": "x"})
    assert list(tmp_path.iterdir()) == []


def test_failed_write_keeps_the_previous_file(tmp_path, monkeypatch):
    io.atomic_write_json(tmp_path / "a.json", {"v": 1})
    monkeypatch.setattr(io.os, "replace", _disk_full)
    with pytest.raises(StorageError):
        io.atomic_write_json(tmp_path / "a.json", {"v": 2})
    assert json.loads((tmp_path / "a.json").read_text()) == {"v": 1} and _litter(tmp_path) == []


def test_temporaries_of_killed_processes_are_swept(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = io.temporary_name(tmp_path / "x.npy").name.replace(f"-{os.getpid()}-", f"-{dead.stdout.strip()}-")
    (tmp_path / stale).write_bytes(b"half")
    mine = io.temporary_name(tmp_path / "y.npy")
    mine.write_bytes(b"in progress")
    assert io.sweep_temporaries(tmp_path) == 1 and [p.name for p in tmp_path.iterdir()] == [mine.name]


def test_killed_cifar_extraction_leaves_no_partial_folder(tmp_path, monkeypatch):
    """A kill during the first extraction used to leave a partial folder: 'pickle data was truncated' forever."""
    src = make_cifar_python(tmp_path / "src", n=4) / "cifar10"
    root = tmp_path / "root" / "cifar10"
    root.mkdir(parents=True)
    with tarfile.open(root / "cifar-10-python.tar.gz", "w:gz") as tar:
        tar.add(src / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    real = tarfile.TarFile.extractall

    def killed_halfway(self, path, *a, **kw):
        first = self.getmembers()[:3]
        real(self, path, members=first, filter="data")
        raise KeyboardInterrupt  # the user's Ctrl-C (a SIGKILL leaves a temporary that the next run sweeps)

    monkeypatch.setattr(tarfile.TarFile, "extractall", killed_halfway)
    with pytest.raises(KeyboardInterrupt):
        load_dataset("cifar10", "test", root.parent)
    assert list(cache.cache_dir().iterdir()) == []
    monkeypatch.setattr(tarfile.TarFile, "extractall", real)
    assert len(load_dataset("cifar10", "test", root.parent)) == 4


def test_partial_extraction_of_an_older_version_is_redone(tmp_path, caplog):
    src = make_cifar_python(tmp_path / "src", n=4) / "cifar10"
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    partial = cache.cache_dir() / ("extract-" + cache.source_key([archive])) / "cifar-10-batches-py"
    partial.mkdir(parents=True)
    (partial / "test_batch").write_bytes((src / "cifar-10-batches-py" / "test_batch").read_bytes()[:100])
    with caplog.at_level(logging.WARNING, logger="advshield"):
        folder = cache.extracted(archive, "cifar-10-batches-py")
    assert "incomplete extraction" in caplog.text
    assert (folder / "test_batch").read_bytes() == (src / "cifar-10-batches-py" / "test_batch").read_bytes()


def test_cache_entry_that_does_not_verify_is_rebuilt(caplog):
    cache.save_cached("k", np.zeros((2, 1, 2, 2), np.uint8), np.array([0, 1]), ["a", "b"])
    npy = cache.cache_dir() / "k" / "images.npy"
    npy.write_bytes(npy.read_bytes()[:-3])
    with caplog.at_level(logging.WARNING, logger="advshield"):
        assert cache.load_cached("k") is None
    assert "does not verify" in caplog.text


@pytest.fixture(scope="module")
def anet():
    model, card = load_pretrained("a-net", "mnist")
    return Pipeline(model), card, load_dataset("mnist", "test")


def _make(anet, root, progress=None):
    pipeline, card, data = anet
    attack = FGSM(0.2)
    spec = AdversarialSpec(card["sha256"], attack.name, attack.params(), "mnist", "test", 30)
    return generate_adversarial_set(spec, attack, pipeline, data, root, progress=progress)


def _interrupted(anet, root, monkeypatch):
    """A run stopped after its first shard (of 3): returns the set's folder."""
    monkeypatch.setattr(adversarial, "SHARD", 10)

    def stop(done, total):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _make(anet, root, stop)
    return next(root.iterdir())


@pytest.mark.parametrize("damage", ["card missing", "shard truncated", "card garbled", "shard missing"])
def test_damaged_shard_is_recomputed_with_a_notice(anet, tmp_path, monkeypatch, caplog, damage):
    monkeypatch.setattr(adversarial, "SHARD", 10)
    _, whole, _ = _make(anet, tmp_path / "whole")
    folder = _interrupted(anet, tmp_path / "store", monkeypatch)
    shard = folder / "shard-00000.safetensors"
    if damage == "card missing":
        shard.with_suffix(".json").unlink()
    elif damage == "shard truncated":
        shard.write_bytes(shard.read_bytes()[:-7])
    elif damage == "card garbled":
        shard.with_suffix(".json").write_bytes(b'{"sha256": ')
    else:
        shard.unlink()
    with caplog.at_level(logging.WARNING, logger="advshield"):
        _, result, cached = _make(anet, tmp_path / "store")
    assert not cached and torch.equal(result.adv.materialize(), whole.adv.materialize())
    assert "recomputing it" in caplog.text and len(caplog.records) == 1
    assert (folder / "adv.safetensors").read_bytes() == next((tmp_path / "whole").iterdir()).joinpath(
        "adv.safetensors").read_bytes()


@pytest.mark.parametrize("damage", ["weights truncated", "meta missing key", "meta garbled"])
def test_damaged_finished_set_is_recomputed(anet, tmp_path, caplog, damage):
    folder, first, _ = _make(anet, tmp_path)
    if damage == "weights truncated":
        (folder / "adv.safetensors").write_bytes((folder / "adv.safetensors").read_bytes()[:-50])
    elif damage == "meta missing key":
        meta = json.loads((folder / "meta.json").read_text())
        (folder / "meta.json").write_text(json.dumps(dict(meta, key="other")))
    else:
        (folder / "meta.json").write_bytes(b"\x00\xff")
    with caplog.at_level(logging.WARNING, logger="advshield"):
        _, again, cached = _make(anet, tmp_path)
    assert not cached and torch.equal(again.adv.materialize(), first.adv.materialize()) and "recomputing it" in caplog.text
    assert _make(anet, tmp_path)[2]  # and the rebuilt set is found next time


def test_loading_a_broken_set_is_a_checkpoint_error(anet, tmp_path):
    folder, _, _ = _make(anet, tmp_path)
    (folder / "adv.safetensors").write_bytes(b"nope")
    with pytest.raises(CheckpointError, match="SHA-256 differs"):
        load_adversarial_set(folder)
    (folder / "meta.json").unlink()
    with pytest.raises(CheckpointError, match="meta.json: missing"):
        load_adversarial_set(folder)


def test_shards_left_by_a_kill_while_folding_are_removed(anet, tmp_path):
    folder, _, _ = _make(anet, tmp_path)
    save_tensors(folder / "shard-00000.safetensors", {"adv": torch.zeros(1)}, {"architecture": "s", "seconds": 0})
    assert _make(anet, tmp_path)[2] and not list(folder.glob("shard-*"))
    assert load_tensors(folder / "adv.safetensors")["adv"].shape[0] == 30
