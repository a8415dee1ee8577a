"""Validated training configuration (pydantic)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from advshield.data.core import DatasetName
from advshield.training.adversarial import AdversarialTraining


class RunFields(BaseModel):
    """Seed, device and data root of a training run (the seed is part of its recipe, device and data root are not)."""

    seed: int = 0
    device: str = "auto"
    data_root: str | None = None


class TrainConfig(RunFields):
    """Everything that defines a target-model training run; stored on its card."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    dataset: DatasetName = DatasetName.MNIST
    model: str = "a-net"
    model_params: dict = Field(default_factory=dict)  # architecture arguments, e.g. {"width": 16}
    epochs: int = Field(10, ge=1)
    batch_size: int = Field(128, ge=1)
    optimizer: Literal["adam", "sgd"] = "adam"
    lr: float = Field(1e-3, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)
    schedule: Literal["constant", "cosine", "step", "onecycle"] = "cosine"
    warmup_epochs: float = Field(0.0, ge=0)
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    # none; shift: random translation by up to 2 px (digits must not be flipped); crop-flip: pad 4, crop, flip.
    # None picks crop-flip for CIFAR-10, shift for GTSRB (a flipped sign can be another class: turn left/right)
    # and none for MNIST-like ones.
    augment: Literal["none", "shift", "crop-flip"] | None = None
    val_fraction: float = Field(0.1, ge=0, lt=1)
    n_train: int | None = Field(None, ge=1)  # use only the first n training images (tests, demos)
    adversarial: AdversarialTraining | None = None  # None: standard training
    # The shipped weights' dtype: float16 halves a zoo file (the card's numbers are measured on those weights).
    storage_dtype: Literal["float32", "float16"] = "float32"

    @field_validator("model")
    @classmethod
    def _known_model(cls, v: str) -> str:
        from advshield.models import MODELS

        MODELS.entry(v)  # raises with the list of choices
        return v

    @model_validator(mode="after")
    def _known_params(self) -> "TrainConfig":
        from advshield.models import MODELS

        MODELS.check_params(self.model, self.model_params)
        return self

    @model_validator(mode="after")
    def _robust_selection_needs_validation(self) -> "TrainConfig":
        if self.adversarial is not None and self.val_fraction == 0:
            raise ValueError("adversarial training selects its model on held-out robust accuracy: "
                             "val_fraction must be > 0")
        return self

    def augmentation(self) -> str:
        if self.augment is not None:
            return self.augment
        return {DatasetName.CIFAR10: "crop-flip", DatasetName.GTSRB: "shift"}.get(self.dataset, "none")

    def recipe(self) -> dict:
        """The fields that make a run what it is (a resumed run must match them)."""
        recipe = self.model_dump(mode="json", exclude={"device", "data_root"})
        for key, default in (("adversarial", None), ("storage_dtype", "float32")):  # recipes made before these existed
            if recipe[key] == default:
                del recipe[key]
        return recipe
