"""Training of target classifiers."""

from advshield.training.config import TrainConfig
from advshield.training.trainer import TrainResult, finish_run, train_target

__all__ = ["TrainConfig", "TrainResult", "finish_run", "train_target"]
