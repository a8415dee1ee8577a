"""The self-checks' runs join the verdict: an attack the convergence check finds too short cannot leave the
worst case too high, with a defense (adaptive worst case) and without one (the white-box attack is the adaptive
one)."""

import pytest
import torch
from torch import nn

import advshield
from advshield.report.verdict import worst_case as headline_worst_case
from test_attacks_autoattack import one_thread, train_tiny  # noqa: F401  (one_thread: an autouse fixture)

N = 60
# One PGD step of 0.005 at eps 0.1: far from converged, so the checks' doubled run and Square break more.
WEAK = {"pgd": {"eps": 0.1, "steps": 1, "abs_stepsize": 0.005, "random_start": True}}


class Same(nn.Module):
    """The identity as a declared deterministic, differentiable defense."""

    differentiable, randomized = True, False

    def forward(self, x):
        return x


@pytest.fixture(scope="module")
def tiny():
    model, x, y = train_tiny()
    return model, x[:N], y[:N]


def _run(tiny, tmp_path, defense, checks, threats):
    model, x, y = tiny
    return advshield.evaluate(model, (x, y), defense, attacks=("pgd",), attack_params=WEAK, threats=threats,
                              ensemble=False, checks=checks, store=tmp_path / "store", seed=1).card


@pytest.mark.parametrize("defended", [True, False])
def test_a_weak_attack_is_lowered_by_its_checks_exactly_by_what_they_broke(tiny, tmp_path, defended):
    defense, threats = (Same().eval(), ("adaptive",)) if defended else (None, ("white-box",))
    key = "adaptive_worst_case" if defended else "oblivious_worst_case"
    without = _run(tiny, tmp_path, defense, 0, threats)["verdict"][key]
    card = _run(tiny, tmp_path, defense, N, threats)  # same store: the same rows, now with the checks
    with_checks = card["verdict"][key]
    checks = with_checks["self_checks"]
    assert checks["images"] == N and checks["broken"] > 0
    assert round(with_checks["accuracy"] * N) == round(without["accuracy"] * N) - checks["broken"]
    assert "self_checks" not in without
    health = next(iter(card["health"].values()))
    row = next(r for r in card["rows"] if r["attack"] == "pgd")
    assert health["base"] == "the row"  # the checks start from the row's stored run instead of running it again
    convergence = next(c for c in health["checks"] if c["name"] == "convergence")
    # the row's quoted accuracy exactly (a re-run would draw another random start: the row's sets are seeded per
    # shard, the checks with the run's seed)
    assert convergence["numbers"]["accuracy"] == pytest.approx(row["restored_accuracy"])
    failed = {f["check"] for f in card["red_flags"]}
    assert "health: convergence" in failed  # the reason the number moved is in the card
    shown = headline_worst_case(card)
    assert shown["accuracy"] == with_checks["accuracy"] and f"broke {checks['broken']} more" in shown["attack"]
    assert "1 steps x 1 restart(s), then 2 x 2, then Square" in shown["attack"]
