"""Detectors: a suspicion score per input (higher = more suspicious) and a calibrated threshold.

``calibrate_fpr`` sets the threshold at a chosen false-positive rate on held-out clean inputs;
``calibrate_max`` reproduces the papers' rule (MagNet, CMAG Algorithm 2): the largest score seen
on legitimate examples, i.e. no false positive on them.
"""

from __future__ import annotations

import math
from typing import Iterable

import torch
from torch import nn

from advshield.errors import InputError
from advshield.registry import Registry
from advshield.validation import check_images

DETECTORS: Registry["Detector"] = Registry("detector")
register_detector = DETECTORS.register


class Detector(nn.Module):
    """Subclasses implement :meth:`score`; ``threshold`` is NaN until calibrated."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("_threshold", torch.tensor(math.nan))
        self.calibration: dict = {}

    @property
    def threshold(self) -> float:
        return float(self._threshold)

    def score(self, x: torch.Tensor) -> torch.Tensor:
        r = self.reconstruct(x)
        if r is None:
            raise NotImplementedError(f"{type(self).__name__} must implement score or reconstruct")
        return self.score_reconstruction(x, r)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor | None:
        """The image a reconstruction-based detector compares ``x`` with; None for the others."""
        return None

    def score_reconstruction(self, x: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def inspect(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(scores, reconstructions or None) from one reconstruction pass."""
        r = self.reconstruct(x)
        return (self.score(x), None) if r is None else (self.score_reconstruction(x, r), r)

    @torch.no_grad()
    def scores(self, batches: Iterable[torch.Tensor], device: torch.device | str = "cpu") -> torch.Tensor:
        self.eval()
        return torch.cat([self.score(check_images(x).to(device)).cpu() for x in batches])

    def calibrate_fpr(self, clean_scores: torch.Tensor, fpr: float) -> float:
        """Threshold = the (1 - fpr) quantile of clean scores: at most ``fpr`` of them lie above it."""
        if not 0 <= fpr < 1:
            raise InputError(f"fpr must lie in [0, 1), got {fpr}")
        if clean_scores.numel() == 0:
            raise InputError("calibration needs clean scores")
        s = clean_scores.double().sort().values
        k = min(int(math.floor((1 - fpr) * len(s))), len(s) - 1)
        self._threshold.fill_(float(s[k]))
        self.calibration = {"rule": "fpr", "fpr": fpr, "n": len(s)}
        return self.threshold

    def calibrate_max(self, clean_scores: torch.Tensor) -> float:
        """The papers' rule: the largest score among legitimate examples."""
        self._threshold.fill_(float(clean_scores.max()))
        self.calibration = {"rule": "max", "n": int(clean_scores.numel())}
        return self.threshold

    @torch.no_grad()
    def flag(self, x: torch.Tensor) -> torch.Tensor:
        if math.isnan(self.threshold):
            raise InputError(f"{type(self).__name__} is not calibrated: call calibrate_fpr or calibrate_max first")
        return self.score(x) > self.threshold
