"""Adversarial training objectives, built on the project's own attack engine (L-inf).

- ``pgd``: Madry et al. 2018, "Towards Deep Learning Models Resistant to Adversarial Attacks", Eq. 2.8:
  minimise the cross-entropy on PGD examples (random start, ``steps`` sign steps of ``step_size``).
- ``trades``: Zhang et al. 2019, "Theoretically Principled Trade-off between Robustness and Accuracy",
  Eq. 5: CE(f(x), y) + beta * KL(f(x) || f(x')), x' maximising the KL term by PGD from x + 0.001 N(0, 1).
- ``fgsm-rs``: Wong et al. 2020, "Fast is better than free", Alg. 3: one FGSM step of 1.25 eps from a
  uniform random start (the engine's PGD with one step).

Examples are crafted with the model in eval mode (dropout off, batch-norm running statistics, as the TRADES
reference does) and with the parameters frozen; the update then runs in train mode. For PGD and FGSM-RS this
deviates from Madry et al.'s and Wong et al.'s code, which craft in train mode: one convention for all three
methods, and examples that do not depend on the batch they are crafted in. ``eps_warmup_epochs``
ramps eps linearly from 0 (Gowal et al. 2018 / Wong et al. 2020 use such ramps against early collapse).
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn
from torch.nn import functional as F

from advshield.attacks import ATTACKS
from advshield.attacks.base import frozen, loss_gradient


# The field's usual L-inf budgets (Madry et al. 2018 for MNIST and CIFAR-10; 0.1 for Fashion-MNIST as in
# RobustBench-style MNIST-like benchmarks; GTSRB like CIFAR-10): the CLI's default when --adv-eps is not given.
DEFAULT_EPS = {"mnist": 0.3, "fashion-mnist": 0.1, "cifar10": 8 / 255, "gtsrb": 8 / 255}


class AdversarialTraining(BaseModel):
    """The adversarial part of a training recipe (stored on the card)."""

    model_config = ConfigDict(extra="forbid")

    method: Literal["pgd", "trades", "fgsm-rs"] = "pgd"
    eps: float = Field(0.3, gt=0, le=1)
    steps: int = Field(10, ge=1)  # inner maximisation steps (pgd, trades); fgsm-rs takes one
    step_size: float | None = Field(None, gt=0)  # None: 2.5 eps / steps (Madry et al.), 1.25 eps for fgsm-rs
    beta: float = Field(6.0, ge=0)  # TRADES trade-off (the reference's 6 for CIFAR-10, 1 to 6 for MNIST)
    eps_warmup_epochs: float = Field(0.0, ge=0)
    # Model selection and early stopping on held-out robust accuracy (Rice et al. 2020, "Overfitting in
    # adversarially robust deep learning"): PGD with val_steps steps and 2.5 eps / val_steps on val_n images.
    val_n: int = Field(1000, ge=1)
    val_steps: int = Field(20, ge=1)
    patience: int | None = Field(None, ge=1)  # stop after this many epochs without a better robust val accuracy
    # The robust test accuracy written on the card: the AutoAttack ensemble on eval_n test images.
    eval_n: int = Field(1000, ge=1)
    eval_version: Literal["standard", "fast"] = "standard"
    eval_batch_size: int = Field(500, ge=1)  # batch i is attacked with seed + i: part of what the card measured

    @model_validator(mode="after")
    def _one_step(self) -> "AdversarialTraining":
        if self.method == "fgsm-rs":
            self.steps = 1
        return self

    def alpha(self, eps: float) -> float:
        """Step size at budget ``eps`` (scaled with eps during the warm-up)."""
        if self.step_size is not None:
            return self.step_size * eps / self.eps
        return 1.25 * eps if self.method == "fgsm-rs" else 2.5 * eps / self.steps

    def eps_at(self, epoch_progress: float) -> float:
        """The budget after ``epoch_progress`` epochs (fractional)."""
        if self.eps_warmup_epochs <= 0:
            return self.eps
        return self.eps * min(1.0, max(epoch_progress, 1e-3) / self.eps_warmup_epochs)


def _pgd_examples(cfg: AdversarialTraining, model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float,
                  generator: torch.Generator) -> torch.Tensor:
    attack = ATTACKS.create("pgd", eps=eps, steps=cfg.steps, abs_stepsize=cfg.alpha(eps), random_start=True,
                            early_stop=False)
    return attack.perturb(model, x, y, None, generator)


def _trades_examples(cfg: AdversarialTraining, model: nn.Module, x: torch.Tensor, clean_prob: torch.Tensor,
                     eps: float, generator: torch.Generator) -> torch.Tensor:
    def kl_to_clean(logits, labels, target):  # per-sample KL(f(x) || f(x')), the term the inner step maximises
        return F.kl_div(F.log_softmax(logits, 1), clean_prob, reduction="none").sum(1)

    alpha = cfg.alpha(eps)
    adv = (x + 0.001 * torch.randn(x.shape, generator=generator, device=x.device)).clamp(0, 1)
    for _ in range(cfg.steps):
        _, grad, _ = loss_gradient(model, adv, clean_prob, None, loss_fn=kl_to_clean)
        adv = (x + (adv + alpha * grad.sign() - x).clamp(-eps, eps)).clamp(0, 1)
    return adv.detach()


def adversarial_loss(cfg: AdversarialTraining, model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float,
                     generator: torch.Generator, label_smoothing: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(training loss, logits on the adversarial examples) of one batch; leaves ``model`` in train mode."""
    model.eval()
    with torch.enable_grad(), frozen(model):
        if cfg.method == "trades":
            with torch.no_grad():
                clean_prob = F.softmax(model(x), 1)
            adv = _trades_examples(cfg, model, x, clean_prob, eps, generator)
        else:
            adv = _pgd_examples(cfg, model, x, y, eps, generator)
    model.train()
    if cfg.method == "trades":  # two passes, as the reference: the batch-norm statistics of each batch apart
        logits_clean, logits_adv = model(x), model(adv)
        robust = F.kl_div(F.log_softmax(logits_adv, 1), F.softmax(logits_clean, 1), reduction="batchmean")
        return F.cross_entropy(logits_clean, y, label_smoothing=label_smoothing) + cfg.beta * robust, logits_adv
    logits = model(adv)
    return F.cross_entropy(logits, y, label_smoothing=label_smoothing), logits


@torch.no_grad()
def _correct(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> int:
    return int((model(x).argmax(1) == y).sum())


def robust_validation(cfg: AdversarialTraining, model: nn.Module, x: torch.Tensor, y: torch.Tensor, seed: int,
                      batch_size: int = 500) -> tuple[float, float]:
    """(clean, PGD robust) accuracy on held-out images: the model-selection signal."""
    model.eval()
    attack = ATTACKS.create("pgd", eps=cfg.eps, steps=cfg.val_steps, abs_stepsize=2.5 * cfg.eps / cfg.val_steps,
                            random_start=True, early_stop=False)
    clean = robust = 0
    generator = torch.Generator(device=x.device).manual_seed(seed)
    for start in range(0, len(x), batch_size):
        xb, yb = x[start:start + batch_size], y[start:start + batch_size]
        clean += _correct(model, xb, yb)
        with torch.enable_grad(), frozen(model):
            adv = attack.perturb(model, xb, yb, None, generator)
        robust += _correct(model, adv, yb)
    return clean / len(x), robust / len(x)
