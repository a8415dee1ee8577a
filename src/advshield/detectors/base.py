"""Detectors: a suspicion score per input (higher = more suspicious) and a calibrated threshold.

``calibrate_fpr`` sets the threshold at a chosen false-positive rate on held-out clean inputs;
``calibrate_max`` reproduces the papers' rule (MagNet, CMAG Algorithm 2): the largest score seen
on legitimate examples, i.e. no false positive on them. Scoring reports to an optional
``progress(done, total)`` (a progress bar) through :func:`report_batches`.
"""

from __future__ import annotations

import math
from typing import Callable, Iterable, Iterator, Sequence

import torch
from torch import nn

from advshield.errors import InputError
from advshield.registry import Registry
from advshield.validation import check_images

DETECTORS: Registry["Detector"] = Registry("detector")
register_detector = DETECTORS.register


class Detector(nn.Module):
    """Subclasses implement :meth:`score`; ``threshold`` is NaN until calibrated.

    A detector whose score runs an iterative search per batch (Defense-GAN's latent search) states its
    ``search_steps`` and calls ``self.step_progress(step, search_steps)`` after each step while it is set
    (by :func:`report_batches`).
    """

    search_steps = 1

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("_threshold", torch.tensor(math.nan))
        self.calibration: dict = {}
        self.step_progress: Callable[[int, int], None] | None = None

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
    def scores(self, batches: Iterable[torch.Tensor], device: torch.device | str = "cpu",
               progress: Callable[[int, int], None] | None = None) -> torch.Tensor:
        """The scores of every batch, in order; ``progress(done, total)`` as :func:`report_batches` gives it."""
        self.eval()
        if progress is not None:
            batches = report_batches(self, list(batches), progress)
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


def report_batches(detector: nn.Module, batches: Sequence, progress: Callable[[int, int], None] | None
                   ) -> Iterator:
    """``batches`` one at a time; with ``progress``, ``progress(done, total)`` counted in search steps (one per
    batch for a detector without a search): at the start, after each batch and after each step of a search."""
    if progress is None:
        yield from batches
        return
    unit = max(1, int(getattr(detector, "search_steps", 1)))
    total = len(batches) * unit
    progress(0, total)
    try:
        for b, x in enumerate(batches):
            if unit > 1:
                detector.step_progress = lambda step, _steps, b=b: progress(min(b * unit + step, total), total)
            yield x
            progress((b + 1) * unit, total)
    finally:
        if unit > 1:
            detector.step_progress = None
