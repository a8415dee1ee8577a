"""Read the CIFAR-10 Python batches (pickles) without running any of their code.

A pickle names functions that the reader calls, so an untrusted pickle can run
anything. :class:`RestrictedUnpickler` resolves no real global at all: the five
names a pickled numpy array needs map to inert stand-ins here that only record
their arguments, and everything else is refused. Once the pickle is read, each
recorded array is checked (plain numeric dtype, shape matching the raw bytes)
and built with :func:`numpy.frombuffer`: numpy never sees pickled state.
"""

from __future__ import annotations

import io
import math
import pickle
import struct
from pathlib import Path

import numpy as np

from advshield.errors import DataError

_DTYPES = {"u1", "i1", "u2", "i2", "u4", "i4", "u8", "i8", "f4", "f8", "b1"}
_PLAIN_DTYPE_STATE = (None, None, None, -1, -1, 0)  # a numeric dtype's pickled state after (version, byte order)


class _Recorded:
    """An object the pickle asked for, with its arguments and state; turned into a value only after checks."""

    def __init__(self, kind: str, args: tuple = ()):
        self.kind, self.args, self.state = kind, args, None

    def __setstate__(self, state) -> None:
        self.state = state


class _Global:
    """A stand-in for a global the pickle names: callable, but its state and attributes cannot be changed."""

    __slots__ = ("_fn", "_name")

    def __init__(self, fn, name: str):
        object.__setattr__(self, "_fn", fn)
        object.__setattr__(self, "_name", name)

    def __call__(self, *args):
        if self._fn is None:
            raise pickle.UnpicklingError(f"{self._name} cannot be called")
        return self._fn(*args)

    def __setstate__(self, state) -> None:
        raise pickle.UnpicklingError(f"a pickle may not change {self._name}")

    def __setattr__(self, name, value) -> None:
        raise pickle.UnpicklingError(f"a pickle may not change {self._name}")


_NDARRAY = _Global(None, "numpy.ndarray")


def _reconstruct(cls, shape, typecode) -> _Recorded:
    if cls is not _NDARRAY:
        raise pickle.UnpicklingError("_reconstruct of something other than numpy.ndarray")
    return _Recorded("ndarray")


def _dtype(name, align=False, copy=True) -> _Recorded:
    if not isinstance(name, str) or name not in _DTYPES:
        raise pickle.UnpicklingError(f"dtype {name!r} is not a plain numeric dtype")
    return _Recorded("dtype", (name,))


def _encode(text, encoding="utf-8") -> bytes:
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("_codecs.encode other than str to latin1")
    return text.encode("latin1")


class RestrictedUnpickler(pickle.Unpickler):
    """Accept dict/list/bytes/str/int content and plain numeric numpy arrays; nothing else."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): _Global(_reconstruct, "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"): _Global(_reconstruct, "_reconstruct"),
        ("numpy", "ndarray"): _NDARRAY,
        ("numpy", "dtype"): _Global(_dtype, "numpy.dtype"),
        ("_codecs", "encode"): _Global(_encode, "_codecs.encode"),  # how Python 3 writes bytes under protocol 2
    }

    def find_class(self, module: str, name: str):
        if (module, name) in self.ALLOWED:
            return self.ALLOWED[(module, name)]
        raise pickle.UnpicklingError(f"forbidden object {module}.{name} in pickle")


def _array(rec: _Recorded) -> np.ndarray:
    state = rec.state
    if not (isinstance(state, tuple) and len(state) == 5 and state[0] == 1):
        raise pickle.UnpicklingError("array without a valid state")
    _, shape, dtype, fortran, raw = state
    if not (isinstance(shape, tuple) and all(type(d) is int and d >= 0 for d in shape)):
        raise pickle.UnpicklingError(f"array shape {shape!r} is not a tuple of sizes")
    if not (isinstance(dtype, _Recorded) and dtype.kind == "dtype" and isinstance(dtype.state, tuple)
            and len(dtype.state) == 8 and dtype.state[0] == 3 and dtype.state[1] in ("|", "<", ">", "=")
            and dtype.state[2:] == _PLAIN_DTYPE_STATE):
        raise pickle.UnpicklingError("array of a dtype that is not plain numeric")
    dt = np.dtype(dtype.args[0]).newbyteorder(dtype.state[1] if dtype.state[1] != "|" else "=")
    if not isinstance(raw, (bytes, bytearray)) or len(raw) != math.prod(shape) * dt.itemsize:
        raise pickle.UnpicklingError(f"array data does not hold shape {shape} of {dt}")
    return np.frombuffer(bytes(raw), dtype=dt).reshape(shape, order="F" if fortran is True else "C")


def _materialise(obj, depth: int = 0):
    """Replace every recorded array by a checked numpy array; refuse any other recorded object."""
    if depth > 50:
        raise pickle.UnpicklingError("nesting too deep")
    if isinstance(obj, _Recorded):
        if obj.kind != "ndarray":
            raise pickle.UnpicklingError(f"stray {obj.kind} object")
        return _array(obj)
    if isinstance(obj, dict):
        return {_materialise(k, depth + 1): _materialise(v, depth + 1) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_materialise(v, depth + 1) for v in obj)
    if callable(obj):
        raise pickle.UnpicklingError("stray numpy name")
    return obj


def safe_unpickle(path: Path) -> object:
    try:
        with path.open("rb") as fh:
            return _materialise(RestrictedUnpickler(io.BufferedReader(fh), encoding="bytes").load())
    except pickle.UnpicklingError as exc:
        raise DataError(f"{path}: rejected ({exc}); CIFAR pickles hold only dicts, lists and arrays") from None
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError, LookupError, OSError,
            MemoryError, OverflowError, RecursionError, struct.error) as exc:
        raise DataError(f"{path}: not a readable CIFAR pickle ({type(exc).__name__}: {exc})") from None
