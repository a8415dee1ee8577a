"""The scorecard run: every row on the same images under the same attack, each row stored once under the hash of
everything that determines it (``rows/<name>-<key>.json``), so adding a defense computes only its row."""

from __future__ import annotations

import json
import os
import platform
import re
import time
from pathlib import Path
from typing import Callable

import torch

from advshield.checkpoint import read_card
from advshield.data import ImageDataset
from advshield.defenses import DEFENSES, is_restorer
from advshield.errors import InputError
from advshield.experiment import RunContext
from advshield.io import atomic_write_bytes, atomic_write_json
from advshield.scorecard.rows import RowSpec, catalog, defaults, not_shipped
from advshield.scorecard.config import ScorecardConfig, config_identity, row_key
from advshield.scorecard.measure import measure_defense, measure_detector
from advshield.scorecard.table import markdown, write_csv, write_html
from advshield.user_modules import is_user_spec
from advshield.zoo import resolve_checkpoint

NOTES = ["clean: the classifier's accuracy; clean through defense: through the defense (a detector's flagged clean "
         "image counts as an error)",
         "oblivious: the attack crafted on the classifier alone, judged through the defense; transfer: crafted on "
         "the substitute; for an undefended classifier the oblivious attack is the white-box (adaptive) one",
         "adaptive worst case: per image, robust only if right through the defense under every attack run on it "
         "(oblivious, transfer and adaptive: through the defense with BPDA/EOT, or the detector-aware objective) "
         "and under the self-checks' runs at that eps (doubled steps and restarts, Square) on the images they "
         "covered; 95 % Wilson interval",
         "recovery: over the images the classifier alone gets right clean; oblivious recovery: the share still right "
         "through the defense (a detector: right or flagged) under the oblivious attack (the evaluation's recovery "
         "rate); worst-case recovery: the share robust in the adaptive worst case (with the self-checks' runs)",
         "detectors: thresholds calibrated at the stated false-positive rate on held-out clean training images; an "
         "adversarial image counts as stopped when flagged",
         "ms / image: clean inference through the defense (or classifier and detector), measured in the run"]


def run_scorecard(cfg: ScorecardConfig, ctx: RunContext, out: str | Path, *, only: list[str] | tuple = (),
                  extra: list[RowSpec] | tuple = (), markdown_path: str | Path | None = None, command: str = "",
                  progress: Callable[[int, int, str], None] | None = None) -> dict:
    """Measure (or read back) every row; write ``scorecard.json``, ``scorecard.csv``, ``scorecard.md`` (and
    ``markdown_path``) and ``report.html`` in ``out``; returns the card. ``only`` restricts the rows by name;
    ``extra`` rows (the user's) are always measured."""
    out, t0 = Path(out), time.perf_counter()
    ds = cfg.dataset
    d = defaults(ds, cfg.target, cfg.substitute)
    eps = cfg.eps or d["eps"]
    specs = select(catalog(ds, d["target"], d["substitute"]), only) + list(extra)
    std = ctx.load_target(d["target"], ds)
    data = ctx.load_data(ds, "test", cfg.n, target=std)
    rows, computed, cached = [], [], []
    for i, spec in enumerate(specs):
        if progress:
            progress(i, len(specs), spec.name)
        row = _row(spec, cfg, ctx, data, out, eps=eps, substitute=_substitute(spec.target, d))
        (cached if row.pop("cached", False) else computed).append(spec.name)
        rows.append(row)
    if progress:
        progress(len(specs), len(specs), "written")
    version = "auto: standard, rand+standard through a randomised defense" if cfg.version == "auto" else cfg.version
    label = cfg.attack + (f" ({version})" if cfg.attack == "autoattack" else "")
    machine = {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__,
               "device": str(ctx.device), "world_size": ctx.dist.world_size}
    if ctx.device.type == "cuda":
        machine["gpu"] = torch.cuda.get_device_name(ctx.device)
    shipped = not_shipped(ds)
    card = {"dataset": ds, "n": len(data), "eps": eps, "attack": cfg.attack, "attack_label": label,
            "params": cfg.attack_params(eps), "seed": cfg.seed, "target": d["target"], "substitute": d["substitute"],
            "command": command, "machine": machine, "machine_label": _machine_label(machine),
            "seconds": round(time.perf_counter() - t0, 1), "computed": computed, "cached": cached, "rows": rows,
            "notes": NOTES + ([f"registered but not in the zoo for {ds} (train one, then --add-defense PATH): "
                               + ", ".join(shipped)] if shipped else [])}
    if ctx.dist.is_main:
        _write(card, out, Path(markdown_path) if markdown_path else None)
    ctx.dist.barrier()
    return card


