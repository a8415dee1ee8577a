"""Defense base class: an ``nn.Module`` mapping [0, 1] images to [0, 1] images.

A defense declares whether it is differentiable (if not, adaptive attacks use
its BPDA backward) and whether it is randomised (adaptive attacks then use EOT).
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from advshield.registry import Registry

DEFENSES: Registry["Defense"] = Registry("defense")
register_defense = DEFENSES.register


def is_restorer(name: str) -> bool:
    """A registered defense that must be trained (``kind="restorer"``), as opposed to a parameter-only one."""
    return name in DEFENSES and DEFENSES.entry(name).meta.get("kind") == "restorer"


class Defense(nn.Module):
    differentiable: ClassVar[bool] = True
    randomized: ClassVar[bool] = False

    def bpda(self, x: torch.Tensor, out: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        """Backward pass used in place of the true gradient (Athalye et al. 2018, BPDA).

        The default is the straight-through estimator: d defense(x) / dx ~ I.
        """
        return grad


class _BPDA(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, defense: Defense) -> torch.Tensor:
        with torch.no_grad():
            out = defense(x)
        ctx.save_for_backward(x, out)
        ctx.defense = defense
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, out = ctx.saved_tensors
        return ctx.defense.bpda(x, out, grad), None


def apply_with_bpda(defense: Defense, x: torch.Tensor) -> torch.Tensor:
    """``defense(x)`` in the forward pass, the defense's BPDA approximation in the backward pass."""
    return defense(x) if defense.differentiable else _BPDA.apply(x, defense)
