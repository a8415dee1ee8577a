"""Run an attack over many images under a threat model, batch by batch."""

from __future__ import annotations

from typing import Iterator

import torch
from torch import nn

from advshield.attacks.base import ATTACKS, Attack, AttackResult, craft_batch, run_batch
from advshield.attacks.pipeline import Pipeline, ThreatModel
from advshield.device import module_device


def create_attack(name: str, **params) -> Attack:
    """A registered attack by name, e.g. ``create_attack("pgd", eps=0.3, steps=40)``."""
    return ATTACKS.create(name, **params)


def _batches(pipeline: Pipeline | nn.Module, x: torch.Tensor, labels: torch.Tensor, target: torch.Tensor | None,
             threat, substitute: nn.Module | None, eot_samples: int, batch_size: int,
             device) -> Iterator[tuple[Pipeline, nn.Module, int, torch.Tensor, torch.Tensor, torch.Tensor | None]]:
    """(pipeline, attack surface, batch index, images, labels, targets) per batch, on ``device``."""
    if not isinstance(pipeline, Pipeline):
        pipeline = Pipeline(pipeline)
    if device is None:
        device = module_device(pipeline)
    pipeline.to(device)
    if substitute is not None:
        substitute.to(device)
    surface = pipeline.surface(threat, substitute, eot_samples)
    for i, start in enumerate(range(0, len(x), batch_size)):
        sl = slice(start, start + batch_size)
        t = target[sl].to(device) if target is not None else None
        yield pipeline, surface, i, x[sl].to(device), labels[sl].to(device), t


def run_attack(attack: Attack, pipeline: Pipeline | nn.Module, x: torch.Tensor, labels: torch.Tensor, *,
               threat: ThreatModel | str = ThreatModel.WHITE_BOX, substitute: nn.Module | None = None,
               eot_samples: int = 8, target: torch.Tensor | None = None, batch_size: int = 256, seed: int = 0,
               device: torch.device | str | None = None) -> AttackResult:
    """Craft adversarial examples for ``x`` and judge them on the pipeline.

    ``x`` may live on the CPU: batches move to ``device`` (default: the
    pipeline's) one at a time, and the results come back to the CPU. Batch
    ``i`` uses seed ``seed + i``, so results do not depend on what ran before.
    """
    parts = [_to_cpu(run_batch(attack, surface, pipe, xb, yb, target=tb, seed=seed + i))
             for pipe, surface, i, xb, yb, tb in _batches(pipeline, x, labels, target, threat, substitute,
                                                          eot_samples, batch_size, device)]
    result = AttackResult.concat(parts)
    result.info.update(threat=ThreatModel(threat).value)
    return result


def craft_images(attack: Attack, pipeline: Pipeline | nn.Module, x: torch.Tensor, labels: torch.Tensor, *,
                 threat: ThreatModel | str = ThreatModel.WHITE_BOX, substitute: nn.Module | None = None,
                 eot_samples: int = 8, target: torch.Tensor | None = None, batch_size: int = 256, seed: int = 0,
                 device: torch.device | str | None = None) -> torch.Tensor:
    """The adversarial images :func:`run_attack` returns (same batches, same seeds), on the CPU, without judging
    them: no clean or adversarial predictions, no norms. The call to time against a library whose attack
    returns images only (equal work); :func:`run_attack` is the one that gives a verdict."""
    parts = []
    for _, surface, i, xb, yb, tb in _batches(pipeline, x, labels, target, threat, substitute, eot_samples,
                                              batch_size, device):
        adv, _ = craft_batch(attack, surface, xb, yb, target=tb, seed=seed + i)
        attack.__dict__.pop("_last_info", None)
        parts.append(adv.cpu())
    return torch.cat(parts) if parts else x.new_empty((0, *x.shape[1:]))


def _to_cpu(r: AttackResult) -> AttackResult:
    for name in ("adv", "labels", "clean_pred", "adv_pred", "target", "surface_adv_pred", "detected_clean",
                 "detected_adv"):
        v = getattr(r, name)
        if v is not None:
            setattr(r, name, v.cpu())
    r.norms = {k: v.cpu() for k, v in r.norms.items()}
    r.info = {k: v.cpu() if isinstance(v, torch.Tensor) else v for k, v in r.info.items()}
    return r
