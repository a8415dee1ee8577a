"""The sample-size check of an evaluation (issue 25): an adaptive robust accuracy on fewer than 500 test images has
an interval too wide to tell defenses apart (20 images: a 95 % Wilson interval of 0-16 points around 0 %), so it is a
red flag unless whoever ran it says why (a preset's fast variant, a dataset with fewer test images)."""

from __future__ import annotations

#: The fewest test images an adaptive number rests on without a stated reason (MNIST, CIFAR-10 and the rest alike).
MIN_ADAPTIVE = 500


def sample_size_flags(verdict: dict, reason: str | None = None, undefended: bool = False) -> list[dict]:
    """A ``sample-size`` red flag when the verdict's adaptive worst case (for an ``undefended`` model, where the
    white-box attack is the adaptive one, the oblivious worst case) rests on fewer than :data:`MIN_ADAPTIVE` images
    and no ``reason`` is given; ``[]`` otherwise (also when no worst case was taken)."""
    block = verdict.get("adaptive_worst_case") or (verdict.get("oblivious_worst_case") if undefended else None)
    if not block or block["n"] >= MIN_ADAPTIVE or (reason or "").strip():
        return []
    lo, hi = block["ci95"]
    return [{"check": "sample-size", "detail": (
        f"the adaptive worst case {100 * block['accuracy']:.1f} % rests on {block['n']} images: its 95 % interval "
        f"{100 * lo:.1f} - {100 * hi:.1f} % is {100 * (hi - lo):.1f} points wide; the field's standard is at least "
        f"{MIN_ADAPTIVE} test images (say why not where fewer are all there is)")}]


__all__ = ["MIN_ADAPTIVE", "sample_size_flags"]
