"""Trained detectors as checkpoints: safetensors plus a JSON card, like every model here.

The attacked classifier is not stored (CMAG and MagNet's divergence detector hold a reference to it):
the card names it by SHA-256 and :func:`load_detector` refuses another one. The calibrated threshold
(a buffer) travels with the weights, the calibration rule and the recipe with the card.
"""

from __future__ import annotations

from pathlib import Path

import torch

from advshield.checkpoint import library_versions, load_tensors, load_weights, read_card, save_tensors
from advshield.detectors.base import Detector
from advshield.detectors.defense_gan import Projection
from advshield.detectors.factory import make_detector
from advshield.errors import CheckpointError

ARCH_PREFIX = "detector:"


def _own_tensors(detector: Detector, classifier: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The detector's state without the classifier it references (under whatever attribute path)."""
    prefixes = tuple(f"{name}." for name, m in detector.named_modules(remove_duplicate=False) if m is classifier)
    return {k: v for k, v in detector.state_dict().items() if not (prefixes and k.startswith(prefixes))}


def save_detector(path: str | Path, detector: Detector, kind: str, *, classifier: torch.nn.Module,
                  classifier_card: dict, image_shape: tuple[int, int, int], recipe: dict | None = None) -> dict:
    """Write ``detector`` (without the classifier's weights) to ``path`` and its card; returns the card.

    What :func:`make_detector` needs besides the weights (Defense-GAN's latent search, CMAG's merge) is read
    off the detector itself.
    """
    model = getattr(detector, "model", None)
    card = {"architecture": ARCH_PREFIX + kind, "kind": "detector", "detector": kind,
            "target": classifier_card.get("architecture"), "target_sha256": classifier_card.get("sha256"),
            "dataset": classifier_card.get("dataset"), "image_shape": list(image_shape),
            "projection": vars(getattr(detector, "projection", Projection())),
            "seed": getattr(detector, "seed", 0), "cmag_combine": getattr(model, "combine", "attention"),
            "threshold": detector.threshold, "calibration": detector.calibration, "recipe": recipe or {},
            "versions": library_versions()}
    return save_tensors(path, _own_tensors(detector, classifier), card)


def load_detector(path: str | Path, classifier: torch.nn.Module, classifier_sha: str | None = None,
                  device: torch.device | str = "cpu") -> tuple[Detector, dict]:
    """Rebuild a detector saved by :func:`save_detector` around ``classifier``; returns (detector, card)."""
    card = read_card(path)
    kind = card["architecture"].removeprefix(ARCH_PREFIX)
    if card.get("kind") != "detector" or not card["architecture"].startswith(ARCH_PREFIX):
        raise CheckpointError(f"{path}: card describes {card['architecture']!r}, not a detector")
    if classifier_sha and card.get("target_sha256") and card["target_sha256"] != classifier_sha:
        raise CheckpointError(f"{path}: detector was trained for classifier {card.get('target')} "
                              f"({card['target_sha256'][:12]}), not the one given ({classifier_sha[:12]})")
    detector = make_detector(kind, classifier, tuple(card["image_shape"]), projection=Projection(**card["projection"]),
                             seed=card.get("seed"), cmag_combine=card.get("cmag_combine", "attention"))
    own = _own_tensors(detector, classifier)
    state = load_tensors(path, card)
    state.update({k: v for k, v in detector.state_dict().items() if k not in own})  # the classifier's, as given
    load_weights(detector, state, f"detector checkpoint {Path(path).name} (card says {kind})")
    detector.calibration = dict(card.get("calibration") or {})
    return detector.to(device).eval(), card


__all__ = ["load_detector", "save_detector"]
