"""Safetensors files streamed: folded from shards without holding them, hashed in chunks, read by rows.

The format (https://github.com/huggingface/safetensors): an 8-byte little-endian header length, a JSON header
``{name: {"dtype", "shape", "data_offsets"}}`` padded with spaces to a multiple of 8, then each tensor's raw
bytes. :func:`concatenate` writes, chunk by chunk, the very bytes ``safetensors.torch.save`` would write for the
shards' tensors concatenated along their first dimension (same order, same header), so peak memory does not
depend on the size of the set. :class:`StoredImages` reads the rows of one tensor on demand.
"""

from __future__ import annotations

import copy
import hashlib
import json
import operator
import os
import struct
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as st_save

from advshield.errors import CheckpointError
from advshield.io import atomic_file

CHUNK = 1 << 20  # bytes per read while hashing or copying
BLOCK = 512  # rows per file opening while gathering scattered rows
_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
           "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
           "BOOL": torch.bool}
_BAD = (SafetensorError, OSError, ValueError, RuntimeError, TypeError, OverflowError, KeyError)


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file, read in chunks (never the whole file at once)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def identity(path: Path) -> tuple[int, int, int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def verify(path: str | Path, sha256: str) -> tuple[int, int, int, int]:
    """Check ``path`` against the SHA-256 of its card by streaming it; returns its identity before hashing."""
    path = Path(path)
    try:
        ident = identity(path)
        ok = file_sha256(path) == sha256
    except FileNotFoundError:
        raise CheckpointError(f"{path}: checkpoint not found") from None
    except OSError as exc:
        raise CheckpointError(f"{path}: unreadable checkpoint ({exc.strerror or exc})") from None
    if not ok:
        raise CheckpointError(f"{path}: SHA-256 differs from its card; the file is truncated, corrupted or was "
                              "replaced")
    return ident


def read_header(path: Path) -> tuple[int, dict[str, dict]]:
    """(offset of the data, {name: {"dtype", "shape", "data_offsets"}}) of a safetensors file."""
    try:
        with open(path, "rb") as fh:
            (n,) = struct.unpack("<Q", fh.read(8))
            if n > min(100 << 20, os.fstat(fh.fileno()).st_size - 8):
                raise ValueError(f"header length {n} beyond the file")
            entries = {k: v for k, v in json.loads(fh.read(n)).items() if k != "__metadata__"}
        for e in entries.values():
            a, b = e["data_offsets"]
            if b - a != int(np.prod(e["shape"])) * _DTYPES[e["dtype"]].itemsize:
                raise ValueError("data offsets do not match the shape")
    except (_BAD + (struct.error,)) as exc:
        raise CheckpointError(f"{path}: not a valid safetensors file ({exc})") from None
    return 8 + n, entries


def _order(dtypes: dict[str, str]) -> list[str]:
    """The names in the order ``safetensors.torch.save`` lays them out (asked of the library on one-element
    tensors, so the folded file matches what it writes)."""
    template = st_save({k: torch.zeros(1, dtype=_DTYPES[d]) for k, d in dtypes.items()})
    (n,) = struct.unpack("<Q", template[:8])
    return [k for k in json.loads(template[8:8 + n]) if k != "__metadata__"]


def _copy(src: Path, start: int, size: int, put: Callable[[bytes], None]) -> None:
    with open(src, "rb") as fh:
        fh.seek(start)
        while size > 0:
            chunk = fh.read(min(CHUNK, size))
            if not chunk:
                raise CheckpointError(f"{src}: truncated while folding it")
            put(chunk)
            size -= len(chunk)


def concatenate(path: str | Path, sources: list[Path]) -> str:
    """Write ``path`` (atomically: temporary name, fsync, rename) holding every tensor of ``sources``
    concatenated along dim 0, in that order, streaming; returns its SHA-256. The sources must name the same
    tensors with the same dtypes and row shapes."""
    parts = [(src, *read_header(src)) for src in sources]
    first = parts[0][2]
    for src, _, entries in parts:
        if {k: (e["dtype"], e["shape"][1:]) for k, e in entries.items()} != \
                {k: (e["dtype"], e["shape"][1:]) for k, e in first.items()}:
            raise CheckpointError(f"{src}: holds other tensors than {parts[0][0].name}; cannot fold them")
    header, offset = {}, 0
    for name in _order({k: e["dtype"] for k, e in first.items()}):
        rows = sum(e[name]["shape"][0] for _, _, e in parts)
        size = sum(e[name]["data_offsets"][1] - e[name]["data_offsets"][0] for _, _, e in parts)
        header[name] = {"dtype": first[name]["dtype"], "shape": [rows, *first[name]["shape"][1:]],
                        "data_offsets": [offset, offset + size]}
        offset += size
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    digest = hashlib.sha256()
    with atomic_file(path) as fh:
        def put(chunk: bytes) -> None:
            fh.write(chunk)
            digest.update(chunk)

        put(struct.pack("<Q", len(blob)) + blob)
        for name in header:
            for src, start, entries in parts:
                a, b = entries[name]["data_offsets"]
                _copy(src, start + a, b - a, put)
    return digest.hexdigest()


def load_lazily(path: str | Path, sha256: str, lazy: tuple[str, ...] = ("adv",)) -> dict:
    """Every tensor of ``path`` after checking its SHA-256 (streamed): those named in ``lazy`` as
    :class:`StoredImages`, the others (small per-image vectors) read whole."""
    path = Path(path)
    ident = verify(path, sha256)
    try:
        with safe_open(str(path), framework="pt") as f:
            names = list(f.keys())
            out: dict = {k: f.get_tensor(k) for k in names if k not in lazy}
    except _BAD as exc:
        raise CheckpointError(f"{path}: not a valid safetensors file ({exc})") from None
    out.update({k: StoredImages(path, k, sha256, ident) for k in names if k in lazy})
    return out


def _is_int(index) -> bool:
    if isinstance(index, torch.Tensor):
        return index.dim() == 0 and not index.dtype.is_floating_point and index.dtype != torch.bool
    return isinstance(index, (int, np.integer)) and not isinstance(index, (bool, np.bool_))


class StoredImages:
    """One tensor of a safetensors file (a stored set's images), read by rows on demand.

    ``view[a:b]`` and ``view[i]`` read only those rows; ``view[mask]`` and ``view[index_tensor]`` materialise
    only the rows selected (read block by block); :meth:`select` is the lazy form; :meth:`split` streams
    batches; :meth:`materialize` returns the whole tensor, for the consumers that need all of it. Results are
    CPU tensors. The file is opened per read (and closed after), and checked against the identity it had when
    verified: a replaced file is re-verified against ``sha256`` and read only if it is the same content.
    """

    def __init__(self, path: str | Path, name: str, sha256: str | None = None,
                 ident: tuple[int, int, int, int] | None = None) -> None:
        self.path, self.name, self.sha256 = Path(path), name, sha256
        self._ident = ident or identity(self.path)
        self._rows: torch.Tensor | None = None  # absolute rows of a selection; None: all of them
        try:
            with self._open() as f:
                sl = f.get_slice(name)
                shape, dtype = sl.get_shape(), sl.get_dtype()
        except _BAD as exc:
            raise CheckpointError(f"{self.path}: cannot read tensor {name!r} ({exc})") from None
        self._stored_len, self.row_shape, self.dtype = shape[0], tuple(shape[1:]), _DTYPES[dtype]

    # ------------------------------------------------------------------ what it looks like
    def __len__(self) -> int:
        return self._stored_len if self._rows is None else len(self._rows)

    @property
    def shape(self) -> torch.Size:
        return torch.Size((len(self), *self.row_shape))

    ndim = property(lambda self: 1 + len(self.row_shape))
    device = property(lambda self: torch.device("cpu"))  # where its slices are
    numel = (lambda self: self.shape.numel())

    def __repr__(self) -> str:
        return f"StoredImages({str(self.path)!r}, {self.name!r}, shape={tuple(self.shape)}, dtype={self.dtype})"

    # ------------------------------------------------------------------ reading
    def _open(self):
        now = identity(self.path)
        if now != self._ident:
            if self.sha256 is None or file_sha256(self.path) != self.sha256:
                raise CheckpointError(f"{self.path}: changed since it was read; load the set again")
            self._ident = now  # rewritten with the same content (the store recomputed it)
        return safe_open(str(self.path), framework="pt")

    def _span(self, a: int, b: int) -> torch.Tensor:
        """Stored rows a..b-1."""
        try:
            with self._open() as f:
                return f.get_slice(self.name)[a:b]
        except _BAD as exc:
            raise CheckpointError(f"{self.path}: cannot read rows {a}:{b} of {self.name!r} ({exc})") from None

    def _gather(self, rows: torch.Tensor) -> torch.Tensor:
        """Stored rows in the order given (repeats allowed), read block by block."""
        out = torch.empty((len(rows), *self.row_shape), dtype=self.dtype)
        order = torch.argsort(rows, stable=True)
        ordered = rows[order]
        start = 0
        for count in torch.unique_consecutive(ordered // BLOCK, return_counts=True)[1].tolist():
            r, pos = ordered[start:start + count], order[start:start + count]
            lo = int(r[0])
            out[pos] = self._span(lo, int(r[-1]) + 1)[r - lo]
            start += count
        return out

    def _positions(self, index) -> torch.Tensor:
        t = torch.as_tensor(index).cpu() if not isinstance(index, torch.Tensor) else index.cpu()
        n = len(self)
        if t.dtype == torch.bool:
            if t.shape != (n,):
                raise IndexError(f"a mask of shape {tuple(t.shape)} for {n} rows")
            return t.nonzero().flatten()
        if t.numel() == 0:
            return torch.zeros(0, dtype=torch.long)
        if t.dtype.is_floating_point or t.dtype.is_complex or t.dim() != 1:
            raise IndexError(f"rows are selected by a 1-d integer or boolean index, not {t.dtype} {tuple(t.shape)}")
        t = t.long()
        t = torch.where(t < 0, t + n, t)
        if bool(((t < 0) | (t >= n)).any()):
            raise IndexError(f"row index out of range for {n} rows")
        return t

    def _stored(self, positions: torch.Tensor) -> torch.Tensor:
        return positions if self._rows is None else self._rows[positions]

    def __getitem__(self, index) -> torch.Tensor:
        if isinstance(index, tuple):  # rows first, then the rest on what was read
            out = self[index[0]] if index else self.materialize()
            return out if len(index) < 2 else out[index[1:]] if _is_int(index[0]) else out[(slice(None), *index[1:])]
        n = len(self)
        if _is_int(index):
            i = operator.index(index) if not isinstance(index, torch.Tensor) else int(index)
            if not -n <= i < n:
                raise IndexError(f"row {i} out of range for {n} rows")
            i %= n
            return self._span(i, i + 1)[0] if self._rows is None else self._gather(self._rows[i:i + 1])[0]
        if isinstance(index, slice):
            start, stop, step = index.indices(n)
            if step == 1 and self._rows is None:
                return self._span(start, max(start, stop))
            return self._gather(self._stored(torch.arange(start, stop, step)))
        if index is None or index is Ellipsis:
            raise TypeError("StoredImages takes rows (int, slice, mask or index tensor) first")
        return self._gather(self._stored(self._positions(index)))

    def select(self, index) -> "StoredImages":
        """The rows ``index`` (mask or index tensor) as a lazy view: nothing is read until it is sliced."""
        view = copy.copy(self)
        view._rows = self._stored(self._positions(index))
        return view

    def split(self, size: int) -> "Batches":
        """Consecutive batches of ``size`` rows (the last may be shorter), read one at a time as iterated."""
        return Batches(self, size)

    def __iter__(self) -> Iterator[torch.Tensor]:
        for batch in self.split(BLOCK):
            yield from batch

    def materialize(self) -> torch.Tensor:
        """The whole tensor (or selection) in memory."""
        return self._span(0, self._stored_len) if self._rows is None else self._gather(self._rows)


class Batches:
    """``view.split(size)``: has a length (the number of batches) and reads each batch only when reached."""

    def __init__(self, view: StoredImages, size: int) -> None:
        self.view, self.size = view, size

    def __len__(self) -> int:
        return -(-len(self.view) // self.size)

    def __iter__(self) -> Iterator[torch.Tensor]:
        for i in range(0, len(self.view), self.size):
            yield self.view[i:i + self.size]
