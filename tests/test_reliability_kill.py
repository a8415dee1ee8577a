"""The kill loop, small: a few SIGKILLs of `advshield data info`, `advshield attack` and `advshield train-target`
at random moments.

The CI-sized run is ``python scripts/kill_loop.py --kills 20`` (a few minutes on 2 cores).
"""

import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "kill_loop.py"
needs_fork = pytest.mark.skipif(not hasattr(os, "fork"), reason="fork mode needs a POSIX system")


def _kill_loop():
    spec = importlib.util.spec_from_file_location("kill_loop", SCRIPT)
    kill_loop = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(kill_loop)
    sys.stdout.flush()
    return kill_loop


def _reports(capsys) -> list[dict]:
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1].startswith("OK")
    return [json.loads(line) for line in lines[:-1]]


@pytest.mark.slow
@needs_fork
def test_runs_after_kills_match_the_uninterrupted_run(capsys):
    assert _kill_loop().main(["--kills", "3", "--seed", "1", "--images", "400", "--jobs", "data,attack"]) == 0
    reports = _reports(capsys)
    assert [r["job"] for r in reports] == ["data", "attack"] and all(r["kills"] == 3 for r in reports)


@pytest.mark.slow
@needs_fork
def test_resumed_training_after_kills_matches_the_uninterrupted_run(capsys):
    """Same weights (every tensor of model.safetensors), same card; and no temporary left in the run folder."""
    assert _kill_loop().main(["--kills", "3", "--seed", "1", "--jobs", "train"]) == 0
    reports = _reports(capsys)
    assert [r["job"] for r in reports] == ["train"] and reports[0]["kills"] == 3
