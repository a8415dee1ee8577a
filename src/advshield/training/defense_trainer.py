"""Training of restoration defenses on (adversarial, clean) pairs, resumable and data-parallel.

Output folder (as for target models): ``last`` (weights + optimizer, resume
point), ``best`` (lowest validation loss) and ``model`` (final, with the card
holding the full recipe, the pair sets and per-attack validation curves).
Under ``torchrun --nproc_per_node N`` each process takes 1/N of every batch
(DDP averages the gradients) and crafts every N-th pair set.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from advshield.checkpoint import load_tensors, load_weights, read_card, save_tensors
from advshield.defenses import DEFENSES, load_defense, restorer_kwargs, save_defense
from advshield.device import fast_layout
from advshield.errors import CheckpointError
from advshield.experiment import RunContext
from advshield.models import count_parameters
from advshield.training.defense_config import DefenseTrainConfig, LossWeights
from advshield.training.pairs import PairSource, build_source, plan_sources
from advshield.training.restoration_loss import LossGuide, restoration_loss
from advshield.training.schedule import lr_factor
from advshield.training.trainer import _epoch_seed, _optimizer_tensors, resume_progress
from advshield.zoo import resolve_checkpoint


@dataclass
class DefenseTrainResult:
    checkpoint: Path
    card: dict


def _stack(sources: list[PairSource]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    adv = torch.cat([s.adv for s in sources])
    clean = torch.cat([s.clean() for s in sources])
    labels = torch.cat([torch.from_numpy(s.data.labels).long() for s in sources])
    return adv, clean, labels


@torch.no_grad()
def _validate(defense, sources, w: LossWeights, guide: LossGuide, device, batch_size=500) -> dict:
    defense.eval()
    per, total_loss, total_n, restored = {}, 0.0, 0, 0
    for s in sources:
        if len(s.data) == 0:
            continue
        loss_sum, correct = 0.0, 0
        labels = torch.from_numpy(s.data.labels)
        clean = s.clean()
        for i in range(0, len(clean), batch_size):
            a, c = s.adv[i:i + batch_size].to(device), clean[i:i + batch_size].to(device)
            out = defense(a)
            y = labels[i:i + batch_size].long()
            batch_guide = dataclasses.replace(guide, labels=y.to(device))
            loss_sum += float(restoration_loss(out, c, w, batch_guide)) * len(a)
            correct += int((guide.classifier(out).argmax(1).cpu() == y).sum())
        per[s.name] = {"loss": loss_sum / len(clean), "restored_accuracy": correct / len(clean)}
        total_loss, total_n, restored = total_loss + loss_sum, total_n + len(clean), restored + correct
    return {"loss": total_loss / max(total_n, 1), "restored_accuracy": restored / max(total_n, 1), "per_attack": per}


def _warm_start(net: torch.nn.Module, cfg: DefenseTrainConfig, dataset: str) -> None:
    """Start from the weights of a trained restorer of the same architecture and size (``cfg.init``)."""
    try:
        trained, card = load_defense(resolve_checkpoint(cfg.init, dataset))
    except CheckpointError as exc:
        raise CheckpointError(f"init {cfg.init!r} is not a {cfg.defense} restorer ({exc})") from None
    if card["architecture"] != cfg.defense:
        raise CheckpointError(f"init {cfg.init!r} is not a {cfg.defense} restorer (card: {card['architecture']!r})")
    if trained.arch_kwargs != net.arch_kwargs:
        raise CheckpointError(f"init {cfg.init!r} has arch_kwargs {trained.arch_kwargs}, this run builds "
                              f"{net.arch_kwargs}; set defense_params to match")
    net.load_state_dict(trained.state_dict())


def train_defense(cfg: DefenseTrainConfig, out: str | Path, store: str | Path = "runs/adversarial",
                  resume: bool = True, progress: Callable[[str, int, int], None] | None = None,
                  log: Callable[[str], None] = print) -> DefenseTrainResult:
    """Build the pairs, train ``cfg.defense`` on them, write checkpoints and the card under ``out``."""
    out = Path(out)
    run = RunContext.create(cfg.device, distributed=True, store=store, data_root=cfg.data_root, seed=cfg.seed,
                            batch_size=cfg.attack_batch_size)
    device, ctx = run.device, run.dist
    if not ctx.is_main:
        log = lambda s: None  # noqa: E731
        progress = None
    torch.manual_seed(cfg.seed)
    victim = run.load_target(cfg.target, cfg.dataset)
    classifier, tcard = victim.model, victim.card
    classifier.requires_grad_(False)  # frozen: guided loss terms backpropagate through it to the restorer only
    dataset = run.dataset_of(victim, cfg.dataset)
    guide = LossGuide(classifier)
    substitute = run.load_target(cfg.substitute, dataset) if cfg.substitute else None
    if cfg.loss.perceptual:
        guide.perceptual = run.load_target(cfg.perceptual_net, dataset).model
        guide.perceptual.requires_grad_(False)
        guide.perceptual_layers = cfg.perceptual_layers or guide.perceptual.feature_names[-3:-1]
    train = run.load_data(dataset, "train", target=victim)
    perm = np.random.default_rng(cfg.seed).permutation(len(train))
    n_train = min(cfg.n_train, len(train))
    n_val = min(cfg.n_val, len(train) - n_train)
    sources = plan_sources(cfg.attacks, train, perm[:n_train], "train")
    val_sources = plan_sources(cfg.attacks, train, perm[n_train:n_train + n_val], "val")

    t0 = time.perf_counter()
    fixed = [s for s in sources if not s.mix.on_the_fly] + val_sources
    for i, s in enumerate(fixed):  # rank r crafts every world_size-th set; the others find it in the store
        if i % ctx.world_size == ctx.rank:
            log(f"pairs: {s.name} on {len(s.data)} {s.label.split('[')[0]} images")
            build_source(s, victim, run, dataset, substitute=substitute)
    ctx.barrier()
    for s in fixed:
        if s.adv is None:
            build_source(s, victim, run, dataset, substitute=substitute)
    pair_seconds = time.perf_counter() - t0

    kwargs = dict(restorer_kwargs(train.shape), **cfg.defense_params)
    net = fast_layout(DEFENSES.create(cfg.defense, **kwargs).to(device), device)
    if cfg.init:
        _warm_start(net, cfg, dataset)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    model = DistributedDataParallel(net) if ctx.enabled else net
    start_epoch, best_val, history, train_time = resume_progress(out, resume, cfg.recipe(), net, opt, device,
                                                                 "best_val_loss", math.inf)
    last = out / "last.safetensors"
    if start_epoch:
        log(f"resuming {cfg.defense} after epoch {start_epoch}/{cfg.epochs}")

    base = {"dataset": dataset, "target": tcard["architecture"], "target_sha256": tcard["sha256"],
            "recipe": cfg.recipe()}
    per_rank = max(cfg.batch_size // ctx.world_size, 1)
    for epoch in range(start_epoch, cfg.epochs):
        t_epoch = time.perf_counter()
        for s in sources:
            if s.mix.on_the_fly:
                build_source(s, victim, run, dataset, epoch=epoch, substitute=substitute)
        adv, clean, labels = _stack(sources)
        order = torch.randperm(len(adv), generator=torch.Generator().manual_seed(_epoch_seed(cfg.seed, epoch)))
        steps = math.ceil(len(adv) / cfg.batch_size)
        model.train()
        loss_sum, seen = 0.0, 0
        for step in range(steps):
            for group in opt.param_groups:
                group["lr"] = cfg.lr * lr_factor(cfg.schedule, (epoch * steps + step) / (cfg.epochs * steps))
            idx = order[step * cfg.batch_size:(step + 1) * cfg.batch_size]
            idx = idx[ctx.rank * per_rank:(ctx.rank + 1) * per_rank] if ctx.enabled else idx
            a, c = adv[idx].to(device), clean[idx].to(device)
            batch_guide = dataclasses.replace(guide, labels=labels[idx].to(device))
            loss = restoration_loss(model(a), c, cfg.loss, batch_guide)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
            opt.step()
            loss_sum, seen = loss_sum + float(loss.detach()) * len(idx), seen + len(idx)
            if progress:
                progress(f"epoch {epoch + 1}/{cfg.epochs}", step + 1, steps)
        val = _validate(net, val_sources or sources, cfg.loss, guide, device)
        train_time += time.perf_counter() - t_epoch
        history.append({"epoch": epoch + 1, "loss": loss_sum / max(seen, 1), "val_loss": val["loss"],
                        "val_restored_accuracy": val["restored_accuracy"], "val_per_attack": val["per_attack"],
                        "seconds": round(time.perf_counter() - t_epoch, 2)})
        log(f"epoch {epoch + 1}/{cfg.epochs}: loss {loss_sum / max(seen, 1):.5f}  val loss {val['loss']:.5f}  "
            f"val restored acc {val['restored_accuracy']:.4f}  ({time.perf_counter() - t_epoch:.1f}s)")
        if ctx.is_main:
            if val["loss"] < best_val:
                best_val = val["loss"]
                save_defense(out / "best.safetensors", net, cfg.defense, dict(base, epoch=epoch + 1, val=val))
            save_tensors(last, {**net.state_dict(), **_optimizer_tensors(opt)},
                         dict(base, architecture=cfg.defense, epoch=epoch + 1, best_val_loss=best_val,
                              history=history, train_time_s=train_time))
        ctx.barrier()

    best = out / "best.safetensors"
    best_card = read_card(best)
    load_weights(net, load_tensors(best, best_card), str(best))
    card = dict(base, epochs=cfg.epochs, best_epoch=best_card["epoch"], val=best_card["val"],
                train_pairs={s.name: len(s.data) for s in sources}, val_pairs={s.name: len(s.data) for s in val_sources},
                pair_sets={s.label: s.key for s in sources + val_sources if s.key}, pair_seconds=round(pair_seconds, 1),
                train_time_s=round(train_time, 1), device=str(device), world_size=ctx.world_size,
                n_params=count_parameters(net), history=history)
    path = out / "model.safetensors"
    if ctx.is_main:
        card = save_defense(path, net, cfg.defense, card)
        log(f"{cfg.defense} for {tcard['architecture']}: best epoch {best_card['epoch']}, val loss "
            f"{best_card['val']['loss']:.5f}, val restored accuracy {best_card['val']['restored_accuracy']:.4f}, "
            f"{train_time:.0f}s of training -> {path}")
    ctx.barrier()
    return DefenseTrainResult(path, card)
