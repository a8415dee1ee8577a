"""Reproduction presets: YAML files validated with pydantic (unknown keys and bad values are named)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from advshield.data.core import DatasetName
from advshield.errors import AdvShieldError
from advshield.reproduce.names import check_name
from advshield.reproduce.sample_size import check_adaptive_sample
from advshield.experiment.setting import ENSEMBLE  # noqa: F401  (the registered name of the adaptive_ensemble)
from advshield.experiment.threat import Threat, ThreatModel
from advshield.training.defense_config import LossWeights, check_restorer

_STRICT = ConfigDict(extra="forbid")
EVALUATION_THREATS = (ThreatModel.WHITE_BOX, ThreatModel.TRANSFER, ThreatModel.ADAPTIVE)
Metric = Literal["clean_accuracy", "adv_accuracy", "restored_accuracy", "success_rate", "ssim_restored",
                 "psnr_paper_convention"]



class PresetAttack(BaseModel):
    model_config = _STRICT

    params: dict = Field(default_factory=dict)
    proportion: float = Field(1.0, gt=0)  # share of the training pairs
    on_the_fly: bool = False
    label: str | None = None  # the paper's name (FGSM, DFA, CWA...)
    max_test: int | None = Field(None, ge=1)  # cap on the test images for an expensive attack
    # Merged over params for the adaptive threat: an attack through a restorer needs more steps to converge.
    adaptive_params: dict = Field(default_factory=dict)
    # train_attacks only: the registered attack when the key is a label, so one attack can make pairs
    # at several budgets (e.g. fgsm-2: {attack: fgsm, params: {eps: 0.0078}}).
    attack: str | None = None

    def registered(self, key: str) -> str:
        return self.attack or key

    @property
    def display(self) -> str:
        return self.label or ""


class EnsembleAttack(BaseModel):
    """The preset's AutoAttack setting: parameters of the registered ``autoattack``, the report's label, a cap."""

    model_config = _STRICT

    params: dict = Field(default_factory=dict)
    label: str | None = None
    max_test: int | None = Field(None, ge=1)

    @property
    def adaptive_params(self) -> dict:
        """Always empty: the ensemble runs with ``params`` alone (attack entries may strengthen their adaptive run)."""
        return {}


class Budget(BaseModel):
    model_config = _STRICT

    n_train: int = Field(ge=1)  # training images turned into pairs (per restorer)
    n_val: int = Field(ge=0)
    epochs: int = Field(ge=1)
    n_test: int | None = Field(None, ge=1)  # None: the whole test split
    n_adaptive: int = Field(ge=0)  # test images for the adaptive attacks (expensive: they backpropagate the defense)
    n_checks: int = Field(100, ge=0)  # images the health checks of every adaptive setting run on (0: none)
    batch_size: int | None = Field(None, ge=1)  # overrides training.batch_size for this variant
    schedule: Literal["constant", "cosine"] | None = None  # overrides training.schedule for this variant
    defense_params: dict = Field(default_factory=dict)  # merged over the preset's defense_params
    zoo_restorer: bool = False  # fast variant: evaluate the zoo restorer of the full recipe when one is shipped
    lr: float | None = Field(None, gt=0)  # overrides training.lr for this variant
    grad_clip: float | None = Field(None, gt=0)  # overrides training.grad_clip for this variant
    ablation_n_train: int | None = Field(None, ge=1)  # the loss ablation's restorers (default: n_train)
    ablation_epochs: int | None = Field(None, ge=1)  # (default: epochs)
    adaptive_ensemble: bool = True  # run the preset's adaptive_ensemble in this variant
    n_adaptive_reason: str | None = None  # why fewer than 500 adaptive images (required then on MNIST/CIFAR-10, full)


class Baseline(BaseModel):
    """A registered preprocessing defense evaluated beside the restorer (DKN Tables 1-2)."""

    model_config = _STRICT

    defense: str
    params: dict = Field(default_factory=dict)
    label: str | None = None  # the paper's name, e.g. Featuresqueezing
    setting: str = "-"  # the paper's setting column, e.g. depth=1

    @property
    def name(self) -> str:
        return f"{self.label or self.defense} {self.setting}".strip(" -")

    @property
    def key(self) -> str:
        return self.defense + "".join(f"-{k}{v}" for k, v in sorted(self.params.items()))

    @field_validator("defense")
    @classmethod
    def _registered(cls, v: str) -> str:
        from advshield.defenses import DEFENSES, is_restorer

        if is_restorer(DEFENSES.entry(v).name):
            raise ValueError(f"{v} is a trainable restorer, not a preprocessing baseline")
        return v


class Training(BaseModel):
    model_config = _STRICT

    batch_size: int = Field(128, ge=1)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    schedule: Literal["constant", "cosine"] = "constant"
    grad_clip: float | None = Field(None, gt=0)
    loss: LossWeights = Field(default_factory=LossWeights)
    clean_proportion: float = Field(0.0, ge=0)  # identity pairs, so clean images pass unharmed
    perceptual_net: str | None = None  # for loss.perceptual: a zoo classifier or checkpoint
    perceptual_layers: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _perceptual(self) -> "Training":
        if self.loss.perceptual and not self.perceptual_net:
            raise ValueError("loss.perceptual needs perceptual_net (a zoo classifier or checkpoint)")
        return self


class Evaluation(BaseModel):
    """Evaluate ``target`` behind the restorer trained for ``defense_of`` under ``threats``.

    ``restorer`` (a zoo name or a checkpoint) replaces the run's restorer for ``defense_of`` by a shipped
    variant of it, e.g. a fine-tuned one beyond the paper; ``label`` names that variant in the report.
    """

    model_config = _STRICT

    target: str
    defense_of: str
    threats: list[str] = Field(min_length=1)
    restorer: str | None = None
    label: str | None = None

    @model_validator(mode="after")
    def _variant(self) -> "Evaluation":
        if self.label and not self.restorer:
            raise ValueError("label names a restorer variant: set restorer too")
        if self.restorer and not self.label:
            raise ValueError(f"restorer {self.restorer!r}: give the variant a label for the report")
        return self

    @property
    def restorer_key(self) -> str:
        """The run's name for this evaluation's restorer: the target it was trained for, plus the variant."""
        return f"{self.defense_of} ({self.label})" if self.restorer else self.defense_of

    @property
    def folder(self) -> str:
        name = self.target if self.defense_of == self.target else f"{self.target}--defense-of-{self.defense_of}"
        return name + (f"--{self.label.replace(' ', '-')}" if self.label else "")

    @field_validator("threats")
    @classmethod
    def _threats(cls, v: list[str]) -> list[str]:
        for t in v:
            threat = Threat.parse(t, allowed=EVALUATION_THREATS)
            if threat.transfers and not threat.substitute:
                raise ValueError(f"threat {t!r} names no substitute: use transfer:<substitute>")
        return v


class PaperTable(BaseModel):
    """Numbers printed in the paper, shown beside ours (values per attack)."""

    model_config = _STRICT

    table: str
    target: str
    threat: str
    metric: Metric
    values: dict[str, float]
    defense_of: str | None = None  # default: the target
    baseline: str | None = None  # a baseline's name (label + setting) instead of the restorer


class Preset(BaseModel):
    model_config = _STRICT

    kind: Literal["restoration"] = "restoration"
    name: str
    _name = field_validator("name")(classmethod(lambda cls, v: check_name(v)))
    title: str
    paper: str  # file under shared/papers
    dataset: DatasetName
    defense: str
    defense_params: dict = Field(default_factory=dict)
    train_for: list[str] = Field(min_length=1)  # targets that get their own restorer
    attacks: dict[str, PresetAttack] = Field(min_length=1)  # evaluated (and, unless train_attacks, trained on)
    train_attacks: dict[str, PresetAttack] = Field(default_factory=dict)  # the training pairs, when they differ
    baselines: list[Baseline] = Field(default_factory=list)
    adaptive_attacks: list[str] = Field(default_factory=list)
    # The AutoAttack ensemble (Croce & Hein 2020) as one more adaptive setting of the restorer's evaluations, so
    # the adaptive worst case includes the field's standard attacker (issue 25); never trained on, not run
    # obliviously on the whole test split, not run through the baselines. Params of the registered `autoattack`.
    adaptive_ensemble: EnsembleAttack | None = None
    training: Training = Field(default_factory=Training)
    evaluations: list[Evaluation] = Field(min_length=1)
    full: Budget
    fast: Budget
    paper_results: list[PaperTable] = Field(default_factory=list)
    # Loss ablation (DKN Fig. 2): variant label -> loss-weight overrides, e.g. {"without l1": {"l1": 0}};
    # each variant trains a restorer for train_for[0], evaluated beside the one with the whole loss.
    loss_ablation: dict[str, dict[str, float]] = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list)

    _defense = field_validator("defense")(classmethod(lambda cls, v: check_restorer(v)))

    @field_validator("attacks", "train_attacks")
    @classmethod
    def _attacks(cls, v: dict[str, PresetAttack]) -> dict[str, PresetAttack]:
        from advshield.attacks import create_attack

        for name, a in v.items():
            if name == "clean":  # identity pairs (train_attacks only)
                continue
            try:
                create_attack(a.registered(name), **a.params)
                create_attack(a.registered(name), **{**a.params, **a.adaptive_params})
            except (AdvShieldError, TypeError) as exc:
                raise ValueError(f"attack {name}: {exc}") from None
        return v

    @field_validator("adaptive_ensemble")
    @classmethod
    def _ensemble(cls, v: EnsembleAttack | None) -> EnsembleAttack | None:
        from advshield.attacks import create_attack

        if v is not None:
            try:
                create_attack(ENSEMBLE, **v.params)
            except (AdvShieldError, TypeError) as exc:
                raise ValueError(f"adaptive_ensemble: {exc}") from None
        return v

    def attack_spec(self, name: str) -> PresetAttack | EnsembleAttack:
        """An evaluated attack's entry: one of ``attacks`` or the adaptive ensemble."""
        return self.adaptive_ensemble if name == ENSEMBLE and self.adaptive_ensemble else self.attacks[name]

    def adaptive_names(self, budget: Budget | None = None) -> list[str]:
        """The adaptive settings' attacks: ``adaptive_attacks``, then the ensemble where the variant runs it."""
        ensemble = self.adaptive_ensemble is not None and (budget is None or budget.adaptive_ensemble)
        return list(self.adaptive_attacks) + ([ENSEMBLE] if ensemble else [])

    @model_validator(mode="after")
    def _consistent(self) -> "Preset":
        if "clean" in self.attacks:
            raise ValueError("'clean' makes identity training pairs: put it in train_attacks, not attacks")
        named = [k for k, a in self.attacks.items() if a.attack]
        if named:
            raise ValueError(f"attacks {named}: 'attack' (one attack under several labels) is for train_attacks only")
        if ENSEMBLE in self.attacks and self.adaptive_ensemble:
            raise ValueError(f"{ENSEMBLE!r} is both an attack and the adaptive_ensemble: keep one")
        unknown = set(self.adaptive_attacks) - set(self.attacks)
        if unknown:
            raise ValueError(f"adaptive_attacks {sorted(unknown)} are not in attacks")
        counts = {f"n_adaptive (max_test of {a})": min(self.full.n_adaptive, self.attack_spec(a).max_test)
                  for a in self.adaptive_names(self.full) if self.attack_spec(a).max_test}
        if self.adaptive_names(self.full):
            check_adaptive_sample(self.dataset.value, {"n_adaptive": self.full.n_adaptive, **counts},
                                  self.full.n_adaptive_reason)
        for e in self.evaluations:
            if e.defense_of not in self.train_for:
                raise ValueError(f"evaluation of {e.target}: defense_of {e.defense_of!r} is not in train_for")
        for label in self.loss_ablation:
            try:
                self.ablation_loss(label)
            except ValueError as exc:
                raise ValueError(f"loss_ablation {label!r}: {exc}") from None
        return self

    @property
    def trained_targets(self) -> list[str]:
        """The ``train_for`` targets whose restorer this run uses: an evaluation that names no zoo variant
        (``restorer``) or the loss ablation. A preset that only evaluates zoo variants trains nothing."""
        used = {e.defense_of for e in self.evaluations if not e.restorer}
        if self.loss_ablation:
            used.add(self.train_for[0])
        return [t for t in self.train_for if t in used]

    def ablation_loss(self, label: str) -> LossWeights:
        """The training loss with one ablation variant's overrides applied (validated)."""
        return LossWeights(**{**self.training.loss.model_dump(), **self.loss_ablation[label]})
