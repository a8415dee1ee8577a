"""Training of target classifiers."""

from advshield.training.config import TrainConfig
from advshield.training.trainer import TrainResult, train_target

__all__ = ["TrainConfig", "TrainResult", "train_target"]
