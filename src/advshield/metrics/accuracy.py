"""Clean-accuracy evaluation, streamed batch by batch."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:  # metrics sit below the data layer: only the type is named
    from advshield.data.core import ImageDataset


@torch.no_grad()
def accuracy(model: torch.nn.Module, ds: "ImageDataset", batch_size: int = 500, device="cpu") -> float:
    """Top-1 accuracy of ``model`` on ``ds`` (model is put in eval mode)."""
    model.eval()
    correct = 0
    for x, y in ds.batches(batch_size, device=device):
        correct += int((model(x).argmax(1) == y).sum())
    return correct / max(len(ds), 1)
