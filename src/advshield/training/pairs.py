"""(adversarial, clean) training pairs for restoration defenses, built with the attack engine.

The training images are split among the attack mix in proportion (e.g. the
propagation paper's 0.05:0.30:0.05:0.30:0.30); every part is crafted once and
kept in the content-addressed adversarial-set store, unless it is marked
``on_the_fly``, in which case it is crafted afresh every epoch.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import torch

from advshield.attacks import Pipeline, run_attack
from advshield.data import ImageDataset
from advshield.experiment import RunContext, Target, acquire_set
from advshield.training.defense_config import AttackMix


def allocate(proportions: list[float], n: int) -> list[int]:
    """Split ``n`` items in the given proportions (largest remainders), summing exactly to ``n``."""
    total = sum(proportions)
    raw = [p / total * n for p in proportions]
    counts = [int(r) for r in raw]
    for i in sorted(range(len(raw)), key=lambda i: counts[i] - raw[i])[: n - sum(counts)]:
        counts[i] += 1
    return counts


@dataclass
class PairSource:
    """One attack's share of the images and its pairs (``adv`` None until built)."""

    mix: AttackMix
    data: ImageDataset
    label: str  # names the image subset in the store key
    adv: torch.Tensor | None = None
    key: str | None = None

    @property
    def name(self) -> str:
        return self.mix.key

    def clean(self) -> torch.Tensor:
        return self.data.tensors()[0]


def plan_sources(mixes: list[AttackMix], data: ImageDataset, indices: np.ndarray, tag: str) -> list[PairSource]:
    """Give each attack of the mix its contiguous share of ``indices`` (already shuffled)."""
    sources, start = [], 0
    for mix, count in zip(mixes, allocate([m.proportion for m in mixes], len(indices))):
        idx = np.sort(indices[start:start + count])
        digest = hashlib.sha256(idx.astype(np.int64).tobytes()).hexdigest()[:12]
        sources.append(PairSource(mix, data.subset(idx), f"{tag}[{count}:{digest}]"))
        start += count
    return sources


def build_source(src: PairSource, victim: Target, ctx: RunContext, dataset: str, *, epoch: int | None = None,
                 substitute: Target | None = None) -> None:
    """Fill ``src.adv``: identity for ``clean``, the store for fixed pairs, a fresh run for on-the-fly ones.

    ``substitute`` is what transfer sources are crafted on.
    """
    if len(src.data) == 0 or src.mix.name == "clean":
        src.adv = src.clean()
        return
    setting = src.mix.setting(substitute.name if substitute else None)
    if src.mix.on_the_fly and epoch is not None:  # not stored: a fresh draw every epoch
        x, y = src.data.tensors()
        r = run_attack(setting.create(), Pipeline(victim.model), x, y, threat=setting.threat.kind,
                       substitute=substitute.model if setting.threat.transfers else None,
                       batch_size=ctx.batch_size, seed=ctx.seed * 7919 + epoch * 104_729, device=ctx.device)
        src.adv = r.adv
        return
    stored = acquire_set(setting, victim, src.data, ctx, dataset=dataset, split=src.label,
                         substitute=substitute if setting.threat.transfers else None)
    src.adv, src.key = stored.result.adv.materialize(), stored.key  # training stacks every pair in memory
