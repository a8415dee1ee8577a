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

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch.nn import functional as F

from advshield.checkpoint import (card_path, library_versions, load_tensors, load_weights, read_card, save_model,
                                  save_tensors)
from advshield.data import load_dataset, train_val_split
from advshield.device import select_device
from advshield.errors import CheckpointError
from advshield.io import sweep_temporaries
from advshield.metrics import accuracy
from advshield.models import count_parameters, create_model
from advshield.training.adversarial import adversarial_loss, robust_validation
from advshield.training.augment import random_crop_flip
from advshield.training.config import TrainConfig
from advshield.training.robust_card import robust_accuracy_card
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


class TornCheckpoint(CheckpointError):
    """``last``'s weights and card do not belong together: a run killed between writing the one and the other
    (both are written atomically, the weights first), or a damaged file. Resuming starts the run again."""


def step_loss(cfg: TrainConfig, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator,
              attack_gen: torch.Generator, epoch: float) -> tuple[torch.Tensor, torch.Tensor]:
    """One training batch's loss and logits: the recipe's augmentation, then the cross-entropy on the clean or
    (adversarial training, at ``epoch``'s eps) the adversarial images, whose logits train accuracy counts."""
    augment = cfg.augmentation()
    if augment != "none":
        x = random_crop_flip(x, gen, padding=4 if augment == "crop-flip" else 2, flip=augment == "crop-flip")
    if cfg.adversarial is not None:
        return adversarial_loss(cfg.adversarial, model, x, y, cfg.adversarial.eps_at(epoch), attack_gen,
                                cfg.label_smoothing)
    logits = model(x)
    return F.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing), logits


def resume_state(last: Path, recipe: dict, model: torch.nn.Module, opt: torch.optim.Optimizer,
                 device: torch.device) -> dict:
    """Load weights and optimizer state from ``last`` after checking its recipe; returns its card."""
    if not card_path(last).exists():
        raise TornCheckpoint(f"{card_path(last)}: missing beside its weights")
    card = read_card(last)
    if card.get("recipe") != recipe:
        raise CheckpointError(f"{last.parent}: holds a run with a different recipe; use another --out or --no-resume")
    try:
        tensors = load_tensors(last, card)
    except CheckpointError as exc:  # nothing is loaded yet: the model and optimizer are untouched
        raise TornCheckpoint(str(exc)) from None
    load_weights(model, {k: v for k, v in tensors.items() if not k.startswith(_OPTIM_PREFIX)}, str(last))
    _restore_optimizer(opt, {k: v.to(device) for k, v in tensors.items() if k.startswith(_OPTIM_PREFIX)})
    return card


def resume_progress(out: Path, resume: bool, recipe: dict, model: torch.nn.Module, opt: torch.optim.Optimizer,
                    device: torch.device, best_key: str, fresh_best: float) -> tuple[int, float, list, float]:
    """(epochs done, best validation value, history, training seconds) of an interrupted run in ``out``,
    its weights and optimizer state loaded; a fresh start when there is none or ``resume`` is off."""
    sweep_temporaries(out)  # what a run killed while writing a checkpoint left behind
    last = out / "last.safetensors"
    if not (resume and last.exists()):
        return 0, fresh_best, [], 0.0
    try:
        card = resume_state(last, recipe, model, opt, device)
    except TornCheckpoint as exc:  # a kill at any moment costs time, never the run (docs/reliability.md)
        logging.getLogger("advshield").warning("advshield: %s; starting the run again", exc)
        return 0, fresh_best, [], 0.0
    return card["epoch"], card[best_key], card["history"], card["train_time_s"]


def _epoch_seed(seed: int, epoch: int) -> int:
    return seed * 100_003 + epoch


def _validate(cfg: TrainConfig, model: torch.nn.Module, val, device, epoch: int) -> dict:
    """Validation numbers of an epoch; ``select`` is what model selection maximises (robust accuracy under
    PGD for adversarial training, Rice et al. 2020, else clean accuracy)."""
    if cfg.adversarial is None:
        acc = accuracy(model, val, device=device)
        return {"val_accuracy": acc, "select": acc}
    x, y = val.head(cfg.adversarial.val_n).tensors(device=device)
    clean, robust = robust_validation(cfg.adversarial, model, x, y, seed=_epoch_seed(cfg.seed, epoch))
    return {"val_accuracy": clean, "val_robust_accuracy": robust, "select": robust}


