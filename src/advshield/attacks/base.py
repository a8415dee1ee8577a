"""Attack base classes and results (in the style of foolbox 3's typed hierarchy).

Every attack works on float32 NCHW images in [0, 1] and a :class:`Surface`
(any module returning logits also works). Untargeted by default; pass
``target`` labels for a targeted attack where the method allows.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import inspect
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from advshield.attacks.checks import (AttackError, check_eps, check_finite_arguments, check_linf_eps,  # noqa: F401
                                      check_positive_int)
from advshield.attacks.objective import (DETECTOR_KAPPA, DETECTOR_OBJECTIVE, DETECTOR_WEIGHTS,  # noqa: F401
                                        attack_loss, fooling_margin, is_fooled, joint_detector_loss, judged_logits,
                                        loss_gradient, succeeded)  # re-exported: attacks import them from here
from advshield.errors import InputError
from advshield.metrics.interval import wilson_interval
from advshield.metrics.norms import perturbation_norms  # noqa: F401  (re-exported by attacks)
from advshield.registry import Registry
from advshield.validation import check_images, check_labels

ATTACKS: Registry["Attack"] = Registry("attack")
register_attack = ATTACKS.register


class Norm(str, enum.Enum):
    LINF = "linf"
    L2 = "l2"
    L0 = "l0"


def median(t: torch.Tensor) -> float | None:
    return float(t.median()) if t.numel() else None


@dataclass
class AttackResult:
    """Adversarial images and how they fared on the attacked pipeline."""

    adv: torch.Tensor
    labels: torch.Tensor
    clean_pred: torch.Tensor
    adv_pred: torch.Tensor
    norms: dict[str, torch.Tensor]
    seconds: float
    target: torch.Tensor | None = None
    surface_adv_pred: torch.Tensor | None = None  # on the model the gradients came from, when it differs
    detected_clean: torch.Tensor | None = None
    detected_adv: torch.Tensor | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def clean_correct(self) -> torch.Tensor:
        ok = self.clean_pred == self.labels
        return ok if self.detected_clean is None else ok & ~self.detected_clean

    @property
    def fooled(self) -> torch.Tensor:
        hit = self.adv_pred == self.target if self.target is not None else self.adv_pred != self.labels
        return hit if self.detected_adv is None else hit & ~self.detected_adv

    @property
    def success(self) -> torch.Tensor:
        """Per sample: correct (and not flagged) before the attack, fooled (and not flagged) after it."""
        return self.clean_correct & self.fooled

    @property
    def unbroken(self) -> torch.Tensor:
        """Per sample: the attack did not win. Through a detector: right and unflagged clean, and right or flagged
        after the attack (a flagged clean image is an error); without one: right on the attack's image."""
        right = self.adv_pred == self.labels
        return right if self.detected_adv is None else self.clean_correct & (right | self.detected_adv)

    def summary(self) -> dict[str, Any]:
        n = len(self.labels)
        ok = self.clean_correct
        succ = self.success
        out: dict[str, Any] = {
            "n": n,
            "clean_accuracy": float((self.clean_pred == self.labels).float().mean()) if n else 0.0,
            "adv_accuracy": float((self.adv_pred == self.labels).float().mean()) if n else 0.0,
            # 95 % Wilson interval of the robust accuracy (issue 25: every robust accuracy with its interval)
            "adv_accuracy_ci95": list(wilson_interval(int((self.adv_pred == self.labels).sum()), n)) if n else None,
            "success_rate": float(succ.sum() / ok.sum()) if ok.any() else 0.0,
            "n_clean_correct": int(ok.sum()),
            "seconds": round(self.seconds, 3),
            "images_per_s": round(n / self.seconds, 1) if self.seconds > 0 else None,
        }
        for k, v in self.norms.items():
            out[f"median_{k}"] = median(v[succ])
            out[f"mean_{k}"] = float(v[succ].mean()) if succ.any() else None
        if self.surface_adv_pred is not None:
            out["surface_adv_accuracy"] = float((self.surface_adv_pred == self.labels).float().mean())
        if "broken_by" in self.info:  # an ensemble run: robust accuracy after each member
            from advshield.attacks.ensemble import member_robust_accuracy

            out["robust_accuracy_after"] = member_robust_accuracy(self)
            skipped = self.info.get("skipped_members")
            out.update({"skipped_members": list(skipped)} if skipped else {})
            out.update({"version_run": self.info["version"]} if self.info.get("version") else {})
        if self.detected_adv is not None:
            out["detected_clean_rate"] = float(self.detected_clean.float().mean())
            out["detected_adv_rate"] = float(self.detected_adv.float().mean())
        return out

    @staticmethod
    def concat(parts: list["AttackResult"]) -> "AttackResult":
        def cat(name):
            vals = [getattr(p, name) for p in parts]
            return None if vals[0] is None else torch.cat(vals)

        first = parts[0]
        return AttackResult(
            adv=cat("adv"), labels=cat("labels"), clean_pred=cat("clean_pred"), adv_pred=cat("adv_pred"),
            norms={k: torch.cat([p.norms[k] for p in parts]) for k in first.norms},
            seconds=sum(p.seconds for p in parts), target=cat("target"), surface_adv_pred=cat("surface_adv_pred"),
            detected_clean=cat("detected_clean"), detected_adv=cat("detected_adv"),
            info={k: torch.cat([p.info[k] for p in parts]) if isinstance(v, torch.Tensor) else v
                  for k, v in first.info.items()})


