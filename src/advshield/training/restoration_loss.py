"""Losses for training restorers: pixel terms and terms that look through frozen networks.

    w.mse * MSE (CRU-Net Eq. 10) + w.l1 * L1 (DKN Eq. 4) + w.ssim * (1 - SSIM)
    + w.perceptual * mean_l MSE(psi_l(out), psi_l(clean))   (DKN Eq. 5, psi a frozen feature network)
    + w.ce * CE(f(out), y)                                   (DKN Eq. 6, f the attacked classifier)
    + w.logit * |f(out) - f(clean)|_1                        (HGD's logit guidance, Liao et al. 2018)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from kornia.metrics import ssim as kornia_ssim
from torch.nn import functional as F

from advshield.training.defense_config import LossWeights


@dataclass
class LossGuide:
    """The frozen networks the guided terms look through, and the labels for ``ce``."""

    classifier: torch.nn.Module | None = None
    labels: torch.Tensor | None = None
    perceptual: torch.nn.Module | None = None  # a zoo classifier with named stages
    perceptual_layers: list[str] = field(default_factory=list)


def restoration_loss(out: torch.Tensor, clean: torch.Tensor, w: LossWeights, guide: LossGuide | None = None
                     ) -> torch.Tensor:
    guide = guide or LossGuide()
    loss = out.new_zeros(())
    if w.mse:
        loss = loss + w.mse * F.mse_loss(out, clean)
    if w.l1:
        loss = loss + w.l1 * F.l1_loss(out, clean)
    if w.ssim:
        loss = loss + w.ssim * (1 - kornia_ssim(out, clean, 11).mean())
    if w.perceptual:
        if guide.perceptual is None or not guide.perceptual_layers:
            raise ValueError("the perceptual loss term needs a perceptual network and its layers")
        got = guide.perceptual.features(out, guide.perceptual_layers)
        with torch.no_grad():
            want = guide.perceptual.features(clean, guide.perceptual_layers)
        loss = loss + w.perceptual * sum(F.mse_loss(got[k], want[k]) for k in got) / len(got)
    if w.guided:
        if guide.classifier is None or (w.ce and guide.labels is None):
            raise ValueError("classifier-guided loss terms need the classifier (and the labels for ce)")
        logits = guide.classifier(out)
        if w.ce:
            loss = loss + w.ce * F.cross_entropy(logits, guide.labels)
        if w.logit:
            with torch.no_grad():
                target = guide.classifier(clean)
            loss = loss + w.logit * F.l1_loss(logits, target)
    return loss
