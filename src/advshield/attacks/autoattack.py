"""AutoAttack: the ensemble of parameter-free attacks, each member attacking only the points still robust."""

from __future__ import annotations

from typing import Any

import torch

from advshield.attacks.apgd import check_detector_start
from advshield.attacks.norms import norm_and_eps
from advshield.attacks.ensemble import CLEAN_FOOLED, ROBUST, member_robust_accuracy  # noqa: F401
from advshield.attacks.base import ATTACKS, Attack, check_output, register_attack, succeeded
from advshield.attacks.pipeline import Surface
from advshield.errors import InputError


# Members in the order they run (cheapest first), as (registered name, parameters besides eps and norm).
VERSIONS: dict[str, list[tuple[str, dict[str, Any]]]] = {
    # Croce & Hein 2020, Sec. 5: APGD-CE (no restarts), APGD-T (9 targets), FAB-T (9 targets), Square (5000 q.)
    "standard": [("apgd-ce", {"steps": 100}), ("apgd-t", {"steps": 100, "n_target_classes": 9}),
                 ("fab-t", {"steps": 100, "n_target_classes": 9}), ("square", {"n_queries": 5000})],
    # advshield's cheap subset: the two gradient members, APGD-T with 3 targets (about a third of the cost)
    "fast": [("apgd-ce", {"steps": 100}), ("apgd-t", {"steps": 100, "n_target_classes": 3})],
    # the reference's version for randomised defenses: APGD-CE and APGD-DLR, each with EOT over 20 draws
    "rand": [("apgd-ce", {"steps": 100}), ("apgd-dlr", {"steps": 100})],
}
# What 'auto' runs through a randomised defense: the reference's rand members (its advice for randomised
# defenses, Croce & Hein 2020, Sec. 5), then the standard members they lack (APGD-T, FAB-T, the gradient-free
# Square) on the points still robust, all with EOT over 20 draws: the worst case over both versions
RAND_THEN_STANDARD = "rand+standard"
VERSIONS[RAND_THEN_STANDARD] = VERSIONS["rand"] + [m for m in VERSIONS["standard"] if m not in VERSIONS["rand"]]
EOT_VERSIONS = ("rand", RAND_THEN_STANDARD)  # versions run with EOT over RAND_EOT_SAMPLES draws
RAND_EOT_SAMPLES = 20
AUTO = "auto"  # resolved per call from the surface: RAND_THEN_STANDARD through a randomised defense, else standard


