"""How many test images an adaptive number needs (issue 25): at least 500 on MNIST and CIFAR-10 in a preset's
full variant, unless the preset says why not; the reason is printed in the report beside the count."""

from __future__ import annotations

from advshield.data.core import DatasetName

MIN_ADAPTIVE = 500
STRICT_DATASETS = (DatasetName.MNIST.value, DatasetName.CIFAR10.value)


def check_adaptive_sample(dataset: str, counts: dict[str, int], reason: str | None) -> None:
    """Raise ``ValueError`` naming the budget fields below :data:`MIN_ADAPTIVE` when no ``reason`` is given."""
    small = {k: n for k, n in counts.items() if 0 < n < MIN_ADAPTIVE}
    if dataset in STRICT_DATASETS and small and not (reason or "").strip():
        fields = ", ".join(f"full.{k} = {n}" for k, n in small.items())
        raise ValueError(f"{fields}: adaptive numbers on {dataset} use at least {MIN_ADAPTIVE} test images; "
                         "raise it or say why not in full.n_adaptive_reason")


def adaptive_reason_text(budget: dict) -> str:
    """``"; fewer than 500 adaptive images because ..."`` for a report line, or ``""``."""
    reason = budget.get("n_adaptive_reason")
    return f"; fewer than {MIN_ADAPTIVE} adaptive images because {reason}" if reason else ""


__all__ = ["MIN_ADAPTIVE", "adaptive_reason_text", "check_adaptive_sample"]
