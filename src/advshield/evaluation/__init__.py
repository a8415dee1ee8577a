"""Evaluation of defenses: metrics, threat models, reports and figures."""

from advshield.evaluation.restoration import CleanCache, RestorationCache, Samples, Setting, evaluate_setting, summarise
from advshield.evaluation.run import resolve_defense, run_evaluation
from advshield.evaluation.similarity import psnr, ssim

__all__ = ["CleanCache", "RestorationCache", "Samples", "Setting", "evaluate_setting", "psnr", "resolve_defense",
           "run_evaluation", "ssim", "summarise"]
