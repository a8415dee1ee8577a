"""What a scorecard measures with: the attack ensemble, its budget, the images, the detectors' fitting budget.

Every row runs the same three settings of one attack (the AutoAttack ensemble by default): ``white-box`` on the
classifier alone (the oblivious attacker), ``transfer`` from the substitute, and ``adaptive`` through the
defense (BPDA and EOT where the defense needs them; the detector-aware objective against a detector).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

from advshield.attacks import ATTACKS
from advshield.attacks.pipeline import ThreatModel
from advshield.errors import InputError
from advshield.experiment import AttackSetting, Threat

# Part of every row's hash: bump when a row's content changes (meaning or columns), so every stored row is
# measured again (its file name carries the hash). 2: the recovery columns (rows of format 1 lack them);
# 3: the worst case and worst-case recovery take the self-checks' runs; 4: APGD (AutoAttack's members too) starts
# its first restart at the clean image against a detector; 5: the sample-size flag and the adaptive-vs-oblivious
# check of the worst case join the red flags.
FORMAT = 5


@dataclass(frozen=True)
class ScorecardConfig:
    """``attack`` with ``params`` (eps and, for ``autoattack``, ``version`` added) on the first ``n`` test images."""

    dataset: str
    n: int = 1000
    eps: float | None = None  # None: the dataset's default (0.3 MNIST, 8/255 CIFAR-10)
    attack: str = "autoattack"
    version: str = "auto"  # standard; rand then standard, with EOT over 20 draws, through a randomised defense
    params: dict = field(default_factory=dict)
    target: str | None = None  # None: the dataset's standard classifier
    substitute: str | None = None  # None: the dataset's default substitute
    checks: int = 100  # images the convergence and gradient-masking checks run on (0: none)
    eot_samples: int = 8
    fpr: float = 0.05
    detector_train: int = 2000
    detector_calibration: int = 500
    detector_epochs: int = 3
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n < 1:
            raise InputError(f"n must be positive, got {self.n}")
        if not 0 < self.fpr < 1:
            raise InputError(f"fpr must lie in (0, 1), got {self.fpr}")
        if self.eps is not None and not 0 < self.eps <= 1:
            raise InputError(f"eps must lie in (0, 1], got {self.eps}")
        for name in ("detector_train", "detector_calibration", "detector_epochs", "eot_samples"):
            if getattr(self, name) < 1:
                raise InputError(f"{name.replace('_', '-')} must be positive, got {getattr(self, name)}")
        self.setting(ThreatModel.WHITE_BOX, "x")  # an unknown attack, version or parameter fails here

    def attack_params(self, eps: float) -> dict:
        accepted = ATTACKS.check_params
        params = dict(self.params)
        params["eps"] = eps
        if self.attack == "autoattack":
            params["version"] = self.version
        accepted(self.attack, params)
        return params

    def setting(self, kind: ThreatModel, substitute: str, eps: float | None = None) -> AttackSetting:
        """The row's setting of threat ``kind`` (``substitute`` crafts the transfer one)."""
        threat = Threat(kind, substitute if kind is ThreatModel.TRANSFER else None)
        return AttackSetting(self.attack, self.attack_params(eps if eps is not None else self.eps or 0.3), threat)

    def settings(self, substitute: str, eps: float, *, defended: bool) -> list[AttackSetting]:
        """Oblivious (white-box), transfer and, where there is a defense to attack through, adaptive."""
        kinds = [ThreatModel.WHITE_BOX, ThreatModel.TRANSFER] + ([ThreatModel.ADAPTIVE] if defended else [])
        return [self.setting(k, substitute, eps) for k in kinds]


def row_key(identity: dict) -> str:
    """The hash that names a row's result: everything that determines its numbers."""
    text = json.dumps({"format": FORMAT, **identity}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def config_identity(cfg: ScorecardConfig, eps: float, *, detector: bool) -> dict:
    """The configuration's part of a row's identity; the detectors' budget is part of detector rows' only."""
    out = asdict(cfg)
    out["eps"] = eps
    for k in ("target", "substitute"):  # named per row, by the weights' hashes
        out.pop(k)
    if not detector:
        for k in ("fpr", "detector_train", "detector_calibration", "detector_epochs"):
            out.pop(k)
    return out


__all__ = ["FORMAT", "ScorecardConfig", "config_identity", "row_key"]
