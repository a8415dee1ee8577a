"""Crash-safe writes: a kill or a full disk never leaves a half-written result, or litter, behind.

Every file advshield keeps is written the same way, by :func:`atomic_file`: to a
temporary name in the target's folder, flushed and fsync'ed, then renamed over
the target (and the folder fsync'ed), so a reader sees the old file or the
complete new one, never a prefix. A folder (an extracted archive) is built the
same way by :func:`atomic_folder`. On any failure the temporary is removed;
temporaries of processes killed outright (SIGKILL, power loss) are removed by
:func:`sweep_temporaries` on a later run.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import secrets
import shutil
import socket
from pathlib import Path
from typing import BinaryIO, Iterator

from advshield.errors import StorageError

_HOST = re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:16] or "host"
_TEMP = re.compile(r"^\..+\.tmp-(?P<host>[A-Za-z0-9]+)-(?P<pid>\d+)-[0-9a-f]+$")


def temporary_name(path: Path) -> Path:
    """A unique sibling of ``path`` that :func:`sweep_temporaries` recognises (host and pid inside)."""
    return path.with_name(f".{path.name}.tmp-{_HOST}-{os.getpid()}-{secrets.token_hex(4)}")


def _storage_error(path: Path, exc: OSError) -> StorageError:
    hint = "; free some space and run again" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else ""
    return StorageError(exc.errno or 0, f"cannot write {path}: {exc.strerror or exc}{hint}")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            path.unlink()


def fsync_folder(folder: Path) -> None:
    """Make a rename inside ``folder`` durable (a no-op where folders cannot be opened, e.g. Windows)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_file(path: str | Path) -> Iterator[BinaryIO]:
    """``with atomic_file(p) as fh: fh.write(...)``: ``p`` appears complete on exit, or not at all.

    A failing write (full disk, read-only folder) raises :class:`StorageError` and leaves nothing behind.
    """
    path = Path(path)
    tmp = temporary_name(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "xb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        _remove(tmp)
        raise exc if isinstance(exc, StorageError) else _storage_error(path, exc) from None
    except BaseException:
        _remove(tmp)
        raise
    fsync_folder(path.parent)


@contextlib.contextmanager
def atomic_folder(path: str | Path) -> Iterator[Path]:
    """``with atomic_folder(dest) as tmp: <fill tmp>``: ``dest`` appears, complete, only if the block succeeds."""
    path = Path(path)
    tmp = temporary_name(path)
    try:
        tmp.mkdir(parents=True)
        yield tmp
        os.replace(tmp, path)
    except OSError as exc:
        _remove(tmp)
        if path.is_dir() and exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
            return  # another process finished the same folder first
        raise exc if isinstance(exc, StorageError) else _storage_error(path, exc) from None
    except BaseException:
        _remove(tmp)
        raise
    fsync_folder(path.parent)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_file(path) as fh:
        fh.write(data)


def save_figure(fig, path: str | Path, dpi: int = 110) -> Path:
    """Lay out a matplotlib figure, write it as a PNG atomically, and close it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    try:
        fig.tight_layout()
        with atomic_file(path) as fh:
            fig.savefig(fh, format="png", dpi=dpi)
    finally:
        plt.close(fig)
    return path


def check_writable(folder: str | Path) -> Path:
    """Create ``folder`` if needed and prove a file can be written there, before any long work starts.

    A read-only or missing-permission location is a :class:`StorageError` naming it (not an error after an
    hour of training).
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = temporary_name(folder / ".write-check")
        with open(probe, "xb"):
            pass
        probe.unlink()
    except OSError as exc:
        raise _storage_error(folder, exc) from None
    return folder


def atomic_write_json(path: str | Path, obj: object) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


def sweep_temporaries(folder: str | Path) -> int:
    """Remove the temporaries that dead processes of this host left in ``folder``; returns how many."""
    removed = 0
    with contextlib.suppress(OSError):
        for entry in Path(folder).iterdir():
            m = _TEMP.match(entry.name)
            if m and m["host"] == _HOST and int(m["pid"]) != os.getpid() and not _alive(int(m["pid"])):
                _remove(entry)
                removed += 1
    return removed
