"""Honest evaluation of a restoration defense against attacks under a threat model.

For every attack the report gives, on the same images: clean accuracy, clean
accuracy through the defense, adversarial accuracy without the defense,
restored accuracy, the papers' success rate (restored / clean accuracy,
CRU-Net Eq. 14, DIR Eq. 8), the recovery rate over originally correct images,
SSIM/PSNR of the restored (and of the adversarial) images against the
originals, and mean perturbation norms.

Threat models (see :mod:`advshield.attacks.pipeline`): ``white-box`` and
``transfer`` attack the classifier (or a substitute) and ignore the defense,
as the papers do; ``adaptive`` differentiates through classifier(defense(x))
(exact gradients for a differentiable restorer, BPDA / EOT otherwise).
Adversarial sets come from the content-addressed store, so a rerun is cheap.
Under torchrun each process evaluates a shard and the sums are reduced.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Callable

import torch

from advshield.attacks.ensemble import member_robust_accuracy
from advshield.data import ImageDataset
from advshield.defenses import Defense
from advshield.experiment import AttackSetting, RunContext, Target, acquire_set
from advshield.metrics.similarity import PAPER_PSNR_OFFSET_DB, psnr, ssim

_SUMS = ("clean_correct", "defended_clean_correct", "adv_correct", "restored_correct", "recovered", "fooled",
         "ssim_restored", "psnr_restored", "ssim_adv", "psnr_adv", "ssim_defended_clean", "l2", "linf", "n",
         "seconds")


@dataclass
class Samples:
    """A few images per attack for figures (originals, adversarials, restored), and per image of this process's
    shard whether the classifier is right through the defense on the clean image (``clean_correct``) and on the
    attacked one (``restored_correct``); ``correct`` is both (for the per-image worst case over attacks: an
    image wrong when clean is never robust)."""

    x: torch.Tensor
    adv: torch.Tensor
    restored: torch.Tensor
    labels: torch.Tensor
    clean_correct: torch.Tensor | None = None
    restored_correct: torch.Tensor | None = None  # the row's restored accuracy is its mean

    @property
    def correct(self) -> torch.Tensor | None:
        if self.clean_correct is None or self.restored_correct is None:
            return None
        return self.clean_correct & self.restored_correct


class RestorationCache:
    """Restorer outputs shared by every evaluation of one run, kept on the CPU up to ``max_bytes``.

    A reproduction restores the same stored sets with the same restorer under several classifiers (the
    transfer rows and the papers' "restorer trained for the other net" tables), and the output does not depend
    on who reads it. Keys name the defense, the input (a stored set's key or the clean test images) and the
    batch; randomised defenses are never cached. ``max_bytes=0`` caches nothing.
    """

    def __init__(self, max_bytes: int = 2 << 30) -> None:
        self.max_bytes, self.bytes, self.hits = max_bytes, 0, 0
        self._out: dict[tuple, torch.Tensor] = {}

    @torch.no_grad()
    def restore(self, defense: Defense, key: tuple, x: torch.Tensor) -> torch.Tensor:
        if defense.randomized:
            return defense(x)
        if key in self._out:
            self.hits += 1
            return self._out[key].to(x.device)
        out = defense(x)
        size = out.numel() * out.element_size()
        if self.bytes + size <= self.max_bytes:
            self._out[key] = out.cpu()
            self.bytes += size
        return out


class CleanCache:
    """Per-image clean-side results of one (classifier, deterministic defense, test data) triple.

    Every setting of an evaluation runs over the first n images of the same data in the same batches, so the
    clean predictions and the clean images' pass through the defense (as costly as restoring the adversarial
    batch) are computed once per image instead of once per setting. Keys are absolute image indices.
    """

    def __init__(self) -> None:
        self._rows: dict[int, tuple[bool, bool, float]] = {}

    @torch.no_grad()
    def clean_side(self, classifier, restore, x, y, first: int):
        """(clean correct, defended clean correct, SSIM of defended clean vs clean) per image of the batch."""
        idx = range(first, first + len(y))
        if all(i in self._rows for i in idx):
            ok, dok, sim = zip(*(self._rows[i] for i in idx))
            return (torch.tensor(ok, device=y.device), torch.tensor(dok, device=y.device),
                    torch.tensor(sim, dtype=torch.float64))
        ok, dok, sim = _clean_side(classifier, restore, x, y)
        self._rows.update(zip(idx, zip(ok.tolist(), dok.tolist(), sim.tolist())))
        return ok, dok, sim


def _clean_side(classifier, restore, x, y):
    defended_clean = restore(x)
    return (classifier(x).argmax(1) == y, classifier(defended_clean).argmax(1) == y,
            ssim(defended_clean, x).double().cpu())


@torch.no_grad()
def _accumulate(classifier, randomized: bool, restore_adv, restore_clean, x, adv, y, sums: dict,
                cache: CleanCache | None = None, first: int = 0) -> tuple[torch.Tensor, ...]:
    """Add one batch to ``sums``; ``restore_adv`` / ``restore_clean`` apply the defense to either input.
    Returns (restored images, and per image: right on the restored attacked image, right through the defense
    when clean)."""
    restored = restore_adv(adv)
    if cache is None or randomized:  # a randomised defense draws anew for every setting
        clean_ok, defended_ok, ssim_dc = _clean_side(classifier, restore_clean, x, y)
    else:
        clean_ok, defended_ok, ssim_dc = cache.clean_side(classifier, restore_clean, x, y, first)
    sums["clean_correct"] += int(clean_ok.sum())
    sums["defended_clean_correct"] += int(defended_ok.sum())
    adv_ok = classifier(adv).argmax(1) == y
    sums["adv_correct"] += int(adv_ok.sum())
    sums["fooled"] += int((clean_ok & ~adv_ok).sum())
    rest_ok = classifier(restored).argmax(1) == y
    sums["restored_correct"] += int(rest_ok.sum())
    sums["recovered"] += int((clean_ok & rest_ok).sum())
    sums["ssim_restored"] += float(ssim(restored, x).sum())
    sums["psnr_restored"] += float(psnr(restored, x).sum())
    sums["ssim_adv"] += float(ssim(adv, x).sum())
    sums["psnr_adv"] += float(psnr(adv, x).sum())
    sums["ssim_defended_clean"] += float(ssim_dc.sum())
    delta = (adv - x).flatten(1)
    sums["l2"] += float(delta.norm(dim=1).sum())
    sums["linf"] += float(delta.abs().amax(1).sum())
    sums["n"] += len(y)
    return restored, rest_ok, defended_ok


def summarise(sums: dict) -> dict:
    n = max(sums["n"], 1)
    clean_acc = sums["clean_correct"] / n
    restored_acc = sums["restored_correct"] / n
    return {
        "n": int(sums["n"]),
        "clean_accuracy": clean_acc,
        "defended_clean_accuracy": sums["defended_clean_correct"] / n,
        "adv_accuracy": sums["adv_correct"] / n,
        "restored_accuracy": restored_acc,
        "success_rate": restored_acc / clean_acc if clean_acc else 0.0,
        "recovery_rate": sums["recovered"] / sums["clean_correct"] if sums["clean_correct"] else 0.0,
        "attack_success_rate": sums["fooled"] / sums["clean_correct"] if sums["clean_correct"] else 0.0,
        "ssim_restored": sums["ssim_restored"] / n,
        "psnr_restored": sums["psnr_restored"] / n,
        "psnr_restored_paper_convention": sums["psnr_restored"] / n + PAPER_PSNR_OFFSET_DB,
        "ssim_adv": sums["ssim_adv"] / n,
        "psnr_adv": sums["psnr_adv"] / n,
        "ssim_defended_clean": sums["ssim_defended_clean"] / n,
        "mean_l2": sums["l2"] / n,
        "mean_linf": sums["linf"] / n,
        "attack_seconds": round(sums["seconds"], 2),
    }


def evaluate_setting(setting: AttackSetting, victim: Target, defense: Defense, defense_id: dict, data: ImageDataset,
                     ctx: RunContext, *, dataset: str, substitute: Target | None = None, eot_samples: int = 8,
                     n_samples: int = 2, progress: Callable[[int, int], None] | None = None,
                     clean_cache: CleanCache | None = None, restoration_cache: RestorationCache | None = None
                     ) -> tuple[dict, Samples]:
    """One row of the report: ``setting`` on this process's shard of ``data``, reduced over processes.

    Pass the same ``clean_cache`` to every setting of one (classifier, defense, data), and the same
    ``restoration_cache`` to every evaluation of a run, to skip repeated work.
    """
    whole = data.head(setting.n)
    shard = ctx.dist.shard(len(whole))
    part = whole.subset(shard)
    split = f"test[{shard.start}:{shard.stop}]" if ctx.dist.enabled else "test"
    stored = acquire_set(setting, victim, part, ctx, dataset=dataset, split=split, substitute=substitute,
                         defense=defense, defense_id=defense_id, eot_samples=eot_samples, progress=progress)
    result, set_key = stored.result, stored.key
    classifier, batch_size, device = victim.model, ctx.batch_size, ctx.device
    sums = dict.fromkeys(_SUMS, 0.0)
    sums["seconds"] = result.seconds
    defense.eval()
    samples, clean_right, restored_right = None, [], []
    offset = shard.start  # the shard's first image in ``data``
    restorations = restoration_cache or RestorationCache(max_bytes=0)
    defense_key = json.dumps(defense_id, sort_keys=True, default=str)
    data_key = data.fingerprint() if restoration_cache is not None else None
    for start in range(0, len(part), batch_size):
        x, y = part.tensors(slice(start, start + batch_size), device)
        adv = result.adv[start:start + batch_size].to(device)  # read from the store batch by batch
        first = offset + start
        batch = (defense_key, first, len(y))
        restored, restored_ok, clean_ok = _accumulate(classifier, defense.randomized,
                               lambda t: restorations.restore(defense, ("adv", set_key, *batch), t),
                               lambda t: restorations.restore(defense, ("clean", data_key, *batch), t),
                               x, adv, y, sums, clean_cache, first)
        clean_right.append(clean_ok.cpu())
        restored_right.append(restored_ok.cpu())
        if samples is None:
            samples = Samples(x[:n_samples].cpu(), adv[:n_samples].cpu(), restored[:n_samples].cpu(), y[:n_samples].cpu())
    samples.clean_correct, samples.restored_correct = torch.cat(clean_right), torch.cat(restored_right)
    row = summarise(ctx.dist.all_sum(sums))
    label = {"label": setting.label} if setting.label else {}
    # the per-member record is judged on the surface the set was crafted on: it is the row's own robust accuracy
    # only through the defense (adaptive) or where there is no defense
    judged_here = setting.threat.adaptive or (defense_id.get("name") == "none" and not setting.threat.transfers)
    ensemble = hasattr(setting.create(), "members")  # only an ensemble keeps a record: no collective for the rest
    members = _members_row(result, len(part), len(whole), ctx) if judged_here and ensemble else {}
    return dict(attack=setting.attack, **label, params=setting.create().params(), threat=str(setting.threat),
                **row, **members), samples


def _members_row(result, n_part: int, n: int, ctx: RunContext) -> dict:
    """An ensemble's robust accuracy after each member (AutoAttack: APGD-CE, APGD-T, FAB-T, Square; cumulative,
    judged as the attack judged success), over every process's shard; {} for a single attack or a set stored
    without its per-member record. Issue 25: the per-member numbers are kept in the card."""
    has = "broken_by" in result.info
    if ctx.dist.all_sum({"ranks_with_record": float(has)})["ranks_with_record"] < ctx.dist.world_size or not has:
        return {}  # (every rank takes part in the same collectives, whatever its store held)
    after = member_robust_accuracy(result)
    counts = ctx.dist.all_sum({f"{i:02d}": v * n_part for i, v in enumerate(after.values())})
    skipped = {"skipped_members": list(result.info["skipped_members"])} if result.info.get("skipped_members") else {}
    version = {"version_run": result.info["version"]} if result.info.get("version") else {}  # 'auto' resolved
    return {"robust_accuracy_after": {name: counts[f"{i:02d}"] / max(n, 1) for i, name in enumerate(after)},
            **skipped, **version}


__all__ = ["CleanCache", "RestorationCache", "Samples", "evaluate_setting", "summarise"]
