"""An evaluation run: several attacks under several threat models, written as a JSON card, a CSV and figures."""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path
from typing import Callable

import torch

from advshield.checkpoint import load_model
from advshield.data import load_dataset
from advshield.defenses import DEFENSES, Defense, load_defense
from advshield.device import select_device
from advshield.distributed import init_distributed, local_device
from advshield.errors import InputError
from advshield.evaluation.restoration import CleanCache, RestorationCache, Samples, Setting, evaluate_setting
from advshield.io import atomic_write_bytes, atomic_write_json
from advshield.zoo import resolve_checkpoint

CSV_COLUMNS = ("threat", "attack", "n", "clean_accuracy", "defended_clean_accuracy", "adv_accuracy",
               "restored_accuracy", "success_rate", "recovery_rate", "attack_success_rate", "ssim_restored",
               "psnr_restored", "ssim_adv", "psnr_adv", "mean_l2", "mean_linf", "attack_seconds")


def resolve_defense(spec: str, params: dict | None = None, device="cpu") -> tuple[Defense, dict, dict | None]:
    """A trained restorer (a .safetensors path) or a registered parameter-free/preprocessing defense by name.

    Returns (defense, identity for the adversarial-set key, checkpoint card or None).
    """
    if spec.endswith(".safetensors") or Path(spec).is_file():
        defense, card = load_defense(spec, device)
        return defense, {"name": card["architecture"], "sha256": card["sha256"]}, card
    entry = DEFENSES.entry(spec)
    if entry.meta.get("kind") == "restorer":
        raise InputError(f"{spec} must be trained first (advshield train-defense); pass its .safetensors file")
    defense = DEFENSES.create(spec, **(params or {})).to(device)
    return defense, {"name": spec, "params": params or {}}, None


def write_csv(rows: list[dict], path: Path) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    atomic_write_bytes(path, buf.getvalue().encode())


def run_evaluation(target: str, defense: str, settings: list[Setting], out: str | Path, *,
                   defense_params: dict | None = None, dataset: str | None = None, n: int | None = None,
                   data_root: str | None = None, store: str | Path = "runs/adversarial", seed: int = 0,
                   batch_size: int = 250, device: str = "auto", figures: bool = True,
                   restoration_cache: RestorationCache | None = None, log: Callable[[str], None] = print) -> dict:
    """Evaluate ``defense`` protecting ``target`` under every setting; returns (and writes) the card.

    Several evaluations of one run can share a ``restoration_cache`` (same restorer, same stored sets).
    """
    out = Path(out)
    dev = select_device(device)
    ctx = init_distributed(dev)
    dev = local_device(dev, ctx)
    classifier, tcard = load_model(resolve_checkpoint(target, dataset), dev)
    defense_obj, defense_id, dcard = resolve_defense(defense, defense_params, dev)
    ds_name = dataset or tcard["dataset"]
    data = load_dataset(ds_name, "test", data_root).head(n)
    substitutes: dict[str, tuple[torch.nn.Module, str]] = {}
    rows, samples = [], {}
    clean_cache = CleanCache()
    t0 = time.perf_counter()
    for s in settings:
        sub = None
        if s.threat == "transfer":
            if not s.substitute:
                raise InputError("a transfer setting needs a substitute model")
            if s.substitute not in substitutes:
                model, card = load_model(resolve_checkpoint(s.substitute, ds_name), dev)
                substitutes[s.substitute] = (model, card["sha256"])
            sub = substitutes[s.substitute]
        row, sample = evaluate_setting(s, classifier, tcard["sha256"], defense_obj, defense_id, data, ds_name, store,
                                       substitute=sub, seed=seed, batch_size=batch_size, device=dev, ctx=ctx,
                                       clean_cache=clean_cache, restoration_cache=restoration_cache)
        rows.append(row)
        samples.setdefault(s.label, {})[s.attack] = sample
        if ctx.is_main:
            log(f"{s.label:>18} {s.attack:>8}: adv acc {row['adv_accuracy']:.4f} -> restored {row['restored_accuracy']:.4f}"
                f" (clean {row['clean_accuracy']:.4f}, through defense {row['defended_clean_accuracy']:.4f}), "
                f"SSIM {row['ssim_restored']:.4f}, PSNR {row['psnr_restored']:.2f} dB")
    card = {"target": tcard["architecture"], "target_sha256": tcard["sha256"], "dataset": ds_name, "n": len(data),
            "defense": defense_id, "defense_card": _defense_summary(dcard), "seed": seed, "world_size": ctx.world_size,
            "seconds": round(time.perf_counter() - t0, 1), "rows": rows,
            "notes": ["success_rate = restored accuracy / clean accuracy (CRU-Net Eq. 14, DIR Eq. 8)",
                      "PSNR uses MAX = 1 on [0, 1] images; psnr_restored_paper_convention adds 48.13 dB, "
                      "the offset CRU-Net's Eq. 16 ((L-1)^2 = 255^2 over a [0, 1] MSE) introduces"]}
    if ctx.is_main:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / "card.json", card)
        write_csv(rows, out / "results.csv")
        if figures:
            card["figures"] = write_figures(rows, samples, dcard, out / "figures", f"{tcard['architecture']}")
            atomic_write_json(out / "card.json", card)
    ctx.barrier()
    return card


def write_figures(rows: list[dict], samples: dict[str, dict[str, Samples]], dcard: dict | None, folder: Path,
                  name: str) -> list[str]:
    from advshield.evaluation.figures import accuracy_bars, loss_curves, restoration_grid

    paths = []
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
            "pair_seconds", "n_params", "recipe", "sha256")
    return {k: card[k] for k in keep if k in card}
