"""One scorecard row, measured with the experiment layer: the evaluation's :func:`measure` for a defense (or none),
and the same three settings through a detector's pipeline; then the per-image worst case over all of them.

Under torchrun every process measures its shard of the images and the sums are reduced (the evaluation's own
sharding); the health checks and the inference cost run on the first process only.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from advshield.attacks import Pipeline, ThreatModel
from advshield.data import ImageDataset
from advshield.detectors import build_detector, load_detector, save_detector
from advshield.evaluation.run import measure
from advshield.evaluation.verdict import check_mask, checks_of, health_flags, red_flags, with_interval, worst_case
from advshield.experiment import RunContext, Target, Threat, acquire_set, on_victim
from advshield.experiment.health import setting_health
from advshield.scorecard.rows import RowSpec
from advshield.scorecard.config import ScorecardConfig
from advshield.user_modules import UserDefense

UNDEFENDED = ("undefended", "robust", "classifier")


def no_defense() -> tuple[UserDefense, dict]:
    """The identity, so an undefended classifier runs through the same evaluation as a defended one."""
    return UserDefense(nn.Identity(), True, False), {"name": "none"}


def measure_defense(spec: RowSpec, cfg: ScorecardConfig, ctx: RunContext, data: ImageDataset, *, dataset: str,
                    eps: float, substitute: str) -> dict:
    """A defense (restorer, preprocessing, the user's, or none) in front of ``spec.target``."""
    victim = ctx.load_target(spec.target, dataset)
    defended = spec.kind not in UNDEFENDED
    if defended:
        defense, defense_id, _ = ctx.load_defense(spec.defense, spec.params or None, weights=spec.weights,
                                                  probe=data.tensors(slice(0, 8))[0])
    else:
        defense, defense_id = no_defense()
    settings = cfg.settings(substitute, eps, defended=defended)
    m = measure(settings, victim, defense, defense_id, data, ctx, dataset=dataset, checks=cfg.checks if defended else 0,
                eot_samples=cfg.eot_samples, undefended=not defended)  # undefended: its white-box worst case is sized
    health, flags = m["health"], m["red_flags"]
    if not defended and cfg.checks and ctx.dist.is_main:  # no defense: the white-box attack is the adaptive one
        wb = settings[0]
        row = m["samples"][str(wb.threat)][wb.name]
        health = {wb.qualified_name: setting_health(wb, Pipeline(victim.model), data, ctx, cfg.checks,
                                                    cfg.eot_samples, base=(row.restored_correct, row.clean_correct))}
        flags = flags + health_flags(health)
    masks = [m["samples"][str(s.threat)][s.name].correct for s in settings]
    pipe = Pipeline(victim.model, defense)
    out = summarise(m["rows"], masks, ctx, flags, health, clean_correct(victim, data, ctx))
    out.update(victim=_victim(victim), defense=defense_id,
               ms_per_image=inference_ms(lambda x: pipe.predict(x), data, ctx))
    return out


def measure_detector(spec: RowSpec, cfg: ScorecardConfig, ctx: RunContext, data: ImageDataset, *, dataset: str,
                     eps: float, substitute: str, folder: Path) -> dict:
    """A detector at ``cfg.fpr`` (fitted into ``folder`` once) beside ``spec.target``: an image is robust when it
    is right and unflagged when clean and the attack does not end misclassified and unflagged."""
    victim = ctx.load_target(spec.target, dataset)
    detector, card = fit_detector(spec.detector, victim, cfg, ctx, dataset, folder)
    det_id = {"kind": spec.detector, "sha256": card["sha256"]}
    pipe = Pipeline(victim.model, detector=detector)
    shard = ctx.dist.shard(len(data))
    part = data.subset(shard)
    split = f"test[{shard.start}:{shard.stop}]" if ctx.dist.enabled else "test"
    rows, masks, health, clean_ok, shared = [], [], {}, None, {}
    settings = cfg.settings(substitute, eps, defended=True)
    for s in settings:
        sub = ctx.load_target(s.threat.substitute, dataset) if s.threat.transfers else None
        guard = {"detector": detector, "detector_id": det_id} if s.threat.adaptive else {}
        stored = acquire_set(s, victim, part, ctx, dataset=dataset, split=split, substitute=sub,
                             eot_samples=cfg.eot_samples, **guard)
        r = on_victim(stored, s, pipe, part, ctx)
        robust = (r.clean_correct & ~r.fooled).cpu()
        ok = (r.clean_pred == r.labels).cpu()  # the classifier alone (the detector flags, it does not predict)
        clean_ok = ok if clean_ok is None else clean_ok
        sums = ctx.dist.all_sum({"n": len(r.labels), "clean": float(ok.sum()),
                                 "defended": float(r.clean_correct.sum()), "robust": float(robust.sum()),
                                 "recovered": float((ok & ~r.fooled.cpu()).sum()), "seconds": r.seconds})
        n = max(int(sums["n"]), 1)
        # recovery as the evaluation's (restoration.summarise): of the images right clean, those the attack
        # leaves right or flagged
        rows.append(with_interval({"threat": str(s.threat), "attack": s.attack, "params": s.create().params(),
                                   "n": int(sums["n"]), "clean_accuracy": sums["clean"] / n,
                                   "defended_clean_accuracy": sums["defended"] / n,
                                   "restored_accuracy": sums["robust"] / n,
                                   "recovery_rate": sums["recovered"] / sums["clean"] if sums["clean"] else 0.0,
                                   "attack_seconds": round(sums["seconds"], 2)}))
        masks.append(robust)
        if s.threat.adaptive and cfg.checks and ctx.dist.is_main:
            health[s.qualified_name] = setting_health(s, pipe, data, ctx, cfg.checks, cfg.eot_samples, shared,
                                                      (robust, r.clean_correct.cpu()))
    flags = red_flags(rows, data.num_classes) + health_flags(health)
    out = summarise(rows, masks, ctx, flags, health, clean_ok)
    out.update(victim=_victim(victim), detector=dict(det_id, threshold=detector.threshold, fpr=cfg.fpr,
                                                      calibration=card.get("calibration")),
               ms_per_image=inference_ms(lambda x: (pipe.predict(x), pipe.detected(x)), data, ctx))
    return out


def fit_detector(kind: str, victim: Target, cfg: ScorecardConfig, ctx: RunContext, dataset: str, folder: Path):
    """Fit ``kind`` on the first clean training images and set its threshold at ``cfg.fpr`` on the next held-out
    ones (the detection experiment's recipe), once per folder, by the first process; every process then reads
    the saved detector. Returns (detector, its card)."""
    path = folder / "detector.safetensors"
    if ctx.dist.is_main and not path.exists():
        train = ctx.load_data(dataset, "train", target=victim)
        n_cal = min(cfg.detector_calibration, len(train) // 5)
        n_train = min(cfg.detector_train, len(train) - n_cal)
        clean = train.tensors(slice(0, n_train))[0]
        victim.model.requires_grad_(False)
        detector, _ = build_detector(kind, victim.model, clean, epochs=cfg.detector_epochs, seed=cfg.seed,
                                     device=ctx.device)
        with torch.no_grad():
            detector.calibrate_fpr(detector.scores(train.tensors(slice(n_train, n_train + n_cal))[0].split(200),
                                                   ctx.device), cfg.fpr)
        save_detector(path, detector, kind, classifier=victim.model, classifier_card=victim.card,
                      image_shape=tuple(clean.shape[1:]), recipe={"n_train": n_train, "n_calibration": n_cal,
                                                                  "epochs": cfg.detector_epochs, "fpr": cfg.fpr})
    ctx.dist.barrier()
    return load_detector(path, victim.model, victim.sha256, ctx.device)


@torch.no_grad()
def clean_correct(victim: Target, data: ImageDataset, ctx: RunContext) -> torch.Tensor:
    """Per image of this process's shard (the evaluation's sharding, in order): the classifier alone right on the
    clean image. These are the originally correct images recovery is counted over."""
    part = data.subset(ctx.dist.shard(len(data)))
    pipe = Pipeline(victim.model)
    out = [torch.zeros(0, dtype=torch.bool)]
    for start in range(0, len(part), ctx.batch_size):
        x, y = part.tensors(slice(start, start + ctx.batch_size), ctx.device)
        out.append((pipe.predict(x) == y).cpu())
    return torch.cat(out)


def worst_case_recovery(masks: list[torch.Tensor], clean_ok: torch.Tensor,
                        reduce: Callable[[dict], dict] = lambda sums: sums) -> float:
    """The evaluation's recovery rate (``recovered / clean_correct``, :func:`advshield.evaluation.restoration.
    summarise`) of the per-image worst case: of the images the classifier alone gets right clean
    (``clean_ok``), the share robust under every setting (``masks``: right through the defense when clean and
    when attacked, as :func:`advshield.evaluation.verdict.worst_case` reads them); counts summed by ``reduce``."""
    n = min(len(m) for m in (clean_ok, *masks))
    recovered = clean_ok[:n].bool().clone()
    for m in masks:
        recovered &= m[:n].bool()
    sums = reduce({"recovered": float(recovered.sum()), "clean_correct": float(clean_ok[:n].sum())})
    return sums["recovered"] / sums["clean_correct"] if sums["clean_correct"] else 0.0


def summarise(rows: list[dict], masks: list[torch.Tensor], ctx: RunContext, flags: list[dict], health: dict,
              clean_ok: torch.Tensor) -> dict:
    """The row's columns from its settings' rows; the worst case is per image over every setting (an adaptive
    attacker picks whichever attack breaks an image), reduced over processes. Recovery counts over the images
    the classifier alone gets right clean (``clean_ok``, per image of this process's shard): the oblivious one
    is the white-box row's ``recovery_rate`` (the evaluation's), the worst-case one
    :func:`worst_case_recovery`."""
    by = {Threat.parse(r["threat"]).kind: r for r in rows}
    adaptive = by.get(ThreatModel.ADAPTIVE, by[ThreatModel.WHITE_BOX])  # no defense: white-box is adaptive
    every = [dict(r, threat=ThreatModel.ADAPTIVE.value) for r in rows]  # worst_case reads one threat kind
    checks = [dict(b, threat=ThreatModel.ADAPTIVE.value) for b in checks_of(health)]  # read as the rows above
    worst = worst_case(every, masks, ThreatModel.ADAPTIVE, ctx.dist.all_sum, checks) or {  # unbounded: its row
        "accuracy": adaptive["restored_accuracy"], "ci95": adaptive["restored_accuracy_ci95"]}
    # the checks' runs (doubled budget, Square) at the row's eps count in the worst-case recovery as in the verdict
    budget = (worst["budget"]["norm"], worst["budget"]["eps"]) if worst.get("budget") else None
    checked = [m for m in (check_mask(b, len(clean_ok), budget) for b in checks) if m is not None] if budget else []
    first = rows[0]
    return {"n": first["n"], "clean_accuracy": first["clean_accuracy"],
            "defended_clean_accuracy": first["defended_clean_accuracy"],
            "oblivious_robust_accuracy": by[ThreatModel.WHITE_BOX]["restored_accuracy"],
            "transfer_robust_accuracy": by[ThreatModel.TRANSFER]["restored_accuracy"],
            "adaptive_robust_accuracy": adaptive["restored_accuracy"],
            "adaptive_robust_accuracy_ci95": adaptive["restored_accuracy_ci95"],
            "worst_case_robust_accuracy": worst["accuracy"], "worst_case_ci95": worst["ci95"],
            "oblivious_recovery": by[ThreatModel.WHITE_BOX]["recovery_rate"],
            "worst_case_recovery": worst_case_recovery(masks + checked, clean_ok, ctx.dist.all_sum),
            "red_flags": flags, "health": health, "rows": rows}


@torch.no_grad()
def inference_ms(predict, data: ImageDataset, ctx: RunContext, images: int = 64, min_seconds: float = 0.3) -> float | None:
    """Milliseconds per image of ``predict`` on clean test images (batches of the run's size, after a warm-up);
    measured on the first process only (None elsewhere)."""
    if not ctx.dist.is_main:
        return None
    x = data.tensors(slice(0, min(len(data), images)), ctx.device)[0]
    sync = torch.cuda.synchronize if ctx.device.type == "cuda" else (lambda: None)
    predict(x[:2])
    sync()
    done, t0 = 0, time.perf_counter()
    while done == 0 or time.perf_counter() - t0 < min_seconds:
        for b in x.split(ctx.batch_size):
            predict(b)
        sync()
        done += len(x)
    return round(1000 * (time.perf_counter() - t0) / done, 4)


def _victim(victim: Target) -> dict:
    return {"name": victim.name, "architecture": victim.architecture, "sha256": victim.sha256}


__all__ = ["clean_correct", "fit_detector", "inference_ms", "measure_defense", "measure_detector", "no_defense",
           "summarise", "worst_case_recovery"]
