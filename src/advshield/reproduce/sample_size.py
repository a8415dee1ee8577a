"""How many test images an adaptive number needs (issue 25): at least 500 on MNIST and CIFAR-10 in a preset's
full variant, unless the preset says why not; the reason is printed in the report beside the count."""

from __future__ import annotations

from advshield.data.core import DatasetName
from advshield.evaluation.sample_size import MIN_ADAPTIVE

STRICT_DATASETS = (DatasetName.MNIST.value, DatasetName.CIFAR10.value)


def check_adaptive_sample(dataset: str, counts: dict[str, int], reason: str | None) -> None:
    """Raise ``ValueError`` naming the budget fields below :data:`MIN_ADAPTIVE` when no ``reason`` is given."""
    small = {k: n for k, n in counts.items() if 0 < n < MIN_ADAPTIVE}
    if dataset in STRICT_DATASETS and small and not (reason or "").strip():
        fields = ", ".join(f"full.{k} = {n}" for k, n in small.items())
        raise ValueError(f"{fields}: adaptive numbers on {dataset} use at least {MIN_ADAPTIVE} test images; "
                         "raise it or say why not in full.n_adaptive_reason")


def adaptive_reason(budget: dict, full_n_adaptive: int | None = None) -> str | None:
    """Why a variant's adaptive numbers rest on fewer than :data:`MIN_ADAPTIVE` images: the preset's
    ``n_adaptive_reason``, else, for a fast variant (``full_n_adaptive``: the full variant's count) below 500, that it
    is one; None otherwise (the evaluation then raises a ``sample-size`` red flag below 500)."""
    if budget.get("n_adaptive_reason"):
        return budget["n_adaptive_reason"]
    if full_n_adaptive is not None and 0 < (budget.get("n_adaptive") or 0) < MIN_ADAPTIVE:
        return (f"this is the preset's fast variant, a check that the pipeline runs end to end (`--full` attacks "
                f"{full_n_adaptive})")
    return None


def variant_reason(preset, full: bool) -> str | None:
    """:func:`adaptive_reason` of a preset's variant (``preset.full`` or ``preset.fast``), for its runner."""
    budget = preset.full if full else preset.fast
    return adaptive_reason(budget.model_dump(), None if full else preset.full.n_adaptive)


def fast_variant_count(summary: dict) -> int | None:
    """The full variant's adaptive image count when ``summary`` (a reproduction's, from ``run_header``) is a fast
    run, for :func:`adaptive_reason`; None for a full run."""
    return ((summary.get("preset") or {}).get("full") or {}).get("n_adaptive") if summary.get("variant") == "fast" \
        else None


def adaptive_reason_text(budget: dict, full_n_adaptive: int | None = None) -> str:
    """``"; fewer than 500 adaptive images because ..."`` for a report line (:func:`adaptive_reason`), or ``""``."""
    reason = adaptive_reason(budget, full_n_adaptive)
    return f"; fewer than {MIN_ADAPTIVE} adaptive images because {reason}" if reason else ""


__all__ = ["MIN_ADAPTIVE", "adaptive_reason", "adaptive_reason_text", "fast_variant_count",
           "variant_reason", "check_adaptive_sample"]