def _stalled(history: list[dict], patience: int | None) -> bool:
    """No better selection value for ``patience`` epochs (early stopping)."""
    if patience is None or len(history) <= patience:
        return False
    key = "val_robust_accuracy" if "val_robust_accuracy" in history[-1] else "val_accuracy"
    best = max(range(len(history)), key=lambda i: history[i][key])
    return len(history) - 1 - best >= patience


def _trained_by(recipe: dict) -> dict:
    """The part of a recipe that made the weights (not how the finished model is evaluated)."""
    adv = {k: v for k, v in (recipe.get("adversarial") or {}).items() if not k.startswith("eval_")}
    return dict(recipe, adversarial=adv)


def _storage(model: torch.nn.Module, dtype: str) -> dict[str, torch.Tensor]:
    """The state dict as shipped (floating tensors in ``dtype``)."""
    target = getattr(torch, dtype)
    return {k: v.to(target) if v.is_floating_point() else v for k, v in model.state_dict().items()}


def train_target(cfg: TrainConfig, out: str | Path, resume: bool = True,
                 progress: Callable[[str, int, int], None] | None = None,
                 log: Callable[[str], None] = print) -> TrainResult:
    """Train ``cfg.model`` on ``cfg.dataset``; write checkpoints and the card under ``out``."""
    out = Path(out)
    device = select_device(cfg.device)
    torch.manual_seed(cfg.seed)
    full = load_dataset(cfg.dataset, "train", cfg.data_root).head(cfg.n_train)
    train, val_set = train_val_split(full, cfg.val_fraction, cfg.seed)
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

    adv = cfg.adversarial
    for epoch in range(start_epoch, cfg.epochs):
        if _stalled(history, adv.patience if adv else None):
            log(f"early stop: no better validation robust accuracy in {adv.patience} epochs")
            break
        t0 = time.perf_counter()
        model.train()
        torch.manual_seed(_epoch_seed(cfg.seed, epoch))  # dropout
        gen = torch.Generator().manual_seed(_epoch_seed(cfg.seed, epoch))
        attack_gen = torch.Generator(device=device).manual_seed(_epoch_seed(cfg.seed, epoch))
        loss_sum, correct, seen = 0.0, 0, 0
        batches = train.batches(cfg.batch_size, shuffle=True, seed=_epoch_seed(cfg.seed, epoch), device=device)
        for step, (x, y) in enumerate(batches):
            progress_now = (epoch * steps_per_epoch + step) / total_steps
            for group in opt.param_groups:
                group["lr"] = cfg.lr * lr_factor(cfg.schedule, progress_now, cfg.warmup_epochs / cfg.epochs)
            loss, logits = step_loss(cfg, model, x, y, gen, attack_gen, epoch + step / steps_per_epoch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += float(loss.detach()) * len(y)
            correct += int((logits.argmax(1) == y).sum())
            seen += len(y)
            if progress:
                progress(f"epoch {epoch + 1}/{cfg.epochs}", step + 1, steps_per_epoch)
        val = _validate(cfg, model, val_set, device, epoch) if len(val_set) else {"val_accuracy": correct / seen,
                                                                                    "select": correct / seen}
        val_acc = val.pop("select")
        train_time += time.perf_counter() - t0
        history.append({"epoch": epoch + 1, "loss": loss_sum / seen, "train_accuracy": correct / seen, **val,
                        **({"eps": adv.eps_at(epoch + 1)} if adv else {}), "seconds": round(time.perf_counter() - t0, 2)})
        log(f"epoch {epoch + 1}/{cfg.epochs}: loss {loss_sum / seen:.4f}  train acc {correct / seen:.4f}  "
            + "  ".join(f"{k.replace('_', ' ')} {v:.4f}" for k, v in val.items())
            + f"  ({time.perf_counter() - t0:.1f}s)")
        base = {"architecture": cfg.model, "arch_kwargs": cfg.model_params, "dataset": cfg.dataset.value,
                "recipe": cfg.recipe()}
        if val_acc > best_val:
            best_val = val_acc
            save_model(out / "best.safetensors", model, dict(base, epoch=epoch + 1, **val))
        save_tensors(last, {**model.state_dict(), **_optimizer_tensors(opt)},
                     dict(base, epoch=epoch + 1, best_val_accuracy=best_val, history=history, train_time_s=train_time))

    return finish_run(cfg, out, train_images=len(train), log=log, progress=progress)


def finish_run(cfg: TrainConfig, out: str | Path, train_images: int | None = None,
               log: Callable[[str], None] = print,
               progress: Callable[[str, int, int], None] | None = None) -> TrainResult:
    """Write ``model.safetensors`` and its card from a finished run in ``out`` (its best checkpoint, and the
    history in ``last.json``): clean test accuracy and, for adversarial training, the AutoAttack robust card
    (reporting to ``progress``). ``train_target`` ends with it; it can also finish a run whose training ended but
    whose evaluation did not."""
    out = Path(out)
    device = select_device(cfg.device)
    test = load_dataset(cfg.dataset, "test", cfg.data_root)
    last_card = read_card(out / "last.safetensors")
    if _trained_by(last_card.get("recipe") or {}) != _trained_by(cfg.recipe()):
        raise CheckpointError(f"{out}: holds a run with a different recipe")
    history, train_time, adv = last_card["history"], last_card["train_time_s"], cfg.adversarial
    if train_images is None:
        full = load_dataset(cfg.dataset, "train", cfg.data_root).head(cfg.n_train)
        train_images = len(train_val_split(full, cfg.val_fraction, cfg.seed)[0])
    model = create_model(cfg.model, **cfg.model_params).to(device)
    best = out / "best.safetensors"
    best_card = read_card(best)
    load_weights(model, load_tensors(best, best_card), str(best))
    load_weights(model, _storage(model, cfg.storage_dtype), "the shipped weights")  # measure what ships
    test_acc = accuracy(model, test, device=device)
    card = {
        "architecture": cfg.model, "arch_kwargs": cfg.model_params, "dataset": cfg.dataset.value,
        "epochs": cfg.epochs, "seed": cfg.seed,
        "best_epoch": best_card["epoch"], "val_accuracy": best_card["val_accuracy"], "test_accuracy": test_acc,
        "test_set": {"n": len(test), "source": test.meta.get("source", "")},
        "train_images": train_images, "train_time_s": round(train_time, 1), "device": str(device),
        "n_params": count_parameters(model), "recipe": cfg.recipe(), "history": history,
    }
    if cfg.storage_dtype != "float32":
        card["storage_dtype"] = cfg.storage_dtype
    if adv is not None:
        card["val_robust_accuracy"] = best_card["val_robust_accuracy"]
        if len(history) < cfg.epochs:
            card["stopped_after_epoch"] = len(history)
        log(f"robust test accuracy: AutoAttack ({adv.eval_version}) on {min(adv.eval_n, len(test))} test images ...")
        card["robust_test"] = robust_accuracy_card(model, test, adv.eps, adv.eval_n, adv.eval_version,
                                                   batch_size=adv.eval_batch_size, seed=cfg.seed, device=device,
                                                   progress=progress)
    card = save_tensors(out / "model.safetensors", _storage(model, cfg.storage_dtype),
                        dict(card, versions=library_versions()))
    robust = (f", AutoAttack robust accuracy {card['robust_test']['robust_accuracy']:.4f} "
              f"({card['robust_test']['n']} images)") if adv is not None else ""
    log(f"{cfg.model} on {cfg.dataset.value}: clean test accuracy {test_acc:.4f} ({len(test)} images){robust}, "
        f"best epoch {best_card['epoch']}, {train_time:.0f}s of training -> {out / 'model.safetensors'}")
    return TrainResult(out / "model.safetensors", card)
