"""Propagation presets (``kind: propagation``): the paper's five sets (Table 2) crafted on a substitute, stopped
on a reference classifier, measured layer by layer on several classifiers with and without denoisers."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from advshield.data.core import DatasetName
from advshield.reproduce.names import check_name

_STRICT = ConfigDict(extra="forbid")


class PropagationBudget(BaseModel):
    model_config = _STRICT

    n: int = Field(ge=1)  # images per set (the paper samples 1000)
    batch_size: int = Field(100, ge=1)


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
    notes: list[str] = Field(default_factory=list)  # markdown paragraphs under the report's title

    _name = field_validator("name")(classmethod(lambda cls, v: check_name(v)))


__all__ = ["PropagationBudget", "PropagationPreset"]
