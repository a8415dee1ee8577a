"""Trainable restoration defenses: common base, image-size checks, and loading from checkpoints."""

from __future__ import annotations

from pathlib import Path

import torch

from advshield.defenses.base import DEFENSES, Defense
from advshield.errors import CheckpointError, InputError


class Restorer(Defense):
    """A trainable image-to-image network; remembers its constructor arguments for the checkpoint card."""

    trainable = True

    def __init__(self, in_channels: int, image_size: int, **kwargs) -> None:
        super().__init__()
        if in_channels not in (1, 3):
            raise InputError(f"in_channels must be 1 or 3, got {in_channels}")
        self.in_channels, self.image_size = in_channels, image_size
        self.arch_kwargs = dict(in_channels=in_channels, image_size=image_size, **kwargs)

    def _check(self, x: torch.Tensor) -> None:
        if x.ndim != 4 or x.shape[1] != self.in_channels or tuple(x.shape[2:]) != (self.image_size,) * 2:
            raise InputError(f"{type(self).__name__} expects images of shape (N, {self.in_channels}, "
                             f"{self.image_size}, {self.image_size}), got {tuple(x.shape)}")


def clip01(y: torch.Tensor, training: bool) -> torch.Tensor:
    """Clip to [0, 1]; while training the gradient passes straight through (a hard clamp's zero
    gradient can leave a network stuck with every output saturated), at evaluation it is exact."""
    return y + (y.clamp(0.0, 1.0) - y).detach() if training else y.clamp(0.0, 1.0)


def restorer_kwargs(image_shape: tuple[int, int, int]) -> dict:
    """Constructor arguments matching a dataset's image shape (C, H, W)."""
    c, h, w = image_shape
    if h != w:
        raise InputError(f"restorers take square images, got {h}x{w}")
    return {"in_channels": c, "image_size": h}


def save_defense(path: str | Path, defense: Restorer, name: str, card: dict) -> dict:
    from advshield.checkpoint import save_model

    return save_model(path, defense, dict(card, architecture=name, kind="defense", arch_kwargs=defense.arch_kwargs))


def load_defense(path: str | Path, device: str | torch.device = "cpu") -> tuple[Restorer, dict]:
    """Rebuild a trained restorer from its safetensors file and card; returns (defense, card)."""
    from advshield.checkpoint import load_tensors, load_weights, read_card
    from advshield.device import fast_layout

    card = read_card(path)
    if card.get("kind") != "defense":
        raise CheckpointError(f"{path}: not a defense checkpoint (card kind {card.get('kind')!r})")
    defense = DEFENSES.create(card["architecture"], **card.get("arch_kwargs", {}))
    load_weights(defense, load_tensors(path, card), f"defense checkpoint {Path(path).name}")
    return fast_layout(defense.to(device), device).eval(), card
