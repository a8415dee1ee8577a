import gzip
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Each test gets its own decode cache and no inherited data root."""
    monkeypatch.setenv("ADVSHIELD_CACHE", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.delenv("ADVSHIELD_DATA", raising=False)


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory):
    """A decode cache shared by the tests that read the (large) offline copies."""
    return tmp_path_factory.mktemp("shared-cache")


def write_idx(path: Path, array: np.ndarray, compress: bool = True) -> Path:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    blob = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(blob) if compress else blob)
    return path


def make_mnist_root(root: Path, n_train: int = 60, n_test: int = 20, compress: bool = True, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    folder = root / "mnist"
    folder.mkdir(parents=True, exist_ok=True)
    sfx = ".gz" if compress else ""
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        write_idx(folder / f"{prefix}-images-idx3-ubyte{sfx}", rng.integers(0, 256, (n, 28, 28)), compress)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte{sfx}", rng.integers(0, 10, n), compress)
    return root


def cifar_python_batch(n: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return {b"batch_label": b"test", b"labels": rng.integers(0, 10, n).tolist(),
            b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"filenames": [b"x.png"] * n}


def make_cifar_python(root: Path, n: int = 8) -> Path:
    folder = root / "cifar10" / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        (folder / name).write_bytes(pickle.dumps(cifar_python_batch(n, i), protocol=2))
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": [s.encode() for s in names]}, protocol=2))
    return root


def make_cifar_binary(root: Path, n: int = 8) -> Path:
    folder = root / "cifar10" / "cifar-10-batches-bin"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    for name in [f"data_batch_{k}.bin" for k in range(1, 6)] + ["test_batch.bin"]:
        rec = np.concatenate([rng.integers(0, 10, (n, 1)), rng.integers(0, 256, (n, 3072))], 1).astype(np.uint8)
        (folder / name).write_bytes(rec.tobytes())
    return root
