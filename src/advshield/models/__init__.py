"""Target-classifier zoo: every model registered by name, normalisation inside."""

from advshield.models import cifar, gtsrb, mnist, propagation  # noqa: F401  (registers the models)
from advshield.models.base import MODELS, Classifier, Normalize, count_parameters, create_model, register_model

__all__ = ["MODELS", "Classifier", "Normalize", "count_parameters", "create_model", "register_model"]
