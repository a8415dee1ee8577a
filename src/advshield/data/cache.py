"""Cache of decoded datasets as raw uint8 ``.npy`` arrays (loads in well under 2 s)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

CACHE_ENV = "ADVSHIELD_CACHE"


def cache_dir() -> Path:
    base = os.environ.get(CACHE_ENV) or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "advshield")
    return Path(base).expanduser()


def source_key(paths: list[Path], **params) -> str:
    """Key of a decoded dataset: the source files' identity (path, size, mtime) and the decode parameters."""
    ident = [(str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in paths]
    blob = json.dumps({"files": ident, "params": params}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def _atomic_save(path: Path, arr: np.ndarray) -> None:
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    with tmp.open("wb") as fh:
        np.save(fh, arr, allow_pickle=False)
    os.replace(tmp, path)


def load_cached(key: str) -> tuple[np.ndarray, np.ndarray, list[str]] | None:
    folder = cache_dir() / key
    try:
        meta = json.loads((folder / "meta.json").read_text())
        images = np.load(folder / "images.npy", allow_pickle=False)
        labels = np.load(folder / "labels.npy", allow_pickle=False)
    except (OSError, ValueError):
        return None
    if images.dtype != np.uint8 or len(images) != len(labels) or meta.get("n") != len(labels):
        return None
    return images, labels, list(meta["classes"])


def save_cached(key: str, images: np.ndarray, labels: np.ndarray, classes: list[str]) -> None:
    folder = cache_dir() / key
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _atomic_save(folder / "images.npy", np.ascontiguousarray(images))
        _atomic_save(folder / "labels.npy", labels)
        tmp = folder / f"meta.json.tmp{os.getpid()}"
        tmp.write_text(json.dumps({"n": int(len(labels)), "classes": classes}))
        os.replace(tmp, folder / "meta.json")  # written last: marks the entry complete
    except OSError:
        pass  # a read-only cache only costs speed
