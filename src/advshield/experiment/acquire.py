"""The one way to get an adversarial set: find it in the store or craft it there (resumable).

The store key is built here and nowhere else, by one convention per threat model:

* ``white-box``: the victim's own set;
* ``transfer``: the substitute's white-box set (same images, seeds and attack), shared by every
  victim it is transferred to and judged on each victim by :func:`judge`;
* ``transfer-feedback``: crafted on the substitute, stopped on the victim's labels (so it depends on both);
* ``adaptive``: crafted through the victim's defense, named by ``defense_id``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from advshield.adversarial import AdversarialSpec, generate_adversarial_set
from advshield.attacks import AttackResult, Pipeline, ThreatModel
from advshield.attacks.base import DETECTOR_OBJECTIVE
from advshield.attacks.pipeline import Detector
from advshield.data import ImageDataset
from advshield.defenses import Defense
from advshield.errors import InputError
from advshield.experiment.context import RunContext, Target
from advshield.experiment.setting import AttackSetting


@dataclass
class StoredSet:
    """An acquired set: its folder in the store, the attack's result as crafted, and whether it was found.

    ``result.adv`` is a lazy :class:`~advshield.tensorfile.StoredImages` view of the stored images: slice it
    per batch (``result.adv[a:b]``), select rows with a mask or index tensor, or ``.materialize()`` all of them.
    """

    folder: Path
    result: AttackResult
    cached: bool

    @property
    def key(self) -> str:
        return self.folder.name


def acquire_set(setting: AttackSetting, victim: Target, data: ImageDataset, ctx: RunContext, *,
                dataset: str, split: str = "test", substitute: Target | None = None,
                defense: Defense | None = None, defense_id: dict | None = None,
                detector: Detector | None = None, detector_id: dict | None = None,
                eot_samples: int = 8, progress: Callable[[int, int], None] | None = None) -> StoredSet:
    """``setting``'s set on ``data`` (already cut to the images wanted) for ``victim``.

    ``split`` names the images in the key (e.g. ``test`` or a shard ``test[0:500]``); ``substitute`` is
    needed by the transfer kinds; ``adaptive`` attacks through ``defense`` and/or ``detector`` (named by
    their ids): the detector-aware objective of the attack engine (misclassified and under the threshold).
    """
    attack = setting.create()
    kind = setting.threat.kind
    if setting.threat.transfers and substitute is None:
        raise InputError(f"setting {setting.name}: the {kind.value} threat model needs a substitute classifier")
    if kind is ThreatModel.ADAPTIVE and defense is None and detector is None:
        raise InputError(f"setting {setting.name}: the adaptive threat model needs the defense or detector it "
                         "attacks through")
    if (defense is not None and defense_id is None) or (detector is not None and detector_id is None):
        raise InputError(f"setting {setting.name}: an adaptive set is named by its defense's or detector's id")
    if kind is ThreatModel.TRANSFER:
        owner, pipeline, sub, threat, extra = substitute, Pipeline(substitute.model), None, ThreatModel.WHITE_BOX, {}
    elif kind is ThreatModel.TRANSFER_FEEDBACK:
        owner, pipeline, sub, threat = victim, Pipeline(victim.model), substitute.model, kind
        extra = {"substitute_sha256": substitute.sha256}
    elif kind is ThreatModel.ADAPTIVE:
        guard = defense_id if detector is None else {"defense": defense_id, "detector": detector_id,
                                                     "objective": DETECTOR_OBJECTIVE}
        if defense is not None and defense.randomized:  # EOT over more draws is another attack
            guard = {"guard": guard, "eot_samples": eot_samples}
        owner, pipeline, sub, threat, extra = victim, Pipeline(victim.model, defense, detector), None, kind, {"defense": guard}
    else:
        owner, pipeline, sub, threat, extra = victim, Pipeline(victim.model), None, kind, {}
    spec = AdversarialSpec(owner.sha256, setting.attack, attack.params(), dataset, split, len(data), ctx.seed,
                           threat.value, **extra)
    if progress is None and ctx.progress is not None:
        what = f"{setting.name} ({setting.threat}) on {victim.architecture}"
        progress = lambda done, total: ctx.progress(what, done, total)  # noqa: E731
    folder, result, cached = generate_adversarial_set(spec, attack, pipeline, data, ctx.store, substitute=sub,
                                                      batch_size=ctx.batch_size, device=ctx.device,
                                                      eot_samples=eot_samples, progress=progress)
    return StoredSet(folder, result, cached)


def on_victim(stored: StoredSet, setting: AttackSetting, pipeline: Pipeline, data: ImageDataset,
              ctx: RunContext) -> AttackResult:
    """The stored set judged on the victim ``pipeline``: as stored when the victim crafted it (white-box or
    transfer-feedback on an undefended victim, adaptive through its defense), else re-read with :func:`judge`
    (a transfer set, or a set crafted on the classifier alone and judged through a defense or detector)."""
    guarded = pipeline.defense is not None or pipeline.detector is not None
    if setting.threat.kind is ThreatModel.TRANSFER or (guarded and not setting.threat.adaptive):
        return judge(stored.result, pipeline, data, ctx)
    return stored.result


@torch.no_grad()
def judge(stored: AttackResult, pipeline: Pipeline, data: ImageDataset, ctx: RunContext) -> AttackResult:
    """The stored set's images judged on ``pipeline`` (a victim that did not craft them: transfer, or a
    defended pipeline under white-box); the crafting model's predictions become ``surface_adv_pred``. The
    images are read from the store one batch at a time and handed on as the same lazy view."""
    pipeline.to(ctx.device).eval()
    clean, adv, det_clean, det_adv = [], [], [], []
    for start in range(0, len(data), ctx.batch_size):
        x, _ = data.tensors(slice(start, start + ctx.batch_size), ctx.device)
        a = stored.adv[start:start + ctx.batch_size].to(ctx.device)
        clean.append(pipeline.predict(x).cpu())
        adv.append(pipeline.predict(a).cpu())
        if pipeline.detector is not None:
            det_clean.append(pipeline.detected(x).cpu())
            det_adv.append(pipeline.detected(a).cpu())
    return AttackResult(stored.adv, stored.labels, torch.cat(clean), torch.cat(adv), dict(stored.norms),
                        stored.seconds, stored.target, stored.adv_pred, torch.cat(det_clean) if det_clean else None,
                        torch.cat(det_adv) if det_adv else None, dict(stored.info))


__all__ = ["StoredSet", "acquire_set", "judge", "on_victim"]
