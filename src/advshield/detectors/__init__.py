"""Adversarial-example detectors: a score per input and a threshold calibrated at a stated FPR."""

from advshield.detectors.base import DETECTORS, Detector, register_detector
from advshield.detectors.magnet import (DivergenceDetector, MagNetAutoencoder, MagNetReformer,
                                        ReconstructionErrorDetector, train_autoencoder)
from advshield.detectors.metrics import detection_metrics, tpr_at_fpr

__all__ = ["DETECTORS", "Detector", "DivergenceDetector", "MagNetAutoencoder", "MagNetReformer",
           "ReconstructionErrorDetector", "detection_metrics", "register_detector", "tpr_at_fpr",
           "train_autoencoder"]
