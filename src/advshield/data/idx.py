"""Reader for the IDX format of MNIST and Fashion-MNIST (LeCun et al.), .gz or raw."""

from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path

import numpy as np

from advshield.errors import DataError

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
               0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def _read_bytes(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
        return gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
    except (EOFError, OSError, zlib.error) as exc:
        raise DataError(f"{path}: cannot be decompressed ({exc}); the file is truncated or corrupted") from None


def read_idx(path: str | Path, ndim: int | None = None) -> np.ndarray:
    """Parse one IDX file; reject a wrong magic number, dimension or payload size."""
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise DataError(f"{path}: not an IDX file (bad magic number {data[:4].hex() or 'empty'})")
    dims = data[3]
    if ndim is not None and dims != ndim:
        raise DataError(f"{path}: expected an IDX file of {ndim} dimension(s), found {dims}")
    header = 4 + 4 * dims
    if len(data) < header:
        raise DataError(f"{path}: truncated IDX header")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims))
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    expected = math.prod(shape) * dtype.itemsize  # exact: a lying header cannot overflow it
    if len(data) - header != expected:
        raise DataError(
            f"{path}: header announces shape {shape} ({expected} bytes) but the file holds "
            f"{len(data) - header} bytes; the file is truncated or corrupted"
        )
    if math.prod(d for d in shape if d) > 2**40:
        raise DataError(f"{path}: header announces an impossible shape {shape}; the file is corrupted")
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def read_idx_pair(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    images = read_idx(images_path, ndim=3)
    labels = read_idx(labels_path, ndim=1)
    if len(images) != len(labels):
        raise DataError(
            f"{images_path.name} holds {len(images)} images but {labels_path.name} holds {len(labels)} labels"
        )
    if images.dtype != np.uint8:
        raise DataError(f"{images_path}: expected uint8 pixels, found {images.dtype}")
    return images[:, None, :, :].copy(), labels.astype(np.int64)
