"""Target-classifier training: per-epoch checkpoint, resume, best-on-validation selection.

Output folder:
  last.safetensors/.json   weights + optimizer state after the last finished epoch (resume point)
  best.safetensors/.json   weights with the best validation accuracy so far
  model.safetensors/.json  the final checkpoint (= best), card with clean test accuracy
The shuffling, dropout and augmentation randomness of epoch ``e`` derive from
``(seed, e)`` alone, so an interrupted and resumed run ends exactly where an
uninterrupted one does.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch.nn import functional as F

from advshield.checkpoint import library_versions, load_tensors, load_weights, read_card, save_model, save_tensors
from advshield.data import load_dataset, train_val_split
from advshield.device import select_device
from advshield.errors import CheckpointError
from advshield.metrics import accuracy
from advshield.models import count_parameters, create_model
from advshield.training.augment import random_crop_flip
from advshield.training.config import TrainConfig
from advshield.training.schedule import lr_factor

_OPTIM_PREFIX = "optim."


@dataclass
class TrainResult:
    checkpoint: Path
    card: dict


def _make_optimizer(cfg: TrainConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    if cfg.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                           nesterov=cfg.momentum > 0)


def _optimizer_tensors(opt: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    state = opt.state_dict()["state"]
    return {f"{_OPTIM_PREFIX}{i}.{k}": v for i, s in state.items() for k, v in s.items() if torch.is_tensor(v)}


def _restore_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor]) -> None:
    sd = opt.state_dict()
    state: dict[int, dict] = {}
    for key, v in tensors.items():
        i, name = key[len(_OPTIM_PREFIX):].split(".", 1)
        state.setdefault(int(i), {})[name] = v
    sd["state"] = state
    opt.load_state_dict(sd)


def resume_state(last: Path, recipe: dict, model: torch.nn.Module, opt: torch.optim.Optimizer,
                 device: torch.device) -> dict:
    """Load weights and optimizer state from ``last`` after checking its recipe; returns its card."""
    card = read_card(last)
    if card.get("recipe") != recipe:
        raise CheckpointError(f"{last.parent}: holds a run with a different recipe; use another --out or --no-resume")
    tensors = load_tensors(last, card)
    load_weights(model, {k: v for k, v in tensors.items() if not k.startswith(_OPTIM_PREFIX)}, str(last))
    _restore_optimizer(opt, {k: v.to(device) for k, v in tensors.items() if k.startswith(_OPTIM_PREFIX)})
    return card


def resume_progress(out: Path, resume: bool, recipe: dict, model: torch.nn.Module, opt: torch.optim.Optimizer,
                    device: torch.device, best_key: str, fresh_best: float) -> tuple[int, float, list, float]:
    """(epochs done, best validation value, history, training seconds) of an interrupted run in ``out``,
    its weights and optimizer state loaded; a fresh start when there is none or ``resume`` is off."""
    last = out / "last.safetensors"
    if not (resume and last.exists()):
        return 0, fresh_best, [], 0.0
    card = resume_state(last, recipe, model, opt, device)
    return card["epoch"], card[best_key], card["history"], card["train_time_s"]


def _epoch_seed(seed: int, epoch: int) -> int:
    return seed * 100_003 + epoch


def train_target(cfg: TrainConfig, out: str | Path, resume: bool = True,
                 progress: Callable[[str, int, int], None] | None = None,
                 log: Callable[[str], None] = print) -> TrainResult:
    """Train ``cfg.model`` on ``cfg.dataset``; write checkpoints and the card under ``out``."""
    out = Path(out)
    device = select_device(cfg.device)
    torch.manual_seed(cfg.seed)
    full = load_dataset(cfg.dataset, "train", cfg.data_root).head(cfg.n_train)
    test = load_dataset(cfg.dataset, "test", cfg.data_root)
    train, val = train_val_split(full, cfg.val_fraction, cfg.seed)
    model = create_model(cfg.model, **cfg.model_params).to(device)
    if tuple(model.input_shape) != train.shape:
        raise CheckpointError(f"model {cfg.model} takes {model.input_shape} images but {cfg.dataset.value} "
                              f"has {train.shape}")
    opt = _make_optimizer(cfg, model)
    steps_per_epoch = math.ceil(len(train) / cfg.batch_size)
    total_steps = cfg.epochs * steps_per_epoch
    start_epoch, best_val, history, train_time = resume_progress(out, resume, cfg.recipe(), model, opt, device,
                                                                 "best_val_accuracy", -1.0)
    last = out / "last.safetensors"
    if start_epoch:
        log(f"resuming {cfg.model} on {cfg.dataset.value} after epoch {start_epoch}/{cfg.epochs}")

    augment = cfg.augmentation()
    for epoch in range(start_epoch, cfg.epochs):
        t0 = time.perf_counter()
        model.train()
        torch.manual_seed(_epoch_seed(cfg.seed, epoch))  # dropout
        gen = torch.Generator().manual_seed(_epoch_seed(cfg.seed, epoch))
        loss_sum, correct, seen = 0.0, 0, 0
        batches = train.batches(cfg.batch_size, shuffle=True, seed=_epoch_seed(cfg.seed, epoch), device=device)
        for step, (x, y) in enumerate(batches):
            progress_now = (epoch * steps_per_epoch + step) / total_steps
            for group in opt.param_groups:
                group["lr"] = cfg.lr * lr_factor(cfg.schedule, progress_now, cfg.warmup_epochs / cfg.epochs)
            if augment != "none":
                x = random_crop_flip(x, gen, padding=4 if augment == "crop-flip" else 2, flip=augment == "crop-flip")
            logits = model(x)
            loss = F.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += float(loss.detach()) * len(y)
            correct += int((logits.argmax(1) == y).sum())
            seen += len(y)
            if progress:
                progress(f"epoch {epoch + 1}/{cfg.epochs}", step + 1, steps_per_epoch)
        val_acc = accuracy(model, val, device=device) if len(val) else correct / seen
        train_time += time.perf_counter() - t0
        history.append({"epoch": epoch + 1, "loss": loss_sum / seen, "train_accuracy": correct / seen,
                        "val_accuracy": val_acc, "seconds": round(time.perf_counter() - t0, 2)})
        log(f"epoch {epoch + 1}/{cfg.epochs}: loss {loss_sum / seen:.4f}  train acc {correct / seen:.4f}  "
            f"val acc {val_acc:.4f}  ({time.perf_counter() - t0:.1f}s)")
        base = {"architecture": cfg.model, "arch_kwargs": cfg.model_params, "dataset": cfg.dataset.value,
                "recipe": cfg.recipe()}
        if val_acc > best_val:
            best_val = val_acc
            save_model(out / "best.safetensors", model, dict(base, epoch=epoch + 1, val_accuracy=val_acc))
        save_tensors(last, {**model.state_dict(), **_optimizer_tensors(opt)},
                     dict(base, epoch=epoch + 1, best_val_accuracy=best_val, history=history, train_time_s=train_time))

    best = out / "best.safetensors"
    best_card = read_card(best)
    load_weights(model, load_tensors(best, best_card), str(best))
    test_acc = accuracy(model, test, device=device)
    card = {
        "architecture": cfg.model, "arch_kwargs": cfg.model_params, "dataset": cfg.dataset.value,
        "epochs": cfg.epochs, "seed": cfg.seed,
        "best_epoch": best_card["epoch"], "val_accuracy": best_card["val_accuracy"], "test_accuracy": test_acc,
        "test_set": {"n": len(test), "source": test.meta.get("source", "")},
        "train_images": len(train), "train_time_s": round(train_time, 1), "device": str(device),
        "n_params": count_parameters(model), "recipe": cfg.recipe(), "history": history,
    }
    card = save_model(out / "model.safetensors", model, card)
    log(f"{cfg.model} on {cfg.dataset.value}: clean test accuracy {test_acc:.4f} ({len(test)} images), "
        f"best epoch {best_card['epoch']}, {train_time:.0f}s of training -> {out / 'model.safetensors'}")
    return TrainResult(out / "model.safetensors", card)
