"""Adversarial-example detectors: a score per input and a threshold calibrated at a stated FPR."""

from advshield.detectors.base import DETECTORS, Detector, register_detector
from advshield.detectors.checkpoint import load_detector, save_detector
from advshield.detectors.factory import build_detector, make_detector
from advshield.detectors.cmag import CMAG, CMAGDetector, train_cmag
from advshield.detectors.defense_gan import (DefenseGANDetector, DefenseGANReconstruction, Generator, Projection,
                                             project, train_wgan_gp)
from advshield.detectors.magnet import (DivergenceDetector, MagNetAutoencoder, MagNetReformer,
                                        ReconstructionErrorDetector, train_autoencoder)

__all__ = ["CMAG", "CMAGDetector", "DETECTORS", "DefenseGANDetector", "DefenseGANReconstruction", "Detector",
           "Generator", "Projection", "project", "train_wgan_gp", "DivergenceDetector", "MagNetAutoencoder", "MagNetReformer",
           "ReconstructionErrorDetector", "build_detector", "load_detector", "make_detector", "save_detector", "register_detector", "train_cmag",
           "train_autoencoder"]
