"""Analyses of how adversarial perturbations travel through a classifier."""

from advshield.analysis.propagation import FeatureTaps, PropagationResult, distances, propagation

__all__ = ["FeatureTaps", "PropagationResult", "distances", "propagation"]
