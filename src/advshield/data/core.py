"""The in-memory dataset type: decoded uint8 images plus labels, batched on demand."""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
import torch

from advshield.errors import DataError, InputError


class DatasetName(str, enum.Enum):
    """Datasets advshield knows how to find and load (RobustBench-style enum)."""

    MNIST = "mnist"
    FASHION_MNIST = "fashion-mnist"
    CIFAR10 = "cifar10"
    GTSRB = "gtsrb"


class Split(str, enum.Enum):
    TRAIN = "train"
    TEST = "test"


@dataclass
class ImageDataset:
    """Decoded images as uint8 ``(N, C, H, W)`` plus int64 labels.

    Kept as uint8 (4x smaller than float32); :meth:`batches` converts to
    float32 in [0, 1] one batch at a time, on the requested device.
    """

    images: np.ndarray
    labels: np.ndarray
    classes: list[str]
    name: str = "dataset"
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.images = np.ascontiguousarray(self.images)
        if self.images.dtype != np.uint8 or self.images.ndim != 4:
            raise DataError(f"{self.name}: images must be uint8 NCHW, got {self.images.dtype} {self.images.shape}")
        self.labels = np.asarray(self.labels, dtype=np.int64)
        if self.labels.shape != (len(self.images),):
            raise DataError(f"{self.name}: {len(self.images)} images but labels of shape {self.labels.shape}")
        if len(self.labels) and (self.labels.min() < 0 or self.labels.max() >= len(self.classes)):
            raise DataError(f"{self.name}: labels outside 0..{len(self.classes) - 1}")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def subset(self, index: np.ndarray | slice, name: str | None = None) -> "ImageDataset":
        return ImageDataset(self.images[index], self.labels[index], self.classes, name or self.name, dict(self.meta))

    def head(self, n: int | None) -> "ImageDataset":
        """The first ``n`` images (all of them when ``n`` is None or at least the size)."""
        if n is None:
            return self
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n <= 0:
            raise InputError(f"n must be a positive number of images (or None for all), got {n!r}")
        return self if n >= len(self) else self.subset(slice(0, int(n)))

    def require_images(self, what: str = "this operation") -> "ImageDataset":
        """``self``, or an :class:`InputError` when the dataset is empty (nothing to attack, train or score)."""
        if not len(self):
            raise InputError(f"{self.name} holds no images; {what} needs at least one")
        return self

    def fingerprint(self) -> str:
        """SHA-256 (16 hex digits) of the images, labels and their order: which data a stored result was made on."""
        h = hashlib.sha256(self.images.tobytes())
        h.update(self.labels.tobytes())
        return h.hexdigest()[:16]

    def tensors(self, index: np.ndarray | slice | None = None, device: torch.device | str = "cpu"):
        """Images as float32 in [0, 1] and labels as int64, on ``device``."""
        idx = slice(None) if index is None else index
        x = torch.from_numpy(np.ascontiguousarray(self.images[idx])).to(device)
        y = torch.from_numpy(self.labels[idx]).to(device)
        return x.float().div_(255.0), y

    def batches(
        self,
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
        device: torch.device | str = "cpu",
        drop_last: bool = False,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Stream (images, labels) batches; the order is a pure function of ``seed``."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size <= 0:
            raise InputError(f"batch_size must be a positive integer, got {batch_size!r}")
        n = len(self)
        order = np.random.default_rng(seed).permutation(n) if shuffle else np.arange(n)
        stop = n - n % batch_size if drop_last else n
        for start in range(0, stop, batch_size):
            idx = order[start : start + batch_size]
            if not shuffle:
                idx = slice(int(idx[0]), int(idx[-1]) + 1)
            yield self.tensors(idx, device)


def train_val_split(ds: ImageDataset, val_fraction: float, seed: int = 0) -> tuple[ImageDataset, ImageDataset]:
    """Deterministic split: the same ``seed`` always gives the same partition."""
    if not 0.0 <= val_fraction < 1.0:
        raise DataError(f"val_fraction must lie in [0, 1), got {val_fraction}")
    perm = np.random.default_rng(seed).permutation(len(ds))
    n_val = int(round(len(ds) * val_fraction))
    val_idx, train_idx = np.sort(perm[:n_val]), np.sort(perm[n_val:])
    return ds.subset(train_idx, f"{ds.name}-train"), ds.subset(val_idx, f"{ds.name}-val")