class Attack(ABC):
    """Base of every attack: validation, seeding, evaluation, timing."""

    name: ClassVar[str] = "attack"
    norm: ClassVar[Norm | None] = None
    supports_targeted: ClassVar[bool] = True
    randomized: ClassVar[bool] = False
    # True when the attack's objective includes the surface's detector penalty (its weight changes the attack):
    # against a detector, craft_batch then retries the unbroken images with each of DETECTOR_WEIGHTS.
    detector_aware: ClassVar[bool] = False
    # True when the objective comes from loss_gradient: the search then ends with a run of the per-image switch.
    reads_detector_switch: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # Every attack refuses non-finite numeric arguments at construction (NaN / inf eps, step sizes, ...).
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is None:
            return
        signature = inspect.signature(init)

        @functools.wraps(init)
        def checked_init(self, *args, **kw):
            bound = signature.bind(self, *args, **kw)
            check_finite_arguments(getattr(cls, "name", cls.__name__), dict(list(bound.arguments.items())[1:]))
            init(self, *args, **kw)

        cls.__init__ = checked_init

    def report(self, **info: Any) -> None:
        """Called from :meth:`perturb`: extra results merged into :attr:`AttackResult.info` by
        :func:`run_batch` (per-sample tensors are concatenated across batches)."""
        self.__dict__.setdefault("_last_info", {}).update(info)

    def params(self) -> dict[str, Any]:
        """The parameters that define the attack (used in content hashes and cards), enums as their values (a card
        in memory then reads as its JSON does; a str enum hashes as its value either way)."""
        return {k: (v.value if isinstance(v, enum.Enum) else v) for k, v in vars(self).items() if not k.startswith("_")}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.params().items())})"

    @abstractmethod
    def perturb(self, surface: nn.Module, x: torch.Tensor, labels: torch.Tensor, target: torch.Tensor | None,
                generator: torch.Generator) -> torch.Tensor:
        """Return adversarial images for a batch (already validated, on the surface's device)."""

    def __call__(self, model: nn.Module, x: torch.Tensor, labels: torch.Tensor, *,
                 target: torch.Tensor | None = None, seed: int = 0) -> AttackResult:
        """Attack ``model`` (white-box, on the model alone) and evaluate on it."""
        return run_batch(self, model, model, x, labels, target=target, seed=seed)


