"""Validated configuration of a restoration-defense training run (pydantic)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from advshield.experiment import AttackSetting, Threat, ThreatField, ThreatModel
from advshield.training.config import RunFields

if TYPE_CHECKING:
    from advshield.zoo import ZooEntry


def check_restorer(name: str) -> str:
    """``name`` if it is a registered trainable restorer; a ValueError naming the restorers otherwise."""
    from advshield.defenses import DEFENSES, is_restorer

    if not is_restorer(DEFENSES.entry(name).name):
        raise ValueError(f"{name} is not a trainable restorer; choose one of {DEFENSES.names(kind='restorer')}")
    return name


class AttackMix(BaseModel):
    """One source of (adversarial, clean) pairs: a registered attack, or ``clean`` for identity pairs.

    ``threat``: crafted on the target (white-box), on the run's ``substitute`` (transfer), or on
    the substitute with early stopping read from the target's labels (transfer-feedback, the
    propagation paper's v2 sets). ``label`` names the source where one attack appears twice.
    """

    model_config = ConfigDict(extra="forbid")

    name: str
    label: str | None = None
    params: dict = Field(default_factory=dict)
    proportion: float = Field(1.0, gt=0)
    threat: ThreatField = Field(default_factory=Threat)
    on_the_fly: bool = False  # regenerate these pairs every epoch (for cheap attacks)

    @property
    def key(self) -> str:
        return self.label or self.name

    def setting(self, substitute: str | None = None) -> AttackSetting:
        """This source as an attack setting (not for ``clean``); transfer kinds craft on ``substitute``."""
        return AttackSetting(self.name, self.params, self.threat.with_substitute(substitute), label=self.label)

    @field_validator("threat")
    @classmethod
    def _pair_threat(cls, v: Threat) -> Threat:
        return Threat.parse(v, allowed=(ThreatModel.WHITE_BOX, ThreatModel.TRANSFER, ThreatModel.TRANSFER_FEEDBACK))

    @field_validator("name")
    @classmethod
    def _known(cls, v: str) -> str:
        if v != "clean":
            from advshield.attacks import ATTACKS

            ATTACKS.entry(v)
        return v


class LossWeights(BaseModel):
    """MSE (CRU-Net Eq. 10) plus optional L1, (1 - SSIM) and classifier-guided terms.

    ``ce``: cross-entropy of the attacked classifier on the restored image (DKN Eq. 7);
    ``logit``: L1 between its logits on the restored and on the clean image (HGD's
    logit-guided denoiser, Liao et al. 2018). Both look through the frozen target.
    ``perceptual``: feature MSE through a frozen feature network (DKN Eq. 5).
    """

    model_config = ConfigDict(extra="forbid")

    mse: float = Field(1.0, ge=0)
    l1: float = Field(0.0, ge=0)
    ssim: float = Field(0.0, ge=0)
    perceptual: float = Field(0.0, ge=0)
    ce: float = Field(0.0, ge=0)
    logit: float = Field(0.0, ge=0)

    @model_validator(mode="after")
    def _some(self) -> "LossWeights":
        if self.mse + self.l1 + self.ssim + self.perceptual + self.ce + self.logit <= 0:
            raise ValueError("at least one loss weight must be positive")
        return self

    @property
    def guided(self) -> bool:
        return bool(self.ce or self.logit)


class DefenseTrainConfig(RunFields):
    """Everything that defines a defense-training run; stored on its card."""

    model_config = ConfigDict(extra="forbid")

    defense: str = "cru-net"
    defense_params: dict = Field(default_factory=dict)
    init: str | None = None  # zoo name or checkpoint of a trained restorer to start from (fine-tuning)
    target: str = "a-net"  # zoo name or checkpoint path: the classifier whose attacks make the pairs
    dataset: str | None = None  # default: the target card's dataset
    attacks: list[AttackMix] = Field(default_factory=lambda: [AttackMix(name="fgsm")], min_length=1)
    substitute: str | None = None  # zoo name or checkpoint the transfer sources are crafted on
    n_train: int = Field(10000, ge=1)  # training images turned into pairs
    n_val: int = Field(1000, ge=0)  # held-out training images for validation pairs
    epochs: int = Field(10, ge=1)
    batch_size: int = Field(128, ge=1)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    schedule: Literal["constant", "cosine"] = "constant"
    grad_clip: float | None = Field(None, gt=0)  # max global gradient norm (stabilises deep restorers)
    loss: LossWeights = Field(default_factory=LossWeights)
    perceptual_net: str | None = None  # zoo name or checkpoint of the feature network (loss.perceptual)
    perceptual_layers: list[str] = Field(default_factory=list)  # its stages; default: the last two before logits
    attack_batch_size: int = Field(250, ge=1)

    _known_defense = field_validator("defense")(classmethod(lambda cls, v: check_restorer(v)))

    @model_validator(mode="after")
    def _sources(self) -> "DefenseTrainConfig":
        keys = [m.key for m in self.attacks]
        if len(set(keys)) != len(keys):
            raise ValueError(f"attack sources must have distinct names; give repeated attacks a label: {keys}")
        needs = [m.key for m in self.attacks if m.threat.transfers]
        if needs and not self.substitute:
            raise ValueError(f"sources {needs} are crafted on a substitute: set substitute")
        return self

    @model_validator(mode="after")
    def _perceptual(self) -> "DefenseTrainConfig":
        if self.loss.perceptual and not self.perceptual_net:
            raise ValueError("loss.perceptual needs perceptual_net (a zoo classifier or checkpoint)")
        return self

    def recipe(self) -> dict:
        return self.model_dump(mode="json", exclude={"device", "data_root", "attack_batch_size"})


def find_restorer(recipe: dict) -> "ZooEntry | None":
    """The zoo restorer trained with exactly ``recipe`` (a defense card's ``recipe``), if one is shipped.

    Card recipes are read through the current config model, so options added later with a neutral
    default (a new loss weight of 0, say) do not hide an otherwise identical restorer.
    """
    from pydantic import ValidationError

    from advshield.zoo import list_checkpoints

    for e in list_checkpoints():
        if e.card.get("kind") != "defense":
            continue
        try:
            if DefenseTrainConfig.model_validate(e.card.get("recipe", {})).recipe() == recipe:
                return e
        except ValidationError:
            continue
    return None
