"""Detectors by registered name: :data:`DETECTORS` is the one list of kinds (CLI, presets, checkpoints)."""

from __future__ import annotations

from typing import Callable

import torch

from advshield.detectors import cmag, defense_gan, magnet  # noqa: F401  (registrations)
from advshield.detectors.base import DETECTORS, Detector
from advshield.detectors.defense_gan import Projection


def make_detector(kind: str, classifier: torch.nn.Module, image_shape: tuple[int, int, int], *,
                  projection: Projection = Projection(), seed: int | None = 0, cmag_combine: str = "attention") -> Detector:
    """An untrained detector of ``kind`` around ``classifier`` (what :func:`build_detector` trains)."""
    return DETECTORS.create(kind, classifier=classifier, image_shape=tuple(image_shape), projection=projection,
                            seed=seed, cmag_combine=cmag_combine)


def build_detector(kind: str, classifier: torch.nn.Module, clean: torch.Tensor, *, epochs: int, seed: int,
                   device: torch.device, projection: Projection = Projection(), gan_lr: float = 1e-4,
                   cmag_combine: str = "attention", progress: Callable[[str, int, int], None] | None = None
                   ) -> tuple[Detector, dict]:
    """Train the generative part of ``kind`` on ``clean`` images; returns the detector and its training history.
    ``progress(what, done, total)`` follows the training (what: ``fit <kind> <phase>``)."""
    torch.manual_seed(seed)
    det = make_detector(kind, classifier, tuple(clean.shape[1:]), projection=projection, seed=seed,
                        cmag_combine=cmag_combine)
    report = {} if progress is None else {"progress": lambda what, done, total: progress(f"fit {kind} {what}", done,
                                                                                          total)}
    history = DETECTORS.entry(kind).meta["fit"](det, clean, epochs=epochs, seed=seed, device=device, gan_lr=gan_lr,
                                                **report)
    return det.to(device).eval(), history


__all__ = ["build_detector", "make_detector"]
