"""Checks at the public boundary: images are float32 NCHW tensors in [0, 1], labels int64 class indices.

Each check raises :class:`InputError` with one line that says what was given and what to pass instead, so a
list, a numpy array, an empty batch or a label outside the model's classes never surfaces as a raw
AttributeError or IndexError from deep inside torch.
"""

from __future__ import annotations

import torch

from advshield.errors import InputError


def _kind(x: object) -> str:
    t = type(x)
    return t.__name__ if t.__module__ == "builtins" else f"{t.__module__.split('.')[0]}.{t.__name__}"


def check_images(x: object, channels: int | None = None, name: str = "images",
                 allow_empty: bool = True) -> torch.Tensor:
    """Return ``x`` unchanged if it is a valid image batch, else raise :class:`InputError`."""
    if not isinstance(x, torch.Tensor):
        hint = " (convert with torch.from_numpy(x).float() / 255 for uint8 arrays)" if hasattr(x, "__array__") else ""
        raise InputError(f"{name} must be a torch.Tensor, got {_kind(x)}{hint}")
    if x.dtype != torch.float32:
        raise InputError(f"{name} must be float32 in [0, 1], got dtype {x.dtype}")
    if x.ndim != 4:
        raise InputError(f"{name} must be NCHW (4 dimensions), got shape {tuple(x.shape)}")
    if channels is not None and x.shape[1] != channels:
        raise InputError(f"{name} must have {channels} channel(s), got shape {tuple(x.shape)}")
    if not allow_empty and x.shape[0] == 0:
        raise InputError(f"{name} is an empty batch (shape {tuple(x.shape)}); pass at least one image")
    if x.numel():
        if not torch.isfinite(x).all():
            raise InputError(f"{name} contain NaN or infinite values")
        lo, hi = float(x.min()), float(x.max())
        if lo < 0.0 or hi > 1.0:
            raise InputError(f"{name} must lie in [0, 1], got values in [{lo:.4g}, {hi:.4g}]")
    return x


def check_labels(y: object, n: int, num_classes: int | None = None, name: str = "labels") -> torch.Tensor:
    """Return ``y`` unchanged if it holds ``n`` class indices (in ``0..num_classes-1`` when given)."""
    if not isinstance(y, torch.Tensor) or y.dtype not in (torch.int64, torch.int32):
        got = _kind(y) if not isinstance(y, torch.Tensor) else f"a tensor of dtype {y.dtype}"
        raise InputError(f"{name} must be an integer torch.Tensor (e.g. torch.tensor(labels)), got {got}")
    if y.shape != (n,):
        raise InputError(f"{name} must have shape ({n},), one per image, got {tuple(y.shape)}")
    if y.numel():
        lo, hi = int(y.min()), int(y.max())
        if lo < 0 or (num_classes is not None and hi >= num_classes):
            top = "" if num_classes is None else f"{num_classes - 1}"
            raise InputError(f"{name} must be class indices in [0, {top or 'number of classes - 1'}], "
                             f"got values in [{lo}, {hi}]")
    return y


def num_classes_of(model: object) -> int | None:
    """The number of classes ``model`` predicts (a Classifier, or a Pipeline around one), if it says."""
    for m in (model, getattr(model, "classifier", None)):
        n = getattr(m, "num_classes", None)
        if isinstance(n, int) and n > 0:
            return n
    return None


def check_batch(x: object, labels: object, model: object = None, channels: int | None = None,
                name: str = "images") -> tuple[torch.Tensor, torch.Tensor]:
    """Validate a non-empty image batch and its labels (in ``model``'s class range when it states one)."""
    check_images(x, channels, name, allow_empty=False)
    check_labels(labels, x.shape[0], num_classes_of(model))
    return x, labels
