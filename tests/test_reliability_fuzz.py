"""Property-based tests of the file loaders: every bad file gives an advshield error, never a raw exception.

Random bytes, truncations, flipped bytes and headers whose sizes overflow, for the IDX reader, both CIFAR-10
batch readers and safetensors checkpoints. A deadline per example catches a hang; the restricted unpickler
is checked to refuse every global outside its allow-list (so no fuzzed pickle can run code).
"""

import gzip
import pickle
import struct

import numpy as np
import pytest
import torch

hypothesis = pytest.importorskip("hypothesis", reason="the test extra's hypothesis is needed for the fuzz tests")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from safetensors.torch import save as st_save  # noqa: E402

from advshield.checkpoint import load_tensors, read_card  # noqa: E402
from advshield.data.cifar import RestrictedUnpickler, read_binary_batch, read_python_batch  # noqa: E402
from advshield.data.idx import read_idx  # noqa: E402
from advshield.errors import AdvShieldError  # noqa: E402
from conftest import cifar_python_batch  # noqa: E402

FUZZ = settings(max_examples=int(__import__("os").environ.get("FUZZ_EXAMPLES", 60)), deadline=5000, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _idx_bytes(shape=(3, 4, 5)) -> bytes:
    header = bytes([0, 0, 0x08, len(shape)]) + b"".join(struct.pack(">I", d) for d in shape)
    return header + bytes(range(int(np.prod(shape))))


VALID = {
    "idx": _idx_bytes(),
    "idx.gz": gzip.compress(_idx_bytes()),
    "cifar.bin": np.random.default_rng(0).integers(0, 10, (2, 3073)).astype(np.uint8).tobytes(),
    "cifar.pkl": pickle.dumps(cifar_python_batch(2, 0), protocol=2),
    "weights.safetensors": st_save({"w": torch.arange(6.0).reshape(2, 3), "b": torch.zeros(2)}),
}
READERS = {"idx": read_idx, "idx.gz": read_idx, "cifar.bin": read_binary_batch, "cifar.pkl": read_python_batch,
           "weights.safetensors": load_tensors}


@st.composite
def damaged(draw, name):
    """A valid file of kind ``name`` truncated, with bytes flipped or with random bytes appended."""
    blob = bytearray(VALID[name])
    how = draw(st.sampled_from(["truncate", "flip", "append"]))
    if how == "truncate":
        return bytes(blob[: draw(st.integers(0, len(blob) - 1))])
    if how == "append":
        return bytes(blob) + draw(st.binary(min_size=1, max_size=64))
    for _ in range(draw(st.integers(1, 8))):
        i = draw(st.integers(0, len(blob) - 1))
        blob[i] = draw(st.integers(0, 255))
    return bytes(blob)


def _read_or_advshield_error(tmp_path, name, blob):
    path = tmp_path / name
    path.write_bytes(blob)
    try:
        READERS[name](path)
    except AdvShieldError:
        pass  # the only failure allowed; a raw exception fails the test


@pytest.mark.parametrize("name", sorted(VALID))
def test_valid_files_load(tmp_path, name):
    (tmp_path / name).write_bytes(VALID[name])
    assert READERS[name](tmp_path / name) is not None


@pytest.mark.parametrize("name", sorted(VALID))
@FUZZ
@given(blob=st.binary(max_size=512))
def test_random_bytes_give_advshield_errors(tmp_path, name, blob):
    _read_or_advshield_error(tmp_path, name, blob)


@pytest.mark.parametrize("name", sorted(VALID))
@FUZZ
@given(data=st.data())
def test_damaged_files_give_advshield_errors(tmp_path, name, data):
    _read_or_advshield_error(tmp_path, name, data.draw(damaged(name)))


@FUZZ
@given(dims=st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=6), payload=st.binary(max_size=64))
def test_idx_headers_that_overflow(tmp_path, dims, payload):
    header = bytes([0, 0, 0x08, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims)
    _read_or_advshield_error(tmp_path, "idx", header + payload)


@FUZZ
@given(size=st.one_of(st.integers(0, 2**64 - 1), st.sampled_from([2**63, 2**64 - 1, 2**32, 99])),
       rest=st.binary(max_size=128))
def test_safetensors_headers_that_overflow(tmp_path, size, rest):
    _read_or_advshield_error(tmp_path, "weights.safetensors", struct.pack("<Q", size) + rest)


@FUZZ
@given(header=st.dictionaries(st.text(max_size=4), st.fixed_dictionaries(
    {"dtype": st.sampled_from(["F32", "I64", "U8", "F64", "XX"]),
     "shape": st.lists(st.integers(-2, 2**40), max_size=3),
     "data_offsets": st.lists(st.integers(-1, 2**62), min_size=2, max_size=2)}), max_size=3))
def test_safetensors_lying_headers(tmp_path, header):
    text = __import__("json").dumps(header).encode()
    _read_or_advshield_error(tmp_path, "weights.safetensors", struct.pack("<Q", len(text)) + text + bytes(64))


@FUZZ
@given(blob=st.binary(max_size=256))
def test_cards_that_are_not_json(tmp_path, blob):
    (tmp_path / "m.json").write_bytes(blob)
    try:
        read_card(tmp_path / "m.safetensors")
    except AdvShieldError:
        pass


@FUZZ
@given(module=st.sampled_from(["os", "builtins", "subprocess", "posix", "numpy", "torch", "__main__"]),
       name=st.sampled_from(["system", "eval", "exec", "Popen", "load", "getattr", "open"]))
def test_unpickler_refuses_every_other_global(module, name):
    with pytest.raises(pickle.UnpicklingError):
        RestrictedUnpickler(__import__("io").BytesIO(b"")).find_class(module, name)
