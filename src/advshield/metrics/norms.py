"""Perturbation norms per image (L0 over changed pixels, L2, L-inf)."""

from __future__ import annotations

import torch


def perturbation_norms(adv: torch.Tensor, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per image: ``l0`` (entries changed by more than 1e-6), ``l2`` and ``linf`` of ``adv - x``."""
    d = (adv - x).flatten(1)
    return {"l0": (d.abs() > 1e-6).sum(1).float(), "l2": d.norm(p=2, dim=1), "linf": d.abs().amax(1)}
