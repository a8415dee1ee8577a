"""Detection reproduction presets (``kind: detection``): CMAG Tables 3-7 and Figs. 3-8, validated with pydantic."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from advshield.data.core import DatasetName
from advshield.experiment import AttackSetting
from advshield.reproduce.names import check_name
from advshield.reproduce.sample_size import check_adaptive_sample

_STRICT = ConfigDict(extra="forbid")
DETECTOR_LABELS = {"magnet-error": "MagNet", "magnet-divergence": "MagNet (divergence)", "defense-gan": "Defense-GAN",
                   "cmag-ssim": "CMAG (SSIM)", "cmag-l2": "CMAG (L2)"}


class DetectionAttack(BaseModel):
    """One column of the paper's tables: a registered attack at one intensity."""

    model_config = _STRICT

    attack: str
    params: dict = Field(default_factory=dict)
    label: str | None = None  # the paper's column name, e.g. "lambda 0.1"


class GradientBudget(BaseModel):
    """CMAG Figs. 7-8 (Sec. 5 (4)): two autoencoders trained alike but for the loss (SSIM, l2), FGSM gradients."""

    model_config = _STRICT

    n_train: int = Field(ge=1)  # clean training images each autoencoder learns from (the first ones)
    epochs: int = Field(ge=1)
    n_test: int = Field(ge=1)  # test images the foreground shares are averaged over
    n_figure: int = Field(8, ge=1)  # columns of each figure
    threshold: float = Field(0.1, ge=0, lt=1)  # the digit = legitimate pixels above this value
    radius: int = Field(2, ge=0)  # and the digit grown by this many pixels (the second share)
    batch_size: int = Field(32, ge=1)  # magnet-error trains with 128; 32 converges in a few epochs on CPU
    lr: float = Field(3e-3, gt=0)  # Adam, as magnet-error's autoencoder


class DetectionBudget(BaseModel):
    model_config = _STRICT

    n_train: int = Field(ge=1)  # clean training images the generative models learn from
    n_calibration: int = Field(ge=1)  # held-out clean training images for the FPR threshold
    epochs: int = Field(ge=1)  # CMAG epochs (and MagNet's unless magnet_epochs)
    magnet_epochs: int | None = Field(None, ge=1)  # MagNet's autoencoder is cheap and needs more passes
    gan_epochs: int = Field(1, ge=1)  # Defense-GAN: passes of 64-image generator batches over n_train
    gan_steps: int = Field(200, ge=1)  # Defense-GAN latent search: L
    gan_restarts: int = Field(10, ge=1)  # and R
    gan_search_lr: float = Field(10.0, gt=0)
    gan_lr: float = Field(1e-4, gt=0)
    max_rule_n: int = Field(0, ge=0)  # training images for the papers' max-rule threshold of Defense-GAN (0: all)
    n_test: int = Field(ge=1)
    n_adaptive: int = Field(0, ge=0)  # test images for the detector-aware joint attack
    adaptive_eps: float = Field(0.3, gt=0, le=1)  # L-inf budget of the joint attack (the strongest FGSM's)
    adaptive_steps: int = Field(100, ge=1)
    n_adaptive_gan: int = Field(0, ge=0)  # Defense-GAN's joint attack runs a latent search per step: fewer images
    n_adaptive_reason: str | None = None  # why fewer than 500 adaptive images (required then on MNIST/CIFAR-10, full)
    # images of the joint attack's self-checks (convergence, Square, unbounded, noise, gradients), CMAG and MagNet;
    # not Defense-GAN, whose every attack step runs the latent search (the checks alone would be hours of CPU)
    checks: int = Field(0, ge=0)
    ablation: bool = False  # also train CMAG with the weighted-average merge (Fig. 4)
    attack_params: dict[str, dict] = Field(default_factory=dict)  # per column label, merged over its params
    gradients: GradientBudget | None = None  # CMAG Figs. 7-8; None: not drawn


class PaperDetection(BaseModel):
    """Numbers printed in the paper (values per column label)."""

    model_config = _STRICT

    table: str
    detection: dict[str, dict[str, float]] = Field(default_factory=dict)  # detector -> label -> rate
    ssim_table: str = ""
    ssim: dict[str, float] = Field(default_factory=dict)  # label -> mean SSIM; "threshold"
    l2_table: str = ""
    l2: dict[str, float] = Field(default_factory=dict)  # label -> mean L2; "legitimate"


class DetectionPreset(BaseModel):
    model_config = _STRICT

    kind: Literal["detection"]
    name: str
    _name = field_validator("name")(classmethod(lambda cls, v: check_name(v)))
    title: str
    paper: str
    dataset: DatasetName
    target: str  # a zoo classifier for ``dataset``
    fpr: float = Field(0.05, gt=0, lt=1)
    detectors: list[str] = Field(min_length=1)
    attacks: dict[str, DetectionAttack] = Field(min_length=1)
    figure_attacks: list[str] = Field(default_factory=list)  # columns shown in the reconstruction grids
    full: DetectionBudget
    fast: DetectionBudget
    paper_results: PaperDetection | None = None
    notes: list[str] = Field(default_factory=list)

    @field_validator("detectors")
    @classmethod
    def _detectors(cls, v: list[str]) -> list[str]:
        from advshield.detectors import DETECTORS, make_detector  # noqa: F401  (make_detector: registrations)

        bad = [d for d in v if d not in DETECTORS]
        if bad:
            raise ValueError(f"unknown detector(s) {bad}; choose among {', '.join(DETECTORS.names())}")
        return v

    @field_validator("attacks")
    @classmethod
    def _attacks(cls, v: dict[str, DetectionAttack]) -> dict[str, DetectionAttack]:
        from advshield.attacks import create_attack
        from advshield.errors import AdvShieldError

        for label, a in v.items():
            try:
                create_attack(a.attack, **a.params)
            except (AdvShieldError, TypeError) as exc:
                raise ValueError(f"attack {label}: {exc}") from None
        return v

    @model_validator(mode="after")
    def _consistent(self) -> "DetectionPreset":
        for what, labels in (("figure_attacks", self.figure_attacks),
                             ("full.attack_params", self.full.attack_params),
                             ("fast.attack_params", self.fast.attack_params)):
            unknown = set(labels) - set(self.attacks)
            if unknown:
                raise ValueError(f"{what}: {sorted(unknown)} are not columns of attacks")
        check_adaptive_sample(self.dataset.value, {"n_adaptive": self.full.n_adaptive,
                                                   "n_adaptive_gan": self.full.n_adaptive_gan},
                              self.full.n_adaptive_reason)
        return self

    def settings(self, budget: DetectionBudget) -> list[AttackSetting]:
        """One white-box setting per column, labelled by its key, with the budget's parameters merged."""
        return [AttackSetting(a.attack, {**a.params, **budget.attack_params.get(k, {})}, label=k)
                for k, a in self.attacks.items()]
