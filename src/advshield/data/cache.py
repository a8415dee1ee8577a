"""Cache of decoded datasets as raw uint8 ``.npy`` arrays (loads in well under 2 s), and of extracted archives.

Every entry is written crash-safely (:mod:`advshield.io`): an interrupted run leaves either no entry or a
complete one, and an entry that does not verify is ignored and rebuilt, never blamed on the user's data.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tarfile
import zlib
from pathlib import Path

import numpy as np

from advshield.errors import DataError
from advshield.io import atomic_file, atomic_folder, atomic_write_json, sweep_temporaries

CACHE_ENV = "ADVSHIELD_CACHE"
_COMPLETE = ".complete"  # written inside an extracted folder before it is renamed into place
log = logging.getLogger("advshield")


def cache_dir() -> Path:
    base = os.environ.get(CACHE_ENV) or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "advshield")
    return Path(base).expanduser()


def _identity(p: Path) -> list:
    st = p.stat()
    return [str(p.resolve()), st.st_size, st.st_mtime_ns]


def source_key(paths: list[Path], **params) -> str:
    """Key of a decoded dataset: the source files' identity (path, size, mtime) and the decode parameters.

    A folder source also counts its split and class folders, so removing or adding a class folder is seen.
    """
    ident = []
    for p in paths:
        ident.append(_identity(p))
        if p.is_dir():
            subs = sorted(q for q in p.iterdir() if q.is_dir())
            ident += [_identity(q) for s in subs for q in [s, *sorted(c for c in s.iterdir() if c.is_dir())]]
    blob = json.dumps({"files": ident, "params": params}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def _save_npy(path: Path, arr: np.ndarray) -> None:
    with atomic_file(path) as fh:
        np.save(fh, arr, allow_pickle=False)


def load_cached(key: str) -> tuple[np.ndarray, np.ndarray, list[str]] | None:
    folder = cache_dir() / key
    if not (folder / "meta.json").is_file():
        return None
    try:
        meta = json.loads((folder / "meta.json").read_text())
        images = np.load(folder / "images.npy", allow_pickle=False)
        labels = np.load(folder / "labels.npy", allow_pickle=False)
        classes = [str(c) for c in meta["classes"]]
        ok = (images.dtype == np.uint8 and images.ndim == 4 and labels.shape == (len(images),)
              and meta.get("n") == len(labels))
    except (OSError, ValueError, EOFError, KeyError, TypeError):
        ok = False
    if not ok:
        log.warning("advshield: cache entry %s does not verify; decoding the dataset again", folder)
        return None
    return images, labels.astype(np.int64), classes


def save_cached(key: str, images: np.ndarray, labels: np.ndarray, classes: list[str]) -> None:
    folder = cache_dir() / key
    try:
        sweep_temporaries(folder)
        _save_npy(folder / "images.npy", np.ascontiguousarray(images))
        _save_npy(folder / "labels.npy", labels)
        atomic_write_json(folder / "meta.json", {"n": int(len(labels)), "classes": classes})  # last: complete
    except OSError:
        pass  # a read-only or full cache only costs speed (and atomic writes leave nothing behind)


def extracted(archive: Path, inner: str) -> Path:
    """``<inner>/`` of a tar archive, extracted once into the cache (atomically: complete or absent)."""
    root = cache_dir()
    dest = root / ("extract-" + source_key([archive]))
    sweep_temporaries(root)
    if dest.is_dir() and not (dest / _COMPLETE).is_file():  # left by an older, non-atomic version
        log.warning("advshield: incomplete extraction %s found; extracting %s again", dest, archive.name)
        shutil.rmtree(dest, ignore_errors=True)
    if not dest.is_dir():
        try:
            tar = tarfile.open(archive, "r:*")
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise _unreadable(archive, exc) from None
        with tar, atomic_folder(dest) as tmp:
            try:
                tar.extractall(tmp, filter="data")
            except (tarfile.TarError, EOFError, zlib.error) as exc:
                raise _unreadable(archive, exc) from None
            except OSError as exc:
                if exc.errno is not None:
                    raise  # a write failure (full disk): atomic_folder reports it and cleans up
                raise _unreadable(archive, exc) from None
            (tmp / _COMPLETE).touch()
    if not (dest / inner).is_dir():
        raise DataError(f"{archive}: archive does not contain {inner}/")
    return dest / inner


def _unreadable(archive: Path, exc: BaseException) -> DataError:
    return DataError(f"{archive}: cannot read archive ({exc}); the file is truncated or corrupted")
