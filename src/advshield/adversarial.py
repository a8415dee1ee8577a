"""Adversarial datasets on disk: computed once, named by content, resumable.

A set lives in ``<root>/<key>/``, where ``key`` hashes everything that
determines it: the target checkpoint's SHA-256, the attack and its
parameters, the threat model (and substitute / defense), the dataset split
and subset, and the seed. Shards are written atomically as they finish, so a
crash loses at most one shard; ``meta.json`` is written last and marks the
set complete. Images are stored exactly (float32 safetensors).

Memory does not grow with the set: the finished shards are folded into ``adv.safetensors`` by streaming
(:func:`advshield.tensorfile.concatenate`, hashed as written), and a set is served lazily: the per-image
vectors (labels, predictions, norms) in memory, the images as a :class:`~advshield.tensorfile.StoredImages`
view that reads only the rows asked for (``result.adv[a:b]``, masks, index tensors; ``.materialize()`` for
all of them).

Every file is written crash-safely (:mod:`advshield.io`: temporary name, fsync,
rename). A shard or a finished set that does not verify (no card, truncated,
SHA-256 differing from its card) is recomputed with a one-line notice on the
``advshield`` logger, never a crash: a kill at any moment costs time, not the store.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import torch

from advshield.attacks import Attack, AttackResult, Pipeline, ThreatModel, run_attack
from advshield.checkpoint import save_card, save_tensors
from advshield.data import ImageDataset
from advshield.errors import AdvShieldError, CheckpointError
from advshield.io import atomic_write_json, sweep_temporaries
from advshield.tensorfile import StoredImages, concatenate, load_lazily

SHARD = 500
log = logging.getLogger("advshield")
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
    if isinstance(r.info.get("broken_by"), torch.Tensor):  # an ensemble's per-image record of which member broke it
        out["broken_by"] = r.info["broken_by"]
    return out


# An ensemble's record a shard's card keeps beside its ``broken_by`` tensor: the member names, the members skipped,
# and AutoAttack's version as run ('auto' resolved).
_ENSEMBLE_INFO = ("members", "skipped_members", "version")


def _result_card(r: AttackResult) -> dict:
    """What a shard's card keeps of ``r`` beside its tensors: the seconds, and an ensemble's record."""
    kept = {k: r.info[k] for k in _ENSEMBLE_INFO if "broken_by" in r.info and r.info.get(k)}
    return {"seconds": r.seconds, **kept}


def _result_from(tensors: dict[str, torch.Tensor], seconds: float, card: dict | None = None) -> AttackResult:
    norms = {k[5:]: v for k, v in tensors.items() if k.startswith("norm_")}
    card = card or {}
    info = {}
    if isinstance(card.get("members"), list) and "broken_by" in tensors:
        info = {"broken_by": tensors["broken_by"], **{k: card[k] for k in _ENSEMBLE_INFO if card.get(k)}}
    return AttackResult(tensors["adv"], tensors["labels"], tensors["clean_pred"], tensors["adv_pred"], norms, seconds,
                        target=tensors.get("target"), surface_adv_pred=tensors.get("surface_adv_pred"),
                        detected_clean=tensors.get("detected_clean"), detected_adv=tensors.get("detected_adv"),
                        info=info)


def _read_card(path: Path) -> dict:
    try:
        card = json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing") from None
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: unreadable ({exc})") from None
    if not isinstance(card, dict) or not isinstance(card.get("sha256"), str):
        raise CheckpointError(f"{path}: not an adversarial-set card")
    return card


def _load_part(tensor_file: Path, card: dict, seconds: object) -> AttackResult:
    tensors = load_lazily(tensor_file, card["sha256"])  # checks the SHA-256 (streamed); images stay on disk
    missing = [k for k in ("adv", "labels", "clean_pred", "adv_pred") if k not in tensors]
    if missing or not isinstance(seconds, (int, float)):
        raise CheckpointError(f"{tensor_file}: incomplete adversarial set (missing {missing or ['seconds']})")
    return _result_from(tensors, float(seconds), card)


def load_adversarial_set(folder: str | Path) -> tuple[AttackResult, dict]:
    """(result, meta) of a complete set, its images a lazy :class:`StoredImages` view;
    :class:`CheckpointError` if it is incomplete or corrupted."""
    folder = Path(folder)
    meta = _read_card(folder / "meta.json")
    seconds = meta["summary"].get("seconds") if isinstance(meta.get("summary"), dict) else None
    return _load_part(folder / "adv.safetensors", meta, seconds), meta


def _discard(files: list[Path], why: AdvShieldError) -> None:
    log.warning("advshield: %s; recomputing it", why)
    for p in files:
        p.unlink(missing_ok=True)


def _cached_set(folder: Path, key: str) -> AttackResult | None:
    """The finished set in ``folder`` if it verifies; a set that does not is discarded (with a notice)."""
    if not (folder / "meta.json").exists():
        return None
    try:
        result, meta = load_adversarial_set(folder)
        if meta.get("key") != key:
            raise CheckpointError(f"{folder / 'meta.json'}: names set {meta.get('key')!r}, not {key!r}")
    except CheckpointError as exc:
        _discard([folder / "meta.json", folder / "adv.json", folder / "adv.safetensors"], exc)
        return None
    for p in folder.glob("shard-*"):  # left by a run killed while folding its shards
        p.unlink(missing_ok=True)
    sweep_temporaries(folder)
    return result


def _stored_shard(shard: Path) -> AttackResult | None:
    """A shard finished before an interruption, if it verifies; else None (discarded, with a notice)."""
    card_file = shard.with_suffix(".json")
    if not shard.exists() and not card_file.exists():
        return None
    try:
        card = _read_card(card_file)
        return _load_part(shard, card, card.get("seconds"))
    except CheckpointError as exc:
        _discard([shard, card_file], exc)
        return None


def _same_records(shards: list[Path], parts: list[AttackResult]) -> None:
    """Shards written before ensembles kept their per-member record (``broken_by``) cannot be folded with
    shards that keep it: then the record is dropped from every shard (rewritten without it) and from ``parts``,
    and the set has no per-member numbers."""
    if len({"broken_by" in p.info for p in parts}) < 2:
        return
    for shard, part in zip(shards, parts):
        if "broken_by" in part.info:
            card = _read_card(shard.with_suffix(".json"))
            tensors = {k: v.materialize() if isinstance(v, StoredImages) else v
                       for k, v in load_lazily(shard, card["sha256"]).items() if k != "broken_by"}
            save_tensors(shard, tensors, {"architecture": "adversarial-shard", "seconds": part.seconds})
            part.info.clear()


def generate_adversarial_set(spec: AdversarialSpec, attack: Attack, pipeline: Pipeline, data: ImageDataset,
                             root: str | Path, *, substitute: torch.nn.Module | None = None, batch_size: int = 250,
                             device: torch.device | str = "cpu", eot_samples: int = 8,
                             progress: Callable[[int, int], None] | None = None) -> tuple[Path, AttackResult, bool]:
    """Compute (or find) the set for ``spec``; returns (folder, result, was_cached).

    The key includes a fingerprint of the attacked images, so a set made on other data (another copy, order
    or version of the dataset) is never reused.
    """
    data = data.head(spec.n).require_images("an adversarial set")
    spec = replace(spec, data_sha256=data.fingerprint())
    folder = Path(root) / spec.key()
    cached = _cached_set(folder, spec.key())
    if cached is not None:
        return folder, cached, True
    folder.mkdir(parents=True, exist_ok=True)
    sweep_temporaries(folder)
    parts: list[AttackResult] = []  # per-image vectors only: each shard's images stay in its file
    shards = [folder / f"shard-{i:05d}.safetensors" for i in range(-(-len(data) // SHARD))]
    for i, shard in enumerate(shards):
        r = _stored_shard(shard)
        if r is None:
            x, y = data.tensors(slice(i * SHARD, (i + 1) * SHARD))
            r = run_attack(attack, pipeline, x, y, threat=spec.threat, substitute=substitute, eot_samples=eot_samples,
                           batch_size=batch_size, seed=spec.seed * 1_000_003 + i * 1_009, device=device)
            save_tensors(shard, _result_tensors(r), {"architecture": "adversarial-shard", **_result_card(r)})
        parts.append(replace(r, adv=torch.empty(0)))
        del r
        if progress:
            progress(min((i + 1) * SHARD, len(data)), len(data))
    _same_records(shards, parts)
    result = AttackResult.concat(parts)
    meta = {"architecture": "adversarial-set", "key": spec.key(), "spec": spec.__dict__, "summary": result.summary(),
            "attack_repr": repr(attack), **_result_card(result)}
    final = folder / "adv.safetensors"
    sha256 = concatenate(final, shards)  # streamed shard by shard, tensor by tensor; hashed as written
    card = save_card(final, meta, sha256)
    result = replace(result, adv=StoredImages(final, "adv", sha256))
    atomic_write_json(folder / "meta.json", json.loads(json.dumps(card, default=str)))  # last: marks it complete
    for p in folder.glob("shard-*"):
        p.unlink(missing_ok=True)
    return folder, result, False


def remove_set(folder: str | Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
