import gzip

import numpy as np
import pytest

from advshield.data import load_dataset
from advshield.data.idx import read_idx
from advshield.errors import DataError
from conftest import make_mnist_root, write_idx


@pytest.mark.parametrize("compress", [True, False])
def test_idx_roundtrip(tmp_path, compress):
    arr = np.arange(2 * 28 * 28).reshape(2, 28, 28) % 256
    got = read_idx(write_idx(tmp_path / "x", arr, compress), ndim=3)
    assert got.dtype == np.uint8 and np.array_equal(got, arr)


@pytest.mark.parametrize("compress", [True, False])
def test_mnist_loads_from_root(tmp_path, compress):
    root = make_mnist_root(tmp_path, 60, 20, compress)
    train, test = load_dataset("mnist", "train", root), load_dataset("mnist", "test", root)
    assert (len(train), len(test)) == (60, 20)
    assert train.images.shape == (60, 1, 28, 28) and train.classes == [str(i) for i in range(10)]
    x, y = train.tensors(slice(0, 5))
    assert x.dtype.is_floating_point and 0 <= float(x.min()) and float(x.max()) <= 1 and y.shape == (5,)


def test_fashion_mnist_class_names(tmp_path):
    make_mnist_root(tmp_path)
    (tmp_path / "mnist").rename(tmp_path / "fashion-mnist")
    ds = load_dataset("fashion-mnist", "test", tmp_path)
    assert ds.classes[0] == "T-shirt/top" and ds.classes[9] == "Ankle boot"


def test_data_root_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("ADVSHIELD_DATA", str(make_mnist_root(tmp_path, 30, 10)))
    assert len(load_dataset("mnist", "train")) == 30


def test_wrong_magic_rejected(tmp_path):
    p = tmp_path / "bad"
    p.write_bytes(b"\x12\x34\x08\x03" + b"\x00" * 100)
    with pytest.raises(DataError, match="magic"):
        read_idx(p)


def test_truncated_gzip_rejected(tmp_path):
    p = write_idx(tmp_path / "x.gz", np.zeros((50, 28, 28)))
    p.write_bytes(p.read_bytes()[:-30])
    with pytest.raises(DataError, match="truncated or corrupted"):
        read_idx(p)


def test_truncated_payload_rejected(tmp_path):
    p = write_idx(tmp_path / "x", np.zeros((50, 28, 28)), compress=False)
    p.write_bytes(p.read_bytes()[:-100])
    with pytest.raises(DataError, match="truncated"):
        read_idx(p)


def test_label_count_mismatch_rejected(tmp_path):
    root = make_mnist_root(tmp_path, 60, 20)
    write_idx(root / "mnist" / "t10k-labels-idx1-ubyte.gz", np.zeros(19))
    with pytest.raises(DataError, match="20 images but .* 19 labels"):
        load_dataset("mnist", "test", root)


def test_missing_files_message_says_what_and_where(tmp_path):
    with pytest.raises(DataError) as err:
        load_dataset("mnist", "train", tmp_path)
    msg = str(err.value)
    assert str(tmp_path) in msg and "train-images-idx3-ubyte" in msg and "download" in msg


def test_missing_root_rejected(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_dataset("cifar10", "train", tmp_path / "nope")


def test_embedded_sample_without_root():
    train, test = load_dataset("mnist", "train"), load_dataset("mnist", "test")
    assert (len(train), len(test)) == (5000, 1000)
    assert set(np.unique(train.labels)) == set(range(10))


def test_unknown_dataset():
    with pytest.raises(DataError, match="unknown dataset"):
        load_dataset("imagenet", "train")


def test_gzip_member_not_idx(tmp_path):
    p = tmp_path / "x.gz"
    p.write_bytes(gzip.compress(b"hello world"))
    with pytest.raises(DataError, match="not an IDX file"):
        read_idx(p)
