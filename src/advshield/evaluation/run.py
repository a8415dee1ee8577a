"""An evaluation run: several attacks under several threat models, written as a JSON card, a CSV and figures."""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path
from typing import Callable

import torch

from advshield.evaluation.restoration import CleanCache, RestorationCache, Samples, evaluate_setting
from advshield.attacks import Pipeline, ThreatModel
from advshield.data import ImageDataset
from advshield.defenses import Defense
from advshield.experiment import AttackSetting, RunContext, Target, Threat
from advshield.experiment.health import setting_health
from advshield.evaluation.sample_size import sample_size_flags
from advshield.evaluation.verdict import headline, health_flags, red_flags, with_interval, worst_case_flags
from advshield.io import atomic_write_bytes, atomic_write_json
from advshield.report import card_markdown, write_html_report

CSV_COLUMNS = ("threat", "attack", "n", "clean_accuracy", "defended_clean_accuracy", "adv_accuracy",
               "restored_accuracy", "restored_accuracy_ci95", "success_rate", "recovery_rate", "attack_success_rate", "ssim_restored",
               "psnr_restored", "ssim_adv", "psnr_adv", "mean_l2", "mean_linf", "attack_seconds")


def write_csv(rows: list[dict], path: Path) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else "-".join(f"{x:.6g}" for x in v) if isinstance(v, list)
                        else v) for k, v in r.items() if k in CSV_COLUMNS})
    atomic_write_bytes(path, buf.getvalue().encode())


def run_evaluation(target: str, defense: str, settings: list[AttackSetting], out: str | Path, ctx: RunContext, *,
                   defense_params: dict | None = None, dataset: str | None = None, n: int | None = None,
                   figures: bool = True, restoration_cache: RestorationCache | None = None,
                   target_weights: str | Path | None = None, defense_weights: str | Path | None = None,
                   checks: int = 100, notes: list[str] | None = None, sample_reason: str | None = None) -> dict:
    """Evaluate ``defense`` protecting ``target`` under every setting; returns (and writes) the card, ``notes``
    added to its notes; ``sample_reason`` says why the adaptive worst case rests on fewer than 500 images (without
    one, that is a red flag).

    ``target`` and ``defense`` may be the user's own ``package.module:factory`` (with their weights files).
    Every adaptive setting is checked for convergence and gradient masking on the first ``checks`` images
    (0: none); failures become red flags.
    Several evaluations of one run can share a ``restoration_cache`` (same restorer, same stored sets).
    """
    out = Path(out)
    victim = ctx.load_target(target, dataset, target_weights)
    ds_name = ctx.dataset_of(victim, dataset)
    data = ctx.load_data(ds_name, "test", n, target=victim)
    defense_obj, defense_id, dcard = ctx.load_defense(defense, defense_params, weights=defense_weights,
                                                      probe=data.tensors(slice(0, 8))[0])
    t0 = time.perf_counter()
    m = measure(settings, victim, defense_obj, defense_id, data, ctx, dataset=ds_name, checks=checks,
                restoration_cache=restoration_cache, log_row=_log_row if ctx.dist.is_main else None,
                sample_reason=sample_reason)
    rows, samples = m.pop("rows"), m.pop("samples")
    tcard = victim.card
    card = {"target": tcard["architecture"], "target_sha256": tcard["sha256"], "dataset": ds_name, "n": len(data),
            "defense": defense_id, "defense_card": _defense_summary(dcard), "seed": ctx.seed, "world_size": ctx.dist.world_size,
            "seconds": round(time.perf_counter() - t0, 1), "rows": rows, **m,
            **({"sample_reason": sample_reason} if sample_reason else {}),
            "notes": ["success_rate = restored accuracy / clean accuracy (CRU-Net Eq. 14, DIR Eq. 8)",
                      "PSNR uses MAX = 1 on [0, 1] images; psnr_restored_paper_convention adds 48.13 dB, "
                      "the offset CRU-Net's Eq. 16 ((L-1)^2 = 255^2 over a [0, 1] MSE) introduces", *(notes or [])]}
    if ctx.dist.is_main:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / "card.json", card)
        write_csv(rows, out / "results.csv")
        if figures:
            card["figures"] = write_figures(rows, samples, dcard, out / "figures", f"{tcard['architecture']}")
            atomic_write_json(out / "card.json", card)
        write_reports(card, out)
    ctx.dist.barrier()
    return card


