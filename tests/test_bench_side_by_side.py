"""benchmarks/side_by_side.py: libraries can be chosen, a missing peer is left out (not a crash), and every
cell records the device and the libraries it timed."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import side_by_side as sbs  # noqa: E402

EPS = {"linf": 0.3, "l2": 1.5, "pgd_step": 0.01}


@pytest.mark.parametrize("attack", sbs.ATTACKS)
def test_runs_are_limited_to_the_chosen_libraries(attack):
    runs = sbs.runs_for(attack, EPS, ("advshield", "torchattacks"))
    assert {lib for lib, _ in runs} <= {"advshield", "torchattacks"}
    assert any(lib == "advshield" for lib, _ in runs)


def test_a_peer_that_is_not_installed_is_left_out(monkeypatch):
    monkeypatch.setattr(sbs, "installed", lambda lib: lib == "torchattacks")  # foolbox and ART "missing"
    runs = sbs.runs_for("PGD-40", EPS)
    assert {lib for lib, _ in runs} == {"advshield", "torchattacks"}
    info = sbs.host_info()
    assert info["foolbox"] == info["art"] == "not installed" and info["torchattacks"] != "not installed"


def test_a_cell_times_only_its_libraries_and_says_why_the_others_are_missing():
    ctx = sbs.RunContext.create("cpu")  # MNIST falls back to the embedded sample without a data root
    cell = sbs.measure_cell(ctx, "a-net", "FGSM", 8, 1, ("advshield", "torchattacks"))
    assert set(cell["runs"]) == {"advshield:both", "torchattacks:both"} and cell["device"] == "cpu"
    ours, theirs = cell["runs"]["advshield:both"], cell["runs"]["torchattacks:both"]
    assert ours["robust_accuracy"] == theirs["robust_accuracy"]  # FGSM is deterministic: the same images
    rows = "\n".join(sbs.render_cell(cell))
    assert "| FGSM | 8 | foolbox | - |" in rows and "not installed / not selected on this host" in rows



def test_a_stored_cell_is_redone_when_more_libraries_are_asked_for():
    cell = {"n": 8, "params": sbs.params_of("FGSM", {"linf": 0.3, "l2": 1.5, "pgd_step": 0.01}),
            "src_commit": sbs.src_state()["src_commit"], "libraries": ["advshield", "torchattacks"],
            "runs": {"advshield:both": {"seconds": [0.1]}, "torchattacks:both": {"seconds": [0.1]}}}
    assert sbs.up_to_date(cell, 8, "a-net", "FGSM", 1, ("advshield", "torchattacks"))
    assert not sbs.up_to_date(cell, 8, "a-net", "FGSM", 1, ("advshield", "torchattacks", "art"))
    assert not sbs.up_to_date(cell, 9, "a-net", "FGSM", 1, ("advshield",))


def test_a_copy_without_git_records_the_commit_it_was_sent_at(monkeypatch):
    """On a lent GPU machine the tree may come without .git: the cells record ADVSHIELD_COMMIT, else 'unknown',
    and the report still renders (it joins the commits)."""
    monkeypatch.setattr(sbs, "git", lambda *args: None)
    monkeypatch.setenv("ADVSHIELD_COMMIT", "abc1234")
    assert sbs.src_state() == {"commit": "abc1234", "src_commit": "abc1234", "src_dirty": None}
    monkeypatch.delenv("ADVSHIELD_COMMIT")
    state = sbs.src_state()
    assert state["src_commit"] == "unknown"
    assert sbs.commits({"invocations": [state]}) == ["unknown"]
