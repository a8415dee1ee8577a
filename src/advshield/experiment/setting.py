"""One attack setting: a registered attack, its parameters, a threat model, a label and an image cap.

Every experiment (evaluation rows, detection attacks, propagation sets, training pairs, reproduction
presets) describes what it attacks with this one type; YAML configs and CLI options convert to it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from advshield.attacks import ATTACKS, Attack, create_attack
from advshield.errors import InputError
from advshield.experiment.threat import Threat


@dataclass(frozen=True)
class AttackSetting:
    """``attack`` with ``params`` under ``threat`` on the first ``n`` images (all when None).

    ``label`` names the setting where one attack appears several times (``cw-9`` and ``cw-29`` are both
    ``cw``); it defaults to the attack's name. A ``threat`` given as a string is parsed by
    :meth:`Threat.parse`.
    """

    attack: str
    params: dict[str, Any] = field(default_factory=dict)
    threat: Threat = Threat()
    n: int | None = None
    label: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.threat, Threat):
            object.__setattr__(self, "threat", Threat.parse(self.threat))
        ATTACKS.entry(self.attack)  # an unknown name fails here, naming the registered ones
        self.create()  # and so do unknown, non-finite or out-of-range parameters, before any work starts
        if self.n is not None and (not isinstance(self.n, int) or self.n < 1):
            raise InputError(f"setting {self.name}: n must be a positive integer or None, got {self.n!r}")

    @property
    def name(self) -> str:
        return self.label or self.attack

    @property
    def qualified_name(self) -> str:
        """``'<threat> <name>'``, e.g. ``'adaptive pgd'``: how a card keys the setting's health checks and names
        it in red flags."""
        return f"{self.threat} {self.name}"

    def create(self) -> Attack:
        return create_attack(self.attack, **self.params)


#: The ensemble every evaluation path adds by default (Croce & Hein 2020's AutoAttack; version 'auto': the
#: standard version, or through a randomised defense the rand version the reference advises, then the standard
#: members it lacks, all with EOT over 20 draws).
ENSEMBLE = "autoattack"


def ensemble_setting(settings: list[AttackSetting], threat: Threat | str) -> AttackSetting | None:
    """AutoAttack (version 'auto': standard; rand then standard with EOT through a randomised defense) under
    ``threat`` at the budget of the first setting with an L-inf or L2 eps (its parameters or the attack's
    default), so that the verdict's worst case meets the field's standard ensemble at the budget the user chose;
    None where no setting has such a budget (DeepFool, CW, spatial only) or an ensemble is already among
    ``settings`` under that threat."""
    threat = threat if isinstance(threat, Threat) else Threat.parse(threat)
    if any(s.attack == ENSEMBLE and s.threat == threat for s in settings):
        return None
    for s in settings:
        attack = s.create()
        norm = getattr(attack.norm, "value", attack.norm)
        eps = attack.params().get("eps")
        if norm in ("linf", "l2") and isinstance(eps, (int, float)):
            return AttackSetting(ENSEMBLE, {"eps": float(eps), "norm": norm, "version": "auto"}, threat, s.n)
    return None


def add_ensemble(settings: list[AttackSetting], threat: Threat | str, switch: str) -> str | None:
    """Append :func:`ensemble_setting` to ``settings`` (in place) where there is one; returns the card's note
    naming it and ``switch`` (the option that leaves it out), or None."""
    extra = ensemble_setting(settings, threat)
    if extra is None:
        return None
    settings.append(extra)
    return (f"the AutoAttack ensemble (standard; through a randomised defense rand, then standard's other members, "
            f"with EOT over 20 draws) was added under "
            f"{extra.threat} at {extra.params['norm']} eps {extra.params['eps']:g} ({switch} leaves it out)")


__all__ = ["AttackSetting", "ENSEMBLE", "add_ensemble", "ensemble_setting"]
