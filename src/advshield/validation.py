"""Checks at the public boundary: images are float32 NCHW tensors in [0, 1]."""

from __future__ import annotations

import torch

from advshield.errors import InputError


def check_images(x: object, channels: int | None = None, name: str = "images") -> torch.Tensor:
    """Return ``x`` unchanged if it is a valid image batch, else raise :class:`InputError`."""
    if not isinstance(x, torch.Tensor):
        raise InputError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dtype != torch.float32:
        raise InputError(f"{name} must be float32 in [0, 1], got dtype {x.dtype}")
    if x.ndim != 4:
        raise InputError(f"{name} must be NCHW (4 dimensions), got shape {tuple(x.shape)}")
    if channels is not None and x.shape[1] != channels:
        raise InputError(f"{name} must have {channels} channel(s), got shape {tuple(x.shape)}")
    if x.numel():
        if not torch.isfinite(x).all():
            raise InputError(f"{name} contain NaN or infinite values")
        lo, hi = float(x.min()), float(x.max())
        if lo < 0.0 or hi > 1.0:
            raise InputError(f"{name} must lie in [0, 1], got values in [{lo:.4g}, {hi:.4g}]")
    return x


def check_labels(y: object, n: int, num_classes: int | None = None) -> torch.Tensor:
    if not isinstance(y, torch.Tensor) or y.dtype not in (torch.int64, torch.int32):
        raise InputError("labels must be an integer torch.Tensor")
    if y.shape != (n,):
        raise InputError(f"labels must have shape ({n},), got {tuple(y.shape)}")
    if num_classes is not None and y.numel() and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise InputError(f"labels must lie in [0, {num_classes - 1}]")
    return y
