"""The kill loop, small: a few SIGKILLs of `advshield data info` and `advshield attack` at random moments.

The CI-sized run is ``python scripts/kill_loop.py --kills 20`` (about 2-3 minutes on 2 cores).
"""

import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "kill_loop.py"


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork mode needs a POSIX system")
def test_runs_after_kills_match_the_uninterrupted_run(capsys):
    spec = importlib.util.spec_from_file_location("kill_loop", SCRIPT)
    kill_loop = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(kill_loop)
    sys.stdout.flush()
    assert kill_loop.main(["--kills", "3", "--seed", "1", "--images", "400"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    reports = [json.loads(line) for line in lines[:-1]]
    assert [r["job"] for r in reports] == ["data", "attack"] and all(r["kills"] == 3 for r in reports)
    assert lines[-1].startswith("OK")
