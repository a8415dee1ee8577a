"""CIFAR-10 from the official binary and Python distributions (Krizhevsky 2009).

The Python version is a pickle. Pickles can run arbitrary code, so it is read
with :class:`~advshield.data.safe_pickle.RestrictedUnpickler`, which resolves no
real global: arrays are rebuilt from checked raw bytes, everything else is refused.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from advshield.data.classes import CIFAR10_CLASSES
from advshield.data.safe_pickle import RestrictedUnpickler, safe_unpickle  # noqa: F401 (public here before)
from advshield.errors import DataError

_RECORD = 1 + 3 * 32 * 32
_TRAIN_BATCHES = [f"data_batch_{i}" for i in range(1, 6)]


def _key(d: dict, name: str, path: Path):
    for k in (name, name.encode()):
        if k in d:
            return d[k]
    raise DataError(f"{path}: pickle has no {name!r} entry; not a CIFAR-10 batch file")


def read_python_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    obj = safe_unpickle(path)
    if not isinstance(obj, dict):
        raise DataError(f"{path}: expected a dict, found {type(obj).__name__}")
    data, labels = _key(obj, "data", path), _key(obj, "labels", path)
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise DataError(f"{path}: 'data' must be a uint8 array of shape (N, 3072)")
    labels = np.asarray(labels, dtype=np.int64)
    if labels.shape != (len(data),):
        raise DataError(f"{path}: {len(data)} images but {labels.size} labels")
    return data.reshape(-1, 3, 32, 32), labels


def read_binary_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    raw = path.read_bytes()
    if not raw or len(raw) % _RECORD:
        raise DataError(
            f"{path}: {len(raw)} bytes is not a whole number of {_RECORD}-byte CIFAR-10 records; "
            "the file is truncated or corrupted"
        )
    rec = np.frombuffer(raw, dtype=np.uint8).reshape(-1, _RECORD)
    return rec[:, 1:].reshape(-1, 3, 32, 32).copy(), rec[:, 0].astype(np.int64)


def _check_labels(labels: np.ndarray, where: Path) -> None:
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise DataError(f"{where}: labels outside 0..9; not CIFAR-10")


def load_cifar10_dir(folder: Path, split: str, binary: bool) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Load a split from an extracted ``cifar-10-batches-py`` or ``-bin`` folder."""
    names = _TRAIN_BATCHES if split == "train" else ["test_batch"]
    read = read_binary_batch if binary else read_python_batch
    parts = []
    for n in names:
        p = folder / (n + ".bin" if binary else n)
        if not p.is_file():
            raise DataError(f"{folder}: missing {p.name}; the CIFAR-10 folder is incomplete")
        parts.append(read(p))
    images = np.concatenate([a for a, _ in parts])
    labels = np.concatenate([b for _, b in parts])
    _check_labels(labels, folder)
    return images, labels, _class_names(folder, binary)


def _class_names(folder: Path, binary: bool) -> list[str]:
    if binary and (folder / "batches.meta.txt").is_file():
        names = [s.strip() for s in (folder / "batches.meta.txt").read_text().splitlines() if s.strip()]
        if len(names) == 10:
            return names
    if not binary and (folder / "batches.meta").is_file():
        meta = safe_unpickle(folder / "batches.meta")
        if isinstance(meta, dict):
            names = [n.decode() if isinstance(n, bytes) else str(n) for n in _key(meta, "label_names", folder)]
            if len(names) == 10:
                return names
    return list(CIFAR10_CLASSES)