def measure(settings: list[AttackSetting], victim: Target, defense: Defense, defense_id: dict, data: ImageDataset,
            ctx: RunContext, *, dataset: str, checks: int = 100, eot_samples: int = 8,
            restoration_cache: RestorationCache | None = None, undefended: bool = False,
            log_row: Callable[[RunContext, AttackSetting, dict], None] | None = None,
            sample_reason: str | None = None) -> dict:
    """Every setting's row (with its interval), the verdict, the health checks of the adaptive settings and the
    red flags: the part of a card every evaluation path (CLI, reproductions, the Python API) shares.
    ``undefended``: ``defense`` is the identity, so the white-box settings are the adaptive ones and are checked.
    ``sample_reason``: why the adaptive worst case rests on fewer than 500 images (else a ``sample-size`` red flag).
    Returns ``{"rows", "samples", "verdict", "health", "red_flags"}``."""
    rows, samples, correct, clean_cache = [], {}, [], CleanCache()
    for s in settings:
        sub = ctx.load_target(s.threat.substitute, dataset) if s.threat.substitute else None
        row, sample = evaluate_setting(s, victim, defense, defense_id, data, ctx, dataset=dataset, substitute=sub,
                                       eot_samples=eot_samples, clean_cache=clean_cache,
                                       restoration_cache=restoration_cache)
        rows.append(with_interval(row))
        correct.append(sample.correct)
        samples.setdefault(str(s.threat), {})[s.name] = sample
        if log_row is not None:
            log_row(ctx, s, row)
    shared: dict = {}  # settings checked with the same runs (FGSM and AutoAttack: APGD-CE at one eps) run them once
    def row_of(s: AttackSetting) -> tuple[torch.Tensor, torch.Tensor]:  # the checks start from the row's own run
        sample = samples[str(s.threat)][s.name]
        return sample.restored_correct, sample.clean_correct  # as the checks judge their runs (no clean term)

    health = {s.qualified_name: setting_health(s, Pipeline(victim.model, defense), data, ctx, checks, eot_samples,
                                               shared, row_of(s))
              for s in settings if checks and ctx.dist.is_main
              and (s.threat.adaptive or (undefended and s.threat.kind is ThreatModel.WHITE_BOX))}
    verdict, flags = headline(rows, correct, ctx.dist.all_sum, health), red_flags(rows, data.num_classes)
    if not any(f["check"] == "adaptive-vs-oblivious" for f in flags):  # else a row already says it
        flags += worst_case_flags(verdict)
    return {"rows": rows, "samples": samples, "verdict": verdict, "health": health,
            "red_flags": flags + health_flags(health) + sample_size_flags(verdict, sample_reason, undefended)}


def _log_row(ctx: RunContext, s: AttackSetting, row: dict) -> None:
    ctx.log(f"{str(s.threat):>18} {s.attack:>8}: adv acc {row['adv_accuracy']:.4f} -> restored "
            f"{row['restored_accuracy']:.4f} (clean {row['clean_accuracy']:.4f}, through defense "
            f"{row['defended_clean_accuracy']:.4f}), SSIM {row['ssim_restored']:.4f}, PSNR {row['psnr_restored']:.2f} dB")


def write_reports(card: dict, out: Path) -> None:
    """``report.md`` and the self-contained ``report.html`` (red flags first, then the verdict, tables, figures)."""
    atomic_write_bytes(out / "report.md", card_markdown(card, "advshield evaluation").encode())
    write_html_report(card, out / "report.html", [out / f for f in card.get("figures", [])])


def write_figures(rows: list[dict], samples: dict[str, dict[str, Samples]], dcard: dict | None, folder: Path,
                  name: str) -> list[str]:
    from advshield.evaluation.figures import accuracy_bars, grouped_bars, loss_curves, restoration_grid

    paths = []
    kind = {r["threat"]: Threat.parse(r["threat"]).kind for r in rows}
    adaptive = {r.get("label", r["attack"]): r for r in rows if kind[r["threat"]] is ThreatModel.ADAPTIVE}
    oblivious = {r.get("label", r["attack"]): r for r in rows
                 if kind[r["threat"]] is ThreatModel.WHITE_BOX and r.get("label", r["attack"]) in adaptive}
    if oblivious:  # what the papers report beside what an attacker who knows the defense gets
        groups = {a: {"no defense": r["adv_accuracy"], "defended, oblivious attack": r["restored_accuracy"],
                      "defended, adaptive attack": adaptive[a]["restored_accuracy"]} for a, r in oblivious.items()}
        paths.append(grouped_bars(groups, f"{name}: oblivious vs adaptive", folder / "bars-oblivious-vs-adaptive.png"))
    for threat, per_attack in samples.items():
        tag = threat.replace(":", "-")
        sel = [r for r in rows if r["threat"] == threat]
        paths.append(accuracy_bars(sel, f"{name}, {threat}", folder / f"bars-{tag}.png"))
        paths.append(restoration_grid(per_attack, folder / f"grid-{tag}.png", f"{name}, {threat}"))
    if dcard and dcard.get("history"):
        paths.append(loss_curves(dcard["history"], folder / "loss.png", f"{dcard['architecture']} for {name}"))
    return [str(p.relative_to(folder.parent)) for p in paths]


def _defense_summary(card: dict | None) -> dict | None:
    if card is None:
        return None
    keep = ("architecture", "arch_kwargs", "target", "dataset", "epochs", "best_epoch", "train_pairs", "train_time_s",
            "pair_seconds", "n_params", "recipe", "sha256", "notes")
    return {k: card[k] for k in keep if k in card}