@contextlib.contextmanager
def frozen(*modules: nn.Module):
    """Parameters stop requiring grad while attacking: only input gradients are computed."""
    params = [p for m in modules for p in m.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


def _generator_for(x: torch.Tensor, seed: int) -> torch.Generator:
    return torch.Generator(device=x.device).manual_seed(seed)


def craft_batch(attack: Attack, surface: nn.Module, x: torch.Tensor, labels: torch.Tensor, *,
                target: torch.Tensor | None = None, seed: int = 0) -> tuple[torch.Tensor, float]:
    """(adversarial images, seconds) of one batch crafted on ``surface``, validated in and out; no judging."""
    check_images(x)
    check_labels(labels, x.shape[0])
    if target is not None:
        if not attack.supports_targeted:
            raise InputError(f"{attack.name} has no targeted version")
        check_labels(target, x.shape[0])
    surface.eval()
    t0 = time.perf_counter()
    attack.__dict__.pop("_last_info", None)
    generator = _generator_for(x, seed)
    with torch.enable_grad(), frozen(surface):
        if attack.detector_aware and getattr(surface, "detector", None) is not None and hasattr(surface, "reweighted"):
            adv = _search_detector_weight(attack, surface, x, labels, target, generator)
        else:
            adv = attack.perturb(surface, x, labels, target, generator).detach()
    if x.device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    check_output(attack, adv, x)
    return adv, seconds


def _search_detector_weight(attack: Attack, surface: nn.Module, x: torch.Tensor, labels: torch.Tensor,
                           target: torch.Tensor | None, generator: torch.Generator) -> torch.Tensor:
    """Carlini & Wagner's search over the detector weight c (2017, Sec. 5) as a sequence of runs: each weight of
    DETECTOR_WEIGHTS (times the surface's own), then the per-image switch (for attacks that read it), attacks the
    images no earlier run broke (misclassified and unflagged), the per-image worst case kept. ``info``: the weights
    and, per image, the one that broke it (-1: the switch; 0: none, or already fooled when clean); an ensemble's
    ``broken_by`` names the member within the run that broke the image."""
    base = float(surface.detector_weight)
    adv, info = x.clone(), {}
    with torch.no_grad():
        hit = succeeded(surface, x, labels, target)
    broke_at = torch.zeros(len(x), device=x.device)
    runs = [(f, False) for f in DETECTOR_WEIGHTS] + ([(1.0, True)] if attack.reads_detector_switch else [])
    for k, (factor, switch) in enumerate(runs):
        todo = (~hit).nonzero().squeeze(1)
        if len(todo) == 0:
            if k == 0:  # nothing to attack: one run on the whole batch still gives the attack's own records
                todo = torch.arange(len(x), device=x.device)
            else:
                break
        weighted = surface.reweighted(base * factor, switch)
        t = None if target is None else target[todo]
        sub = attack.perturb(weighted, x[todo], labels[todo], t, generator).detach()
        check_output(attack, sub, x[todo])
        for key, v in attack.__dict__.pop("_last_info", {}).items():  # per-image records follow their images
            if isinstance(v, torch.Tensor) and v.ndim and len(v) == len(todo):
                info.setdefault(key, torch.full((len(x), *v.shape[1:]), -2, dtype=v.dtype, device=v.device))[todo] = v
            else:
                info[key] = v
        adv[todo] = sub
        with torch.no_grad():
            fresh = todo[succeeded(weighted, sub, labels[todo], t) & ~hit[todo]]
        hit[fresh], broke_at[fresh] = True, -1.0 if switch else base * factor
    attack.__dict__["_last_info"] = {**info, "detector_weights": [base * f for f in DETECTOR_WEIGHTS],
                                     "broken_at_detector_weight": broke_at}
    return adv


def run_batch(attack: Attack, surface: nn.Module, victim: nn.Module, x: torch.Tensor, labels: torch.Tensor, *,
              target: torch.Tensor | None = None, seed: int = 0) -> AttackResult:
    """Craft on ``surface``, judge on ``victim`` (a Pipeline or a classifier); one batch."""
    check_images(x)
    victim.eval()
    with torch.no_grad():
        clean_pred = victim(x).argmax(1)
    adv, seconds = craft_batch(attack, surface, x, labels, target=target, seed=seed)
    extra = attack.__dict__.pop("_last_info", {})
    with torch.no_grad():
        adv_pred = victim(adv).argmax(1)
        same = surface is victim or (hasattr(surface, "computes") and surface.computes(victim))
        surface_pred = None if same else surface(adv).argmax(1)
    detect = getattr(victim, "detected", None)
    det_clean = detect(x) if callable(detect) else None
    det_adv = detect(adv) if callable(detect) else None
    return AttackResult(adv, labels, clean_pred, adv_pred, perturbation_norms(adv, x), seconds, target,
                        surface_pred, det_clean, det_adv, {"attack": attack.name, "params": attack.params(), **extra})


def check_output(attack: Attack, adv: torch.Tensor, x: torch.Tensor, tolerance: float = 1e-5) -> None:
    """Refuse, loudly, adversarial images that are non-finite, outside [0, 1] or outside the attack's budget."""
    if adv.shape != x.shape:
        raise AttackError(f"{attack.name} returned images of shape {tuple(adv.shape)} for inputs {tuple(x.shape)}")
    if not torch.isfinite(adv).all():
        raise AttackError(f"{attack.name} returned non-finite adversarial images")
    if float(adv.min()) < 0 or float(adv.max()) > 1:
        raise AttackError(f"{attack.name} returned images outside [0, 1] "
                          f"(range [{float(adv.min()):.6g}, {float(adv.max()):.6g}])")
    norm, eps = getattr(attack, "norm", None), getattr(attack, "eps", None)
    if norm in (Norm.LINF, Norm.L2) and isinstance(eps, (int, float)) and len(x):
        worst = float(perturbation_norms(adv, x)[Norm(norm).value].max())
        if worst > eps + tolerance * max(1.0, eps):
            raise AttackError(f"{attack.name} returned a perturbation of {Norm(norm).value} norm {worst:.6g}, "
                              f"over its budget eps = {eps:.6g}")
