"""Every metric in one place: accuracy, restoration similarity (SSIM/PSNR), detection (FPR, AUC, TPR@FPR),
robust accuracy with its confidence interval, and perturbation norms (all layer 0: torch, numpy, kornia,
scikit-learn only)."""

from advshield.metrics.accuracy import accuracy
from advshield.metrics.detection import detection_metrics, tpr_at_fpr
from advshield.metrics.interval import wilson_interval
from advshield.metrics.norms import perturbation_norms
from advshield.metrics.similarity import PAPER_PSNR_OFFSET_DB, PSNR_CAP_DB, psnr, ssim

__all__ = ["PAPER_PSNR_OFFSET_DB", "PSNR_CAP_DB", "accuracy", "detection_metrics", "perturbation_norms", "psnr", "ssim", "tpr_at_fpr",
           "wilson_interval"]
