"""Adversarial-example detectors: a score per input and a threshold calibrated at a stated FPR."""

from advshield.detectors.base import DETECTORS, Detector, register_detector
from advshield.detectors.cmag import CMAG, CMAGDetector, train_cmag
from advshield.detectors.magnet import (DivergenceDetector, MagNetAutoencoder, MagNetReformer,
                                        ReconstructionErrorDetector, train_autoencoder)
from advshield.detectors.metrics import detection_metrics, tpr_at_fpr

__all__ = ["CMAG", "CMAGDetector", "DETECTORS", "Detector", "DivergenceDetector", "MagNetAutoencoder", "MagNetReformer",
           "ReconstructionErrorDetector", "detection_metrics", "register_detector", "tpr_at_fpr", "train_cmag",
           "train_autoencoder"]
