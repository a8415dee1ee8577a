"""Bad input gives one clear advshield error, never a silent wrong number or a raw traceback."""

import io
import sys
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

from advshield.data import ImageDataset, check_classes, load_dataset, load_folder_dataset
from advshield.errors import ClassMismatchError, DataError, InputError
from advshield.validation import check_batch, check_images, check_labels, num_classes_of
from advshield.zoo import load_pretrained
from conftest import make_mnist_root


def _png(value: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (value, 0, 0)).save(buf, "PNG")
    return buf.getvalue()


def _gtsrb_tree(root, test_classes=range(43)):
    for split, classes in (("train", range(43)), ("test", test_classes)):
        for c in classes:
            d = root / "gtsrb" / "GTSRB" / split / f"{c:05d}"
            d.mkdir(parents=True)
            (d / "0.png").write_bytes(_png(c))
    return root


def test_missing_test_class_folder_is_named(tmp_path):
    """The zoo GTSRB model fell from 0.938 to 0.000 when one test class folder was missing: now an error."""
    root = _gtsrb_tree(tmp_path, test_classes=[c for c in range(43) if c != 17])
    for split in ("test", "train"):  # training on it would make a model whose labels the test split does not share
        with pytest.raises(ClassMismatchError, match="the test and train splits have different class folders: "
                                                     "the test split lacks 00017"
                           if split == "test" else "the train and test splits .*: the test split lacks 00017"):
            load_dataset("gtsrb", split, root)


def test_extra_class_folder_in_an_archive_is_named(tmp_path):
    archive = tmp_path / "set.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for split, classes in (("train", ["cat", "dog"]), ("test", ["cat", "dog", "emu"])):
            for c in classes:
                info = tarfile.TarInfo(f"set/{split}/{c}/0.png")
                blob = _png(len(c))
                info.size = len(blob)
                tar.addfile(info, io.BytesIO(blob))
    with pytest.raises(ClassMismatchError, match="the train split lacks emu"):
        load_folder_dataset(archive, "test", size=8)
    with pytest.raises(InputError, match="the train split lacks emu"):  # also an InputError
        load_folder_dataset(archive, "train", size=8)


def test_check_classes_against_a_model_card(tmp_path):
    _, card = load_pretrained("gtsrb-cnn", "gtsrb")
    root = _gtsrb_tree(tmp_path)
    ds = load_dataset("gtsrb", "test", root)
    assert check_classes(ds, card) is ds
    fewer = ImageDataset(ds.images[:2], np.array([0, 1]), ds.classes[:42], "gtsrb-fewer")
    with pytest.raises(ClassMismatchError, match="lacks 00042"):
        check_classes(fewer, card)
    with pytest.raises(ClassMismatchError, match="has extra 42"):
        check_classes(ImageDataset(ds.images[:1], np.array([0]), ds.classes + ["42"]), dict(card, classes=None))
    with pytest.raises(ClassMismatchError, match="predicts 7"):
        check_classes(fewer, {"architecture": "x", "dataset": "mine", "num_classes": 7})


@pytest.mark.parametrize("n", [0, -1, -100, 2.5, True])
def test_head_rejects_non_positive_n(n):
    ds = load_dataset("mnist", "test")
    with pytest.raises(InputError, match="n must be a positive number of images"):
        ds.head(n)


def test_head_none_and_large_mean_all():
    ds = load_dataset("mnist", "test")
    assert ds.head(None) is ds and ds.head(10**9) is ds and len(ds.head(np.int64(3))) == 3


def test_empty_split_is_a_data_error(tmp_path):
    root = make_mnist_root(tmp_path, n_train=5, n_test=0)
    with pytest.raises(DataError, match="mnist/test under .* holds no images"):
        load_dataset("mnist", "test", root)


def test_empty_dataset_cannot_be_attacked():
    from advshield.adversarial import AdversarialSpec, generate_adversarial_set
    from advshield.attacks import FGSM, Pipeline

    model, card = load_pretrained("a-net", "mnist")
    empty = load_dataset("mnist", "test").subset(slice(0, 0))
    spec = AdversarialSpec(card["sha256"], "fgsm", {"eps": 0.1}, "mnist", "test", 5)
    with pytest.raises(InputError, match="holds no images; an adversarial set needs at least one"):
        generate_adversarial_set(spec, FGSM(0.1), Pipeline(model), empty, "unused-store")


def test_bad_batch_size_is_an_input_error():
    with pytest.raises(InputError, match="batch_size must be a positive integer"):
        next(load_dataset("mnist", "test").batches(0))


def test_labels_of_the_wrong_shape_are_a_data_error():
    with pytest.raises(DataError, match="2 images but labels of shape"):
        ImageDataset(np.zeros((2, 1, 4, 4), np.uint8), np.int64(3), ["a"])


@pytest.fixture(scope="module")
def anet():
    return load_pretrained("a-net", "mnist")[0]


X = torch.rand(4, 1, 28, 28)
Y = torch.tensor([1, 2, 3, 4])


@pytest.mark.parametrize("x, y, message", [
    (X, [1, 2, 3, 4], "labels must be an integer torch.Tensor .* got list"),
    (X.numpy(), Y, r"images must be a torch.Tensor, got numpy.ndarray \(convert with torch.from_numpy"),
    (X[:0], Y[:0], "images is an empty batch"),
    (X, torch.tensor([1, 2, 3, 12]), r"labels must be class indices in \[0, 9\], got values in \[1, 12\]"),
    (X, torch.tensor([1, 2, 3, -1]), r"labels must be class indices in \[0, 9\], got values in \[-1, 3\]"),
    (X, Y.float(), "labels must be an integer torch.Tensor .* got a tensor of dtype torch.float32"),
    (X, Y[:3], r"labels must have shape \(4,\), one per image"),
])
def test_check_batch_explains_the_problem(anet, x, y, message):
    with pytest.raises(InputError, match=message):
        check_batch(x, y, anet)


def test_checks_pass_valid_input_through(anet):
    from advshield.attacks import Pipeline

    assert check_batch(X, Y, Pipeline(anet)) == (X, Y) and num_classes_of(Pipeline(anet)) == 10
    assert check_images(X[:0]) is not None and check_labels(Y, 4) is Y and num_classes_of(object()) is None


def test_cli_class_mismatch_is_one_line(tmp_path, monkeypatch, capsys):
    from advshield.cli import main

    root = _gtsrb_tree(tmp_path, test_classes=range(42))
    monkeypatch.setattr(sys, "argv", ["advshield", "data", "info", "--dataset", "gtsrb", "--data-root", str(root)])
    with pytest.raises(SystemExit) as exit_:
        main()
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and err.count("\n") == 0 and "lacks 00042" in err


@pytest.mark.parametrize("n", ["0", "-3"])
def test_cli_attack_non_positive_n_is_one_line(tmp_path, monkeypatch, capsys, n):
    from advshield.cli import main

    monkeypatch.setattr(sys, "argv", ["advshield", "attack", "--model", "a-net", "--attack", "fgsm", "--eps", "0.1",
                                      "--n", n, "--out", str(tmp_path), "--json"])
    with pytest.raises(SystemExit) as exit_:
        main()
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and err.count("\n") == 0 and err.startswith("error: ") and "--n" in err
    assert not any(tmp_path.iterdir())  # nothing stored
