"""Class-per-folder image sets from a directory or a .tar/.tar.gz archive.

Layouts understood (``<split>/<class>/**/<image>``):

* GTSRB, CIFAR-10-as-images: ``train/<class>/*.png``;
* TinyImageNet: ``train/<wnid>/images/*.JPEG``, and ``val/images`` with
  ``val/val_annotations.txt`` for the validation split.

Classes are the sorted folder names; every image is converted to RGB (or L for
grayscale sets) and resized to ``size`` x ``size`` with bilinear filtering.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image, UnidentifiedImageError

from advshield.data.classes import check_split_classes
from advshield.errors import DataError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".gif", ".tif", ".tiff", ".webp"}


FOLDER_ORDER_SEED = 0
SPLIT_NAMES = ("train", "test", "val")


def _decode(blob: bytes, where: str, size: int | None, mode: str) -> np.ndarray:
    try:
        img = Image.open(io.BytesIO(blob))
        img = img.convert(mode)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DataError(f"{where}: cannot decode image ({exc})") from None
    if size is not None and img.size != (size, size):
        img = img.resize((size, size), Image.BILINEAR)
    arr = np.asarray(img, dtype=np.uint8)
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def _assemble(items: list[tuple[str, str, bytes]], where: str, size: int | None, mode: str,
              split: str, paths: list[PurePosixPath]):
    """items: (class name, member name, encoded bytes) -> images, labels, classes."""
    if not items:
        raise DataError(f"{where}: no images of the {split} split found in class folders ({split}/<class>/...)")
    classes = sorted({c for c, _, _ in items})
    others = {s: sorted(set(_split_members(paths, s).values())) for s in SPLIT_NAMES if s != split}
    check_split_classes(where, split, classes, others)  # before decoding: a mismatch fails fast
    index = {c: i for i, c in enumerate(classes)}
    items.sort(key=lambda t: (t[0], t[1]))
    # Class folders list a split class by class; a fixed shuffle makes every prefix (``head(n)``, the first
    # n_train images) a random, class-mixed sample, as in the official CIFAR-10 files.
    order = np.random.default_rng(FOLDER_ORDER_SEED).permutation(len(items))
    items = [items[i] for i in order]
    images = [_decode(b, f"{where}:{m}", size, mode) for _, m, b in items]
    shapes = {im.shape for im in images}
    if len(shapes) > 1:
        raise DataError(f"{where}: images differ in size {sorted(shapes)[:3]}; pass a resize size")
    return np.stack(images), np.array([index[c] for c, _, _ in items], dtype=np.int64), classes


def _tiny_val_labels(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) >= 2:
            out[parts[0]] = parts[1]
    return out


def _split_members(paths: list[PurePosixPath], split: str) -> dict[PurePosixPath, str]:
    """Map each image path under ``<...>/<split>/`` to its class name."""
    out: dict[PurePosixPath, str] = {}
    for p in paths:
        if p.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        parts = p.parts
        if split not in parts:
            continue
        i = parts.index(split)
        rest = parts[i + 1 :]
        if len(rest) >= 2 and rest[0] != "images":
            out[p] = rest[0]
    return out


def load_image_folder(source: str | Path, split: str, size: int | None = None, mode: str = "RGB"):
    """Load ``<source>/<split>/<class>/...`` from a directory or a tar archive."""
    source = Path(source)
    if not source.exists():
        raise DataError(f"{source}: no such directory or archive")
    if source.is_dir():
        files = [PurePosixPath(p.relative_to(source).as_posix()) for p in source.rglob("*") if p.is_file()]
        classes = _split_members(files, split)
        items = [(c, str(p), (source / p).read_bytes()) for p, c in classes.items()]
        ann = source / split / "val_annotations.txt"
        if not items and ann.is_file():
            labels = _tiny_val_labels(ann.read_text())
            items = [(labels[p.name], str(p), (source / p).read_bytes()) for p in files
                     if p.parent.name == "images" and p.name in labels]
        return _assemble(items, str(source), size, mode, split, files)
    try:
        with tarfile.open(source, "r:*") as tar:
            members = {PurePosixPath(m.name): m for m in tar.getmembers() if m.isfile()}
            classes = _split_members(list(members), split)
            items = [(c, str(p), tar.extractfile(members[p]).read()) for p, c in classes.items()]
            ann = [p for p in members if p.name == "val_annotations.txt" and split in p.parts]
            if not items and ann:
                labels = _tiny_val_labels(tar.extractfile(members[ann[0]]).read().decode())
                items = [(labels[p.name], str(p), tar.extractfile(members[p]).read()) for p in members
                         if p.parent.name == "images" and p.name in labels]
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise DataError(f"{source}: cannot read archive ({exc}); the file is truncated or corrupted") from None
    return _assemble(items, str(source), size, mode, split, list(members))
