import io
import tarfile
import time

import numpy as np
import pytest
from PIL import Image

from advshield.data import load_dataset, load_folder_dataset, train_val_split
from advshield.data.core import ImageDataset
from advshield.errors import DataError


def _png(color, size=(40, 40)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return buf.getvalue()


def _make_tree(root, split="train", classes=("cat", "dog", "emu"), per_class=3, nested=""):
    for ci, c in enumerate(classes):
        d = root / split / c / nested
        d.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            (d / f"{i}.png").write_bytes(_png((ci * 100, 10, 10)))
    return root


def test_directory_with_resize(tmp_path):
    ds = load_folder_dataset(_make_tree(tmp_path), "train", size=16)
    assert ds.images.shape == (9, 3, 16, 16) and ds.classes == ["cat", "dog", "emu"]
    assert sorted(ds.labels.tolist()) == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    red = ds.images[:, 0].reshape(9, -1).mean(1)
    assert np.allclose(red, ds.labels * 100, atol=1)  # each image keeps its label ('dog' is red 100)


def test_folder_split_prefix_mixes_classes(tmp_path):
    """Class folders are read class by class; the fixed shuffle makes a prefix a class-mixed sample."""
    ds = load_folder_dataset(_make_tree(tmp_path, classes=tuple("abcdefghij"), per_class=10), "train", size=4)
    assert len(set(ds.head(20).labels.tolist())) >= 6
    again = load_folder_dataset(tmp_path, "train", size=4)
    assert np.array_equal(ds.labels, again.labels) and ds.fingerprint() == again.fingerprint()
    assert ds.head(50).fingerprint() != ds.subset(slice(50, 100)).fingerprint()


def test_tar_archive_matches_directory(tmp_path):
    _make_tree(tmp_path / "src")
    with tarfile.open(tmp_path / "set.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "src" / "train", arcname="set/train")
    a = load_folder_dataset(tmp_path / "src", "train", size=8)
    b = load_folder_dataset(tmp_path / "set.tar.gz", "train", size=8)
    assert np.array_equal(a.images, b.images) and np.array_equal(a.labels, b.labels)


def test_tinyimagenet_layout(tmp_path):
    _make_tree(tmp_path, "train", ("n01", "n02"), 2, nested="images")
    val = tmp_path / "val" / "images"
    val.mkdir(parents=True)
    for i, wnid in enumerate(["n02", "n01", "n02"]):
        (val / f"val_{i}.JPEG").write_bytes(_png((0, 0, 0)))
    (tmp_path / "val" / "val_annotations.txt").write_text(
        "".join(f"val_{i}.JPEG\t{w}\t0\t0\t1\t1\n" for i, w in enumerate(["n02", "n01", "n02"])))
    train = load_folder_dataset(tmp_path, "train", size=8)
    valset = load_folder_dataset(tmp_path, "val", size=8)
    assert len(train) == 4 and train.classes == ["n01", "n02"]
    assert sorted(valset.labels.tolist()) == [0, 1, 1]


def test_corrupted_image_rejected(tmp_path):
    _make_tree(tmp_path)
    (tmp_path / "train" / "cat" / "0.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(DataError, match="cannot decode"):
        load_folder_dataset(tmp_path, "train", size=8)


def test_truncated_archive_rejected(tmp_path):
    _make_tree(tmp_path / "src", per_class=20)
    with tarfile.open(tmp_path / "set.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "src" / "train", arcname="train")
    raw = (tmp_path / "set.tar.gz").read_bytes()
    (tmp_path / "set.tar.gz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError, match="truncated or corrupted"):
        load_folder_dataset(tmp_path / "set.tar.gz", "train", size=8)


def test_cifar_as_images_from_root_and_cache(tmp_path):
    classes = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    src = _make_tree(tmp_path / "src", "test", classes, 2)
    (tmp_path / "data" / "cifar10").mkdir(parents=True)
    with tarfile.open(tmp_path / "data" / "cifar10" / "cifar10-jpeg.tar.gz", "w:gz") as tar:
        tar.add(src / "test", arcname="test")
    first = load_dataset("cifar10", "test", tmp_path / "data")
    assert len(first) == 20 and first.images.shape[1:] == (3, 32, 32) and first.classes == classes
    t0 = time.perf_counter()
    again = load_dataset("cifar10", "test", tmp_path / "data")
    assert time.perf_counter() - t0 < 1.0 and np.array_equal(first.images, again.images)


def test_split_is_deterministic_and_disjoint():
    ds = ImageDataset(np.zeros((100, 1, 2, 2), np.uint8), np.arange(100) % 10, [str(i) for i in range(10)])
    a_tr, a_val = train_val_split(ds, 0.2, seed=3)
    b_tr, b_val = train_val_split(ds, 0.2, seed=3)
    c_tr, c_val = train_val_split(ds, 0.2, seed=4)
    assert len(a_val) == 20 and len(a_tr) == 80
    assert np.array_equal(a_val.labels, b_val.labels) and np.array_equal(a_tr.images, b_tr.images)
    marker = ImageDataset(np.arange(100, dtype=np.uint8).reshape(100, 1, 1, 1), np.zeros(100), ["x"])
    tr, val = train_val_split(marker, 0.2, seed=3)
    assert set(tr.images.ravel()).isdisjoint(val.images.ravel())
    _, val4 = train_val_split(marker, 0.2, seed=4)
    assert set(val.images.ravel()) != set(val4.images.ravel())


def test_batches_shuffle_is_seeded():
    ds = ImageDataset(np.arange(10, dtype=np.uint8).reshape(10, 1, 1, 1), np.zeros(10), ["x"])
    order = lambda seed: [int(v) for x, _ in ds.batches(3, shuffle=True, seed=seed) for v in (x * 255).round().ravel()]
    assert order(1) == order(1) and sorted(order(1)) == list(range(10)) and order(1) != order(2)
