"""Find a dataset's files under a data root and load one split of it.

The data root comes from ``--data-root`` or the ``ADVSHIELD_DATA`` variable.
Each dataset may sit in ``<root>/<dataset>/`` or directly in ``<root>``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np

from advshield.data import cache
from advshield.data.cifar import load_cifar10_dir
from advshield.data.classes import CIFAR10_CLASSES, FASHION_CLASSES, MNIST_CLASSES, compare_classes
from advshield.data.core import DatasetName, ImageDataset, Split
from advshield.data.folder import load_image_folder
from advshield.data.idx import read_idx_pair
from advshield.errors import DataError

DATA_ENV = "ADVSHIELD_DATA"

_IDX_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
              "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}

HOW_TO_GET = {
    DatasetName.MNIST: "the four IDX files (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
    "t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz; .gz or raw) in <root>/mnist/ or <root>/; "
    "download them from the MNIST page (yann.lecun.com/exdb/mnist or a mirror)",
    DatasetName.FASHION_MNIST: "the four IDX files of Fashion-MNIST (same names as MNIST) in "
    "<root>/fashion-mnist/; download them from github.com/zalandoresearch/fashion-mnist",
    DatasetName.CIFAR10: "cifar-10-batches-py/ or cifar-10-batches-bin/ (or cifar-10-python.tar.gz, "
    "cifar-10-binary.tar.gz, or a train/<class>/ image archive such as cifar10-jpeg.tar.gz) in "
    "<root>/cifar10/ or <root>/; download from www.cs.toronto.edu/~kriz/cifar.html",
    DatasetName.GTSRB: "a train/<class>/ and test/<class>/ image folder or .tar.gz (e.g. gtsrb32-png.tar.gz) in "
    "<root>/gtsrb/; download from benchmark.ini.rub.de (GTSRB)",
}


def resolve_root(root: str | Path | None) -> Path | None:
    root = root if root not in (None, "") else os.environ.get(DATA_ENV) or None
    return None if root is None else Path(root).expanduser()


def _candidates(root: Path, name: DatasetName) -> list[Path]:
    aliases = {DatasetName.CIFAR10: ["cifar10", "cifar-10"], DatasetName.FASHION_MNIST: ["fashion-mnist", "fashion_mnist"]}
    return [root / a for a in aliases.get(name, [name.value])] + [root]


def _find(root: Path, name: DatasetName, names: list[str]) -> Path | None:
    for folder in _candidates(root, name):
        for n in names:
            if (folder / n).exists():
                return folder / n
    return None


def _missing(name: DatasetName, root: Path) -> DataError:
    return DataError(f"{name.value} not found under {root}: expected {HOW_TO_GET[name]}")


def _load_idx(root: Path, name: DatasetName, split: str, classes: list[str]):
    img_name, lab_name = _IDX_FILES[split]
    paths = []
    for base in (img_name, lab_name):
        p = _find(root, name, [base + ".gz", base])
        if p is None:
            raise _missing(name, root)
        paths.append(p)

    def decode():
        images, labels = read_idx_pair(*paths)
        return images, labels, classes

    return paths, decode


def _load_cifar10(root: Path, split: str):
    name = DatasetName.CIFAR10
    for folder_name, binary in (("cifar-10-batches-py", False), ("cifar-10-batches-bin", True)):
        folder = _find(root, name, [folder_name])
        if folder is not None and folder.is_dir():
            files = sorted(p for p in folder.iterdir() if p.is_file())
            return files, lambda f=folder, b=binary: load_cifar10_dir(f, split, b)
    for archive_name, inner, binary in (("cifar-10-python.tar.gz", "cifar-10-batches-py", False),
                                        ("cifar-10-binary.tar.gz", "cifar-10-batches-bin", True)):
        archive = _find(root, name, [archive_name])
        if archive is not None:
            return [archive], lambda a=archive, i=inner, b=binary: load_cifar10_dir(cache.extracted(a, i), split, b)
    archive = _find(root, name, ["cifar10-jpeg.tar.gz", "cifar10-png.tar.gz", "cifar10-images"])
    if archive is None:
        raise _missing(name, root)

    def decode():
        images, labels, classes = load_image_folder(archive, split, size=32)
        compare_classes(classes, CIFAR10_CLASSES, f"{archive}: the {split} split", "CIFAR-10")
        return images, labels, classes

    return [archive], decode


def _load_gtsrb(root: Path, split: str):
    name = DatasetName.GTSRB
    source = _find(root, name, ["gtsrb32-png.tar.gz", "GTSRB"])
    if source is None:
        raise _missing(name, root)
    return [source], lambda: load_image_folder(source, split, size=32)


_LOADERS: dict[DatasetName, Callable] = {
    DatasetName.MNIST: lambda r, s: _load_idx(r, DatasetName.MNIST, s, MNIST_CLASSES),
    DatasetName.FASHION_MNIST: lambda r, s: _load_idx(r, DatasetName.FASHION_MNIST, s, FASHION_CLASSES),
    DatasetName.CIFAR10: _load_cifar10,
    DatasetName.GTSRB: _load_gtsrb,
}


def load_dataset(name: str | DatasetName, split: str | Split = "train", root: str | Path | None = None,
                 use_cache: bool = True) -> ImageDataset:
    """Load one split of a known dataset as an :class:`ImageDataset`.

    With no root (no ``--data-root`` and no ``ADVSHIELD_DATA``), MNIST falls
    back to the embedded sample; other datasets raise a :class:`DataError`
    that says which files are expected and how to obtain them.
    """
    try:
        name = DatasetName(name)
    except ValueError:
        raise DataError(f"unknown dataset {name!r}; choose one of: "
                        f"{', '.join(d.value for d in DatasetName)}") from None
    try:
        split = Split(split).value
    except ValueError:
        raise DataError(f"unknown split {split!r}; choose one of: {', '.join(s.value for s in Split)}") from None
    base = resolve_root(root)
    if base is None:
        if name is DatasetName.MNIST:
            from advshield.data.sample import load_mnist_sample

            return load_mnist_sample(split)
        raise DataError(f"no data root given for {name.value}: pass --data-root or set {DATA_ENV}; "
                        f"expected {HOW_TO_GET[name]}")
    if not base.is_dir():
        raise DataError(f"data root {base} does not exist; expected {HOW_TO_GET[name]}")
    paths, decode = _LOADERS[name](base, split)
    key = cache.source_key(paths, dataset=name.value, split=split, version=2)  # 2: folder splits shuffled
    hit = cache.load_cached(key) if use_cache else None
    images, labels, classes = hit if hit is not None else decode()
    if not len(labels):
        raise DataError(f"{name.value}/{split} under {base} holds no images; expected {HOW_TO_GET[name]}")
    if hit is None and use_cache:
        cache.save_cached(key, images, labels, classes)
    return ImageDataset(images, labels, classes, f"{name.value}-{split}",
                        {"dataset": name.value, "split": split, "source": paths[0].relative_to(base).as_posix()})


def load_folder_dataset(source: str | Path, split: str = "train", size: int | None = 32,
                        grayscale: bool = False) -> ImageDataset:
    """Any class-per-folder set (directory or tar), e.g. TinyImageNet (``split='val'``)."""
    source = Path(source)
    images, labels, classes = load_image_folder(source, split, size, "L" if grayscale else "RGB")
    if not len(labels):
        raise DataError(f"{source}: the {split} split holds no images")
    return ImageDataset(images, labels, classes, f"{source.name}-{split}", {"source": source.name, "split": split})


def dataset_stats(ds: ImageDataset) -> dict:
    mean = ds.images.mean(axis=(0, 2, 3), dtype=np.float64) / 255.0
    return {"n": len(ds), "shape": list(ds.shape), "mean": mean.round(4).tolist(),
            "class_counts": np.bincount(ds.labels, minlength=ds.num_classes).tolist()}