def select(specs: list[RowSpec], only: list[str] | tuple) -> list[RowSpec]:
    """The rows named by ``only`` (all when empty); an unknown name fails, naming the known ones."""
    if not only:
        return specs
    names = [s.name for s in specs]
    unknown = [n for n in only if n not in names]
    if unknown:
        raise InputError(f"--defense {', '.join(unknown)}: no such row; choose among {', '.join(names)}")
    return [s for s in specs if s.name in only]


def _substitute(target: str, d: dict) -> str:
    return d["target"] if Path(target).stem == d["substitute"] else d["substitute"]


def _sha(name: str, dataset: str) -> str:
    return read_card(resolve_checkpoint(name, dataset))["sha256"]


def identity(spec: RowSpec, cfg: ScorecardConfig, ctx: RunContext, data: ImageDataset, *, eps: float,
             substitute: str) -> dict:
    """Everything that determines a row's numbers: what it measures (by the weights' hashes), on which images,
    with which attack, seed and checks."""
    ds = cfg.dataset
    if spec.defense is None:
        defense = None
    elif is_user_spec(spec.defense):
        defense = ctx.load_defense(spec.defense, spec.params or None, weights=spec.weights,
                                   probe=data.tensors(slice(0, 8))[0])[1]
    elif spec.defense in DEFENSES and not is_restorer(spec.defense):
        defense = {"name": spec.defense, "params": spec.params}
    else:
        defense = {"sha256": _sha(spec.defense, ds)}
    return {"kind": spec.kind, "target_sha256": _sha(spec.target, ds), "defense": defense, "detector": spec.detector,
            "substitute_sha256": _sha(substitute, ds), "data": data.fingerprint(), "dataset": ds,
            **config_identity(cfg, eps, detector=spec.detector is not None)}


def _row(spec: RowSpec, cfg: ScorecardConfig, ctx: RunContext, data: ImageDataset, out: Path, *, eps: float,
         substitute: str) -> dict:
    head = {"name": spec.name, "kind": spec.kind, "classifier": spec.target, "card": spec.card, "note": spec.note,
            "measured": spec.measured}
    if not spec.measured:
        return head
    ident = identity(spec, cfg, ctx, data, eps=eps, substitute=substitute)
    key = row_key(ident)
    file = f"{re.sub(r'[^A-Za-z0-9_.+-]', '_', spec.name)}-{key}.json"
    path = out / "rows" / file
    if path.exists():
        stored = json.loads(path.read_text())
        if stored.get("key") == key:
            ctx.log(f"{spec.name}: stored result ({path.name})")
            return dict(stored, cached=True)
    ctx.log(f"{spec.name}: measuring {spec.kind} in front of {spec.target}")
    t0 = time.perf_counter()
    if spec.detector:
        folder = out / "detectors" / f"{spec.detector}-{key}"
        res = measure_detector(spec, cfg, ctx, data, dataset=cfg.dataset, eps=eps, substitute=substitute,
                               folder=folder)
        head["detector_card"] = (folder / "detector.json").relative_to(out).as_posix()
    else:
        res = measure_defense(spec, cfg, ctx, data, dataset=cfg.dataset, eps=eps, substitute=substitute)
    row = {**head, "substitute": substitute, **res, "key": key, "file": file, "identity": ident,
           "seconds": round(time.perf_counter() - t0, 1), "world_size": ctx.dist.world_size}
    if ctx.dist.is_main:
        atomic_write_json(path, row)
    ctx.dist.barrier()
    return row


def _machine_label(m: dict) -> str:
    where = m.get("gpu") or f"{m['cpus']} CPU cores"
    return f"{where}, {m['platform']}, torch {m['torch']}, {m['world_size']} process(es)"


def _write(card: dict, out: Path, extra_md: Path | None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "scorecard.json", card)
    write_csv(card, out / "scorecard.csv")
    atomic_write_bytes(out / "scorecard.md", markdown(card, out, out).encode())
    write_html(card, out, out / "report.html")
    if extra_md is not None:
        extra_md.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(extra_md, markdown(card, out, extra_md.parent, outside=False).encode())


__all__ = ["identity", "run_scorecard", "select"]
