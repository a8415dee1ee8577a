"""Propagation presets (``kind: propagation``): the paper's five sets (Table 2) crafted on a substitute, stopped
on a reference classifier, measured layer by layer on several classifiers with and without denoisers."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from advshield.data.core import DatasetName
from advshield.errors import AdvShieldError
from advshield.reproduce.names import check_name
from advshield.reproduce.sample_size import check_adaptive_sample

_STRICT = ConfigDict(extra="forbid")


class PropagationBudget(BaseModel):
    model_config = _STRICT

    n: int = Field(ge=1)  # images per set (the paper samples 1000)
    batch_size: int = Field(100, ge=1)
    n_adaptive: int = Field(0, ge=0)  # test images each denoiser is attacked on (beyond the paper; 0: not run)
    n_checks: int = Field(100, ge=0)  # images the health checks of every adaptive setting run on (0: none)
    n_adaptive_reason: str | None = None  # why fewer than 500 adaptive images (required then on CIFAR-10, full)


class PropagationAdaptive(BaseModel):
    """Beyond the paper: each denoiser in front of the reference classifier, under ``attacks`` crafted on the
    classifier alone (white-box, oblivious of the denoiser) and through the denoiser (adaptive: exact gradients,
    BPDA or EOT as the denoiser requires), then the AutoAttack ensemble with ``ensemble``'s parameters (adaptive
    only); every adaptive setting is checked for convergence and gradient masking (the Red flags)."""
    model_config = _STRICT

    attacks: dict[str, dict] = Field(min_length=1)  # attack -> parameters (state eps: the paper gives none)
    ensemble: dict | None = None  # parameters of the autoattack ensemble; None: not run

    @model_validator(mode="after")
    def _attacks_exist(self) -> "PropagationAdaptive":
        """Unknown attacks or parameters fail when the preset loads, not after hours of propagation runs."""
        from advshield.attacks import create_attack
        from advshield.reproduce.restoration.preset import ENSEMBLE

        for name, params in [*self.attacks.items(), *([(ENSEMBLE, self.ensemble)] if self.ensemble else [])]:
            try:
                create_attack(name, **params)
            except (AdvShieldError, TypeError) as exc:
                raise ValueError(f"adaptive attack {name}: {exc}") from None
        return self


def denoiser_key(name: str) -> str:
    """The folder name, link and HTML id of a denoiser (a zoo name or a checkpoint path): ``.safetensors``
    dropped, every character outside letters, digits, ``_``, ``.`` and ``-`` turned into ``-``."""
    stem = name[:-len(".safetensors")] if name.endswith(".safetensors") else name
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", stem).strip("-.") or "denoiser"


class PropagationPreset(BaseModel):
    model_config = _STRICT

    kind: Literal["propagation"]
    name: str
    title: str
    paper: str  # file under shared/papers
    dataset: DatasetName
    models: list[str] = Field(min_length=1)  # the classifiers analysed (zoo names or checkpoints)
    substitute: str  # the attacker the sets are crafted on (the paper's ResNet-18)
    reference: str  # whose labels stop the v2 sets and MI-FGSM (the paper's Inception-ResNet V2)
    denoisers: list[str] = Field(default_factory=list)  # restorers measured as <set>+<architecture>
    eps: float = Field(16 / 255, gt=0, le=1)  # the largest L-inf budget of the sweeps
    split: Literal["train", "test"] = "test"
    fast: PropagationBudget
    full: PropagationBudget
    adaptive: PropagationAdaptive | None = None  # the denoisers under attack (needs denoisers and n_adaptive)
    notes: list[str] = Field(default_factory=list)  # markdown paragraphs under the report's title

    _name = field_validator("name")(classmethod(lambda cls, v: check_name(v)))

    @model_validator(mode="after")
    def _adaptive_sample(self) -> "PropagationPreset":
        keys = [denoiser_key(d) for d in self.denoisers]
        if len(set(keys)) < len(keys):
            raise ValueError(f"denoisers: two of {self.denoisers} share the folder name of {keys}")
        if self.adaptive is not None:
            if not self.denoisers:
                raise ValueError("adaptive: the preset has no denoisers to attack")
            if not self.full.n_adaptive:
                raise ValueError("adaptive: full.n_adaptive is 0, so the full variant would attack no denoiser")
            check_adaptive_sample(self.dataset.value, {"n_adaptive": self.full.n_adaptive},
                                  self.full.n_adaptive_reason)
        return self


__all__ = ["PropagationAdaptive", "PropagationBudget", "PropagationPreset", "denoiser_key"]
