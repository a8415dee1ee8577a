"""The attacked system and the three threat models.

A :class:`Pipeline` declares a classifier, an optional defense and an optional
detector. An attack never sees it directly: it gets a :class:`Surface`, the
differentiable function it takes gradients of, chosen by the threat model:

* ``white-box``  -- the classifier alone (the papers' oblivious setting);
* ``transfer``   -- a substitute classifier (black-box transfer);
* ``transfer-feedback`` -- gradients from a substitute, but the decisions an attack
  takes on success (early stopping, the epsilon search) read the victim's labels:
  the propagation paper's black-box setting, "iteratively conducted until a
  classifier returns a wrong label" (perturbation-propagation.txt, Sec. 2.1);
* ``adaptive``   -- the whole pipeline: exact gradients through a differentiable
  defense, BPDA through a non-differentiable one, EOT over a randomised one,
  and a penalty that keeps the detector's score under its threshold.

Success is always judged on the real pipeline.
"""

from __future__ import annotations

import enum
from typing import Protocol

import torch
from torch import nn

from advshield.defenses.base import Defense, apply_with_bpda
from advshield.errors import InputError


class ThreatModel(str, enum.Enum):
    WHITE_BOX = "white-box"
    TRANSFER = "transfer"
    TRANSFER_FEEDBACK = "transfer-feedback"
    ADAPTIVE = "adaptive"


class Detector(Protocol):
    """What a detector offers: a score per input (higher = more suspicious) and a calibrated threshold."""

    threshold: float

    def score(self, x: torch.Tensor) -> torch.Tensor: ...


class Pipeline(nn.Module):
    """classifier(defense(x)), with an optional detector that flags inputs."""

    def __init__(self, classifier: nn.Module, defense: Defense | None = None, detector: Detector | None = None):
        super().__init__()
        if detector is not None and not detector.threshold == detector.threshold:  # NaN: never calibrated
            raise InputError("the detector must be calibrated (a threshold at a stated FPR) before it guards a pipeline")
        self.classifier, self.defense, self.detector = classifier, defense, detector

    @property
    def randomized(self) -> bool:
        return bool(self.defense is not None and self.defense.randomized)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.defense(x) if self.defense is not None else x)

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self(x).argmax(1)

    @torch.no_grad()
    def detected(self, x: torch.Tensor) -> torch.Tensor | None:
        return None if self.detector is None else self.detector.score(x) > self.detector.threshold

    def surface(self, threat: ThreatModel | str = ThreatModel.WHITE_BOX, substitute: nn.Module | None = None,
                eot_samples: int = 1, detector_weight: float = 1.0) -> "Surface":
        threat = ThreatModel(threat)
        if threat in (ThreatModel.TRANSFER, ThreatModel.TRANSFER_FEEDBACK):
            if substitute is None:
                raise InputError(f"the {threat.value} threat model needs a substitute classifier")
            return Surface(substitute, judge=self if threat is ThreatModel.TRANSFER_FEEDBACK else None)
        if threat is ThreatModel.WHITE_BOX:
            return Surface(self.classifier)
        samples = eot_samples if self.randomized else 1
        return Surface(self.classifier, self.defense, samples, self.detector, detector_weight)


class Surface(nn.Module):
    """The function an attack differentiates: logits, plus an optional detector penalty.

    ``judge``, when set, is the module whose labels decide whether an example already
    fools (see :func:`judged_logits`); by default the surface's own logits decide.
    """

    def __init__(self, classifier: nn.Module, defense: Defense | None = None, eot_samples: int = 1,
                 detector: Detector | None = None, detector_weight: float = 1.0, judge: nn.Module | None = None):
        super().__init__()
        if eot_samples < 1:
            raise InputError(f"eot_samples must be >= 1, got {eot_samples}")
        self.classifier, self.defense, self.eot_samples = classifier, defense, eot_samples
        self.detector, self.detector_weight = detector, detector_weight
        self.detector_switch = False
        self.__dict__["judge"] = judge  # not a submodule: the victim is not part of what is differentiated

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.defense is None:
            return self.classifier(x)
        if self.eot_samples == 1:
            return self.classifier(apply_with_bpda(self.defense, x))
        # EOT (Athalye et al. 2018): average over draws of the randomised defense, in one batch.
        rep = x.repeat(self.eot_samples, *([1] * (x.ndim - 1)))
        logits = self.classifier(apply_with_bpda(self.defense, rep))
        return logits.view(self.eot_samples, x.shape[0], -1).mean(0)

    def computes(self, victim: nn.Module) -> bool:
        """True when this surface's labels are the victim's: the same classifier behind the same defense (none,
        or one the surface applies once: BPDA changes the backward pass only), so predicting on both would run
        the pipeline twice. An EOT surface averages draws of a randomised defense: not the victim's one draw."""
        if victim is self:
            return True
        if not isinstance(victim, Pipeline) or self.classifier is not victim.classifier:
            return False
        if self.defense is None:
            return victim.defense is None
        return (self.defense is victim.defense and self.eot_samples == 1
                and not getattr(self.defense, "randomized", False))

    def penalty(self, x: torch.Tensor) -> torch.Tensor | None:
        """Per-sample hinge on the detector score, > 0 while the input would be flagged: ``detector_weight`` times
        the score's excess over the threshold, relative to the threshold (so one weight means the same to a
        detector scoring 1e-3 as to one scoring 0.5). A detector whose score has no useful gradient offers
        ``adaptive_score`` (Defense-GAN: the latent search held fixed, BPDA)."""
        if self.detector is None:
            return None
        score = getattr(self.detector, "adaptive_score", self.detector.score)
        threshold = float(self.detector.threshold)
        return self.detector_weight * torch.relu(score(x) - threshold) / max(abs(threshold), 1e-6)

    def variant(self, **changes) -> "Surface":
        """The same surface (shared modules) with some of ``eot_samples``, ``detector``, ``detector_weight`` and
        ``detector_switch`` changed."""
        fields = {"eot_samples": self.eot_samples, "detector": self.detector, "detector_weight": self.detector_weight,
                  "detector_switch": self.detector_switch, **changes}
        switch = fields.pop("detector_switch")
        out = Surface(self.classifier, self.defense, judge=self.__dict__["judge"], **fields)
        out.detector_switch = switch
        return out

    def reweighted(self, detector_weight: float, switch: bool = False) -> "Surface":
        """The same surface with another detector weight (Carlini & Wagner's c); ``switch``: gradient attacks
        ascend the per-image switch instead of the hinge sum (see :func:`advshield.attacks.base.loss_gradient`)."""
        return self.variant(detector_weight=detector_weight, detector_switch=switch)
