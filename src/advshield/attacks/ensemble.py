"""What an ensemble run records per sample (``info['broken_by']``) and the per-member robust accuracy read off it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from advshield.errors import InputError

if TYPE_CHECKING:
    from advshield.attacks.base import AttackResult

ROBUST, CLEAN_FOOLED = -1, -2  # broken_by codes: never broken / already misclassified (or flagged) when clean


def member_robust_accuracy(result: AttackResult) -> dict[str, float]:
    """Robust accuracy after each member of an ensemble run (cumulative: correct under it and all before).

    Keys: 'clean' then the member names in order; values are fractions of all images. Computed from
    ``info['broken_by']``, so they are judged as the attack judged success (the surface, or the
    transfer-feedback victim); the final one equals ``adv_accuracy`` whenever that judge is the victim.
    """
    if "broken_by" not in result.info:
        raise InputError("this result has no per-member record (info['broken_by']): not an ensemble run")
    b, names = result.info["broken_by"], result.info["members"]
    out = {"clean": float((b != CLEAN_FOOLED).float().mean())}
    for k, name in enumerate(names):
        out[name] = float(((b == ROBUST) | (b > k)).float().mean())
    return out