@register_attack("autoattack", norm="linf", family="autoattack")
class AutoAttack(Attack):
    """AutoAttack: APGD-CE, APGD-T, FAB-T and Square in sequence, the per-sample worst case.

    Paper: Croce & Hein 2020, "Reliable evaluation of adversarial robustness with an ensemble of
    diverse parameter-free attacks" (Sec. 5). Each member attacks only the points that every
    earlier member left robust, so a point is robust only if it is correct (and, with a
    detector, unflagged) under every member; its image is the first member's that fooled.
    ``version``: 'standard' (APGD-CE 100 steps, APGD-T 9 targets x 100 steps, FAB-T 9 targets,
    Square 5000 queries), 'fast' (APGD-CE, then APGD-T with 3 targets: a lower bound on the
    standard's strength for about a third of its cost) or 'rand' (APGD-CE and APGD-DLR with EOT
    over 20 draws: on an adaptive surface of a randomised defense with fewer EOT samples, the
    surface is rebuilt with eot_samples = 20, which averages the logits of 20 draws in one batch;
    on a deterministic surface EOT is a no-op and 'rand' is APGD-CE + APGD-DLR), 'rand+standard' (rand's members,
    then APGD-T, FAB-T and Square, all with EOT over 20 draws) or 'auto' ('rand+standard' on a surface through a
    randomised defense, 'standard' otherwise; the ensemble every evaluation adds uses it).
    ``AttackResult.info`` gets ``version`` (the one run), ``members`` (their names) and ``broken_by``
    (per sample: the index of the member that broke it, -1 if none did, -2 if already fooled clean), judged like the
    members' early exits; :func:`member_robust_accuracy` turns them into per-member numbers.
    A member whose loss needs more classes than the model has (the DLR losses: 3, targeted 4) is skipped and
    named in ``info['skipped_members']`` (a binary classifier is attacked with APGD-CE, FAB-T and Square).
    Norm: ``norm`` = 'linf' or 'l2'. Defaults: eps = 8/255 (L-inf) or 0.5 (L2), version = 'standard',
    detector_start = 'clean' (the APGD members' first restart against a detector, see APGD).
    """

    name, randomized, supports_targeted = "autoattack", True, False
    detector_aware = reads_detector_switch = True  # its APGD members read the switch; FAB-T ignores the detector

    def __init__(self, eps: float | None = None, norm: str = "linf", version: str = "standard",
                 detector_start: str = "clean") -> None:
        self.norm, self.eps = norm_and_eps(self.name, norm, eps)
        if version not in VERSIONS and version != AUTO:
            raise InputError(f"version must be one of {', '.join([*VERSIONS, AUTO])}, got {version!r}")
        self.version, self.detector_start = version, check_detector_start(detector_start)

    def members(self, version: str | None = None) -> list[Attack]:
        """The members of ``version`` (default: this attack's; 'auto' without a surface reads as 'standard')."""
        version = version or self.version
        start = {"detector_start": self.detector_start}  # the APGD members' start against a detector
        return [ATTACKS.create(name, eps=self.eps, norm=self.norm.value, **kw,
                               **(start if name.startswith("apgd") else {}))
                for name, kw in VERSIONS["standard" if version == AUTO else version]]

    def resolved_version(self, surface) -> str:
        """The version run on ``surface``: 'auto' becomes 'rand+standard' through a randomised defense, else
        'standard'."""
        if self.version != AUTO:
            return self.version
        return RAND_THEN_STANDARD if _randomised(surface) else "standard"

    def _surface(self, surface, version: str):
        if version in EOT_VERSIONS and _randomised(surface) and surface.eot_samples < RAND_EOT_SAMPLES:
            return surface.variant(eot_samples=RAND_EOT_SAMPLES)
        return surface

    def perturb(self, surface, x, labels, target, generator):
        version = self.resolved_version(surface)
        surface = self._surface(surface, version)
        adv = x.clone()
        with torch.no_grad():
            robust = ~succeeded(surface, x, labels, None)
        # a member whose loss needs more classes than the model has (the DLR losses: 3, targeted 4) is skipped,
        # as the reference's checks warn; the card names it (a binary classifier gets APGD-CE, FAB-T, Square)
        members, skipped = self.members(version), []
        needs = [getattr(m, "min_classes", lambda: 2)() for m in members]
        if max(needs) > 2:
            with torch.no_grad():  # the classifier alone on one clean image: no defense, so no random draw
                classes = getattr(surface, "classifier", surface)(x[:1]).shape[1]
            skipped = [m for m, need in zip(members, needs) if need > classes]
            members = [m for m, need in zip(members, needs) if need <= classes]
        broken_by = torch.full((len(x),), ROBUST, dtype=torch.long, device=x.device)
        broken_by[~robust] = CLEAN_FOOLED
        for k, member in enumerate(members):
            todo = robust.nonzero().squeeze(1)
            if len(todo) == 0:
                break
            if hasattr(member, "max_rows"):  # a member may fill the ensemble's batch with parallel runs
                member.max_rows = len(x)
            out = member.perturb(surface, x[todo], labels[todo], None, generator).detach()
            check_output(member, out, x[todo])
            with torch.no_grad():
                hit = succeeded(surface, out, labels[todo], None)
            adv[todo[hit]], broken_by[todo[hit]], robust[todo[hit]] = out[hit], k, False
        self.report(version=version, members=[m.name for m in members], broken_by=broken_by,
                    **({"skipped_members": [m.name for m in skipped]} if skipped else {}))
        return adv


def _randomised(surface) -> bool:
    """``surface`` runs through a defense that says it is randomised (attacked with EOT)."""
    return (isinstance(surface, Surface) and surface.defense is not None
            and bool(getattr(surface.defense, "randomized", False)))
