import os
import pickle
import tarfile

import numpy as np
import pytest

from advshield.data import load_dataset
from advshield.data.cifar import safe_unpickle
from advshield.errors import DataError
from conftest import cifar_python_batch, make_cifar_binary, make_cifar_python


def test_python_version(tmp_path):
    root = make_cifar_python(tmp_path, n=8)
    train, test = load_dataset("cifar10", "train", root), load_dataset("cifar10", "test", root)
    assert (len(train), len(test)) == (40, 8) and train.images.shape[1:] == (3, 32, 32)
    ref = cifar_python_batch(8, 5)  # test_batch was written with seed 5
    assert np.array_equal(test.images.reshape(8, -1), ref[b"data"]) and test.labels.tolist() == ref[b"labels"]
    assert train.classes[0] == "airplane" and train.classes[9] == "truck"


def test_python_version_protocol4(tmp_path):
    p = tmp_path / "b"
    p.write_bytes(pickle.dumps(cifar_python_batch(3, 0), protocol=4))
    assert isinstance(safe_unpickle(p), dict)


def test_binary_version(tmp_path):
    root = make_cifar_binary(tmp_path, n=8)
    train = load_dataset("cifar10", "train", root)
    assert len(train) == 40 and train.labels.max() <= 9


def test_python_tarball(tmp_path):
    make_cifar_python(tmp_path / "src", n=4)
    with tarfile.open(tmp_path / "cifar-10-python.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "src" / "cifar10" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    assert len(load_dataset("cifar10", "train", tmp_path)) == 20


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > pwned.txt",))


def test_pickle_with_foreign_object_rejected(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    root = make_cifar_python(tmp_path, n=4)
    batch = cifar_python_batch(4, 0)
    batch[b"extra"] = Evil()
    (root / "cifar10" / "cifar-10-batches-py" / "data_batch_3").write_bytes(pickle.dumps(batch, protocol=2))
    with pytest.raises(DataError, match="forbidden object"):
        load_dataset("cifar10", "train", root)
    assert not (tmp_path / "pwned.txt").exists()


def test_pickle_with_foreign_class_rejected(tmp_path):
    p = tmp_path / "b"
    p.write_bytes(pickle.dumps({b"data": tarfile.TarInfo("x")}))
    with pytest.raises(DataError, match="forbidden object tarfile.TarInfo"):
        safe_unpickle(p)


def test_truncated_binary_rejected(tmp_path):
    root = make_cifar_binary(tmp_path, n=8)
    p = root / "cifar10" / "cifar-10-batches-bin" / "test_batch.bin"
    p.write_bytes(p.read_bytes()[:-10])
    with pytest.raises(DataError, match="truncated or corrupted"):
        load_dataset("cifar10", "test", root)


def test_truncated_pickle_rejected(tmp_path):
    root = make_cifar_python(tmp_path, n=8)
    p = root / "cifar10" / "cifar-10-batches-py" / "test_batch"
    p.write_bytes(p.read_bytes()[:200])
    with pytest.raises(DataError):
        load_dataset("cifar10", "test", root)


def test_label_count_mismatch_rejected(tmp_path):
    root = make_cifar_python(tmp_path, n=8)
    batch = cifar_python_batch(8, 0)
    batch[b"labels"] = batch[b"labels"][:-1]
    (root / "cifar10" / "cifar-10-batches-py" / "test_batch").write_bytes(pickle.dumps(batch, protocol=2))
    with pytest.raises(DataError, match="8 images but 7 labels"):
        load_dataset("cifar10", "test", root)


def test_labels_out_of_range_rejected(tmp_path):
    root = make_cifar_binary(tmp_path, n=4)
    p = root / "cifar10" / "cifar-10-batches-bin" / "test_batch.bin"
    raw = bytearray(p.read_bytes())
    raw[0] = 42
    p.write_bytes(bytes(raw))
    with pytest.raises(DataError, match="labels outside"):
        load_dataset("cifar10", "test", root)


def test_incomplete_folder_rejected(tmp_path):
    root = make_cifar_python(tmp_path, n=4)
    (root / "cifar10" / "cifar-10-batches-py" / "data_batch_2").unlink()
    with pytest.raises(DataError, match="missing data_batch_2"):
        load_dataset("cifar10", "train", root)
