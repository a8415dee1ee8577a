"""Detection metrics: the papers' detection accuracy, always beside FPR, ROC AUC and TPR at fixed FPRs."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.metrics import roc_auc_score, roc_curve


def tpr_at_fpr(clean: np.ndarray, adv: np.ndarray, fpr: float) -> float:
    """The best true-positive rate among thresholds whose false-positive rate is at most ``fpr``."""
    y = np.r_[np.zeros(len(clean)), np.ones(len(adv))]
    f, t, _ = roc_curve(y, np.r_[clean, adv])
    ok = f <= fpr + 1e-12
    return float(t[ok].max()) if ok.any() else 0.0


def detection_metrics(clean_scores: torch.Tensor, adv_scores: torch.Tensor, threshold: float) -> dict:
    """``detection_rate`` is the share of adversarial inputs flagged (the papers' detection accuracy);
    ``fpr`` the share of clean inputs flagged at the same threshold."""
    c, a = clean_scores.double().numpy(), adv_scores.double().numpy()
    y = np.r_[np.zeros(len(c)), np.ones(len(a))]
    both = len(c) and len(a)
    return {"threshold": float(threshold), "n_clean": int(len(c)), "n_adv": int(len(a)),
            "detection_rate": float((a > threshold).mean()) if len(a) else float("nan"),
            "fpr": float((c > threshold).mean()) if len(c) else float("nan"),
            "auc": float(roc_auc_score(y, np.r_[c, a])) if both else float("nan"),
            "tpr_at_1pct_fpr": tpr_at_fpr(c, a, 0.01) if both else float("nan"),
            "tpr_at_5pct_fpr": tpr_at_fpr(c, a, 0.05) if both else float("nan")}
