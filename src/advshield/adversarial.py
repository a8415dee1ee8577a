"""Adversarial datasets on disk: computed once, named by content, resumable.

A set lives in ``<root>/<key>/``, where ``key`` hashes everything that
determines it: the target checkpoint's SHA-256, the attack and its
parameters, the threat model (and substitute / defense), the dataset split
and subset, and the seed. Shards are written atomically as they finish, so a
crash loses at most one shard; ``meta.json`` is written last and marks the
set complete. Images are stored exactly (float32 safetensors).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import torch

from advshield.attacks import Attack, AttackResult, Pipeline, ThreatModel, run_attack
from advshield.checkpoint import load_tensors, save_tensors
from advshield.data import ImageDataset
from advshield.io import atomic_write_json

SHARD = 500
_TENSORS = ("adv", "labels", "clean_pred", "adv_pred", "surface_adv_pred", "target", "detected_clean", "detected_adv")


@dataclass(frozen=True)
class AdversarialSpec:
    """What determines an adversarial set (and so its name)."""

    checkpoint_sha256: str
    attack: str
    attack_params: dict[str, Any]
    dataset: str
    split: str
    n: int
    seed: int = 0
    threat: str = ThreatModel.WHITE_BOX.value
    substitute_sha256: str | None = None
    defense: dict[str, Any] | None = None
    data_sha256: str | None = None  # the images attacked (filled in by generate_adversarial_set)

    def key(self) -> str:
        blob = json.dumps(self.__dict__, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _result_tensors(r: AttackResult) -> dict[str, torch.Tensor]:
    out = {k: getattr(r, k) for k in _TENSORS if getattr(r, k) is not None}
    out.update({f"norm_{k}": v for k, v in r.norms.items()})
    return out


def _result_from(tensors: dict[str, torch.Tensor], seconds: float) -> AttackResult:
    norms = {k[5:]: v for k, v in tensors.items() if k.startswith("norm_")}
    return AttackResult(tensors["adv"], tensors["labels"], tensors["clean_pred"], tensors["adv_pred"], norms, seconds,
                        target=tensors.get("target"), surface_adv_pred=tensors.get("surface_adv_pred"),
                        detected_clean=tensors.get("detected_clean"), detected_adv=tensors.get("detected_adv"))


def load_adversarial_set(folder: str | Path) -> tuple[AttackResult, dict]:
    """(result, meta) of a complete set."""
    folder = Path(folder)
    meta = json.loads((folder / "meta.json").read_text())
    tensors = load_tensors(folder / "adv.safetensors", meta)
    return _result_from(tensors, meta["summary"]["seconds"]), meta


def generate_adversarial_set(spec: AdversarialSpec, attack: Attack, pipeline: Pipeline, data: ImageDataset,
                             root: str | Path, *, substitute: torch.nn.Module | None = None, batch_size: int = 250,
                             device: torch.device | str = "cpu", eot_samples: int = 8,
                             progress: Callable[[int, int], None] | None = None) -> tuple[Path, AttackResult, bool]:
    """Compute (or find) the set for ``spec``; returns (folder, result, was_cached).

    The key includes a fingerprint of the attacked images, so a set made on other data (another copy, order
    or version of the dataset) is never reused.
    """
    data = data.head(spec.n)
    spec = replace(spec, data_sha256=data.fingerprint())
    folder = Path(root) / spec.key()
    if (folder / "meta.json").exists():
        result, _ = load_adversarial_set(folder)
        return folder, result, True
    folder.mkdir(parents=True, exist_ok=True)
    parts: list[AttackResult] = []
    n_shards = -(-len(data) // SHARD)
    for i in range(n_shards):
        shard = folder / f"shard-{i:05d}.safetensors"
        if shard.exists():  # finished before an interruption
            card = json.loads(shard.with_suffix(".json").read_text())
            parts.append(_result_from(load_tensors(shard, card), card["seconds"]))
        else:
            x, y = data.tensors(slice(i * SHARD, (i + 1) * SHARD))
            r = run_attack(attack, pipeline, x, y, threat=spec.threat, substitute=substitute, eot_samples=eot_samples,
                           batch_size=batch_size, seed=spec.seed * 1_000_003 + i * 1_009, device=device)
            save_tensors(shard, _result_tensors(r), {"architecture": "adversarial-shard", "seconds": r.seconds})
            parts.append(r)
        if progress:
            progress(min((i + 1) * SHARD, len(data)), len(data))
    result = AttackResult.concat(parts)
    summary = result.summary()
    meta = {"architecture": "adversarial-set", "key": spec.key(), "spec": spec.__dict__, "summary": summary,
            "attack_repr": repr(attack)}
    save_tensors(folder / "adv.safetensors", _result_tensors(result), meta)
    atomic_write_json(folder / "meta.json", json.loads((folder / "adv.json").read_text()))
    for p in folder.glob("shard-*"):
        p.unlink()
    return folder, result, False


def remove_set(folder: str | Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
