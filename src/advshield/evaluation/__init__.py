"""Evaluation of restoration defenses: restored accuracy, recovery, similarity, under every threat model."""

from advshield.evaluation.restoration import CleanCache, RestorationCache, Samples, evaluate_setting, summarise
from advshield.evaluation.run import run_evaluation

__all__ = ["CleanCache", "RestorationCache", "Samples", "evaluate_setting", "run_evaluation",
           "summarise"]
