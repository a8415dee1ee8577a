"""Epochs that fit a wall-clock budget: time a few real training steps first, then fix ``epochs``.

The recipe's schedule is then the one that runs (a cosine or one-cycle schedule is not cut short), and the
card states what ran and why (``epochs_note``).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import torch

from advshield.data import load_dataset
from advshield.device import select_device
from advshield.io import atomic_write_json
from advshield.models import create_model
from advshield.training.config import TrainConfig
from advshield.training.trainer import step_loss


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def seconds_per_epoch(cfg: TrainConfig, steps: int = 12, warmup: int = 4) -> float:
    """Wall time of one training epoch of ``cfg`` on its device (augmentation, adversarial examples and the
    held-out validation included), timed on ``steps`` real batches after ``warmup`` untimed ones."""
    device = select_device(cfg.device)
    data = load_dataset(cfg.dataset, "train", cfg.data_root).head(cfg.n_train)
    model = create_model(cfg.model, **cfg.model_params).to(device).train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    gen, attack_gen = torch.Generator().manual_seed(0), torch.Generator(device=device).manual_seed(0)
    adv = cfg.adversarial
    timed = 0
    for i, (x, y) in enumerate(data.batches(cfg.batch_size, shuffle=True, device=device)):
        if i == warmup:
            _sync(device)
            t0 = time.perf_counter()
        if i == warmup + steps:
            break
        loss, _ = step_loss(cfg, model, x, y, gen, attack_gen, epoch=math.inf)  # at the full eps
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        float(loss)  # the trainer reads the loss every step (a device sync)
        timed = i + 1 - warmup
    if timed < 1:
        raise ValueError(f"{len(data)} images at batch {cfg.batch_size} are too few to time {warmup + 1} steps")
    _sync(device)
    per_batch = (time.perf_counter() - t0) / timed
    n_train = len(data) * (1 - cfg.val_fraction)
    if adv is not None:  # PGD on val_n images with val_steps, in units of a training batch's cost
        validation = adv.val_n * (adv.val_steps + 2) / (cfg.batch_size * (adv.steps + 2))
    else:  # one forward pass (a third of a training step) over the held-out images
        validation = len(data) * cfg.val_fraction / cfg.batch_size / 3
    return per_batch * (math.ceil(n_train / cfg.batch_size) + validation)


def fit_budget(cfg: TrainConfig, budget_s: float) -> tuple[TrainConfig, str]:
    """``cfg`` with the most epochs (at least 1, at most the recipe's) that fit ``budget_s`` seconds, and the
    note the card carries."""
    per_epoch = seconds_per_epoch(cfg)
    epochs = max(1, min(cfg.epochs, int(budget_s / per_epoch)))
    note = (f"epochs = {epochs}: the most that fit {budget_s:.0f} s at {per_epoch:.1f} s per epoch "
            f"(timed on {select_device(cfg.device)}), at most {cfg.epochs}")
    return cfg.model_copy(update={"epochs": epochs}), note


def stamp_card(checkpoint: Path, device: torch.device, **extra) -> dict:
    """Add to ``checkpoint``'s card what made it beyond its recipe: ``extra`` (e.g. ``epochs_note``; None is
    left out) and, on CUDA, the GPU's name. Returns the card."""
    card_file = checkpoint.with_suffix(".json")
    card = dict(json.loads(card_file.read_text()), **{k: v for k, v in extra.items() if v is not None})
    if device.type == "cuda":
        card["gpu"] = torch.cuda.get_device_name(device)
    atomic_write_json(card_file, card)
    return card
