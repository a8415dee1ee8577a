"""The README's headline table is the one scripts/headline_table.py generates from the committed reports, and the
generator flags label leaking and says when a report predates the per-image worst case."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location("headline_table", ROOT / "scripts" / "headline_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_table_is_the_generated_one():
    assert _script().main(["--check"]) == 0, "run: python scripts/headline_table.py --write"


def test_cells_flag_leaking_and_name_what_they_are():
    h = _script()
    row = {"attack": "pgd", "threat": "white-box", "n": 1000, "clean_accuracy": 0.805, "restored_accuracy": 0.806}
    assert not h.leaking(row)  # one image above clean is sampling noise
    assert h.leaking(dict(row, restored_accuracy=0.807))
    adaptive = [{"attack": a, "threat": "adaptive", "n": 200, "restored_accuracy": v, "params": p}
                for a, v, p in (("fgsm", 0.5, {"eps": 0.3}), ("pgd", 0.03, {"eps": 0.3}), ("cw", 0.0, {"eps": None}))]
    old = h.adaptive_cell({"rows": adaptive})  # the unbounded CW's 0 % is no robust accuracy at a budget
    assert old == "3.0 % [1.4 %, 6.4 %] (200; lowest single: pgd of fgsm, pgd) †"
    mixed = {"accuracy": 0.0, "ci95": [0.0, 0.019], "n": 200, "attacks": ["fgsm", "pgd", "cw"]}
    assert h.adaptive_cell({"rows": adaptive, "verdict": {"adaptive_worst_case": mixed}}) == old
    new = h.adaptive_cell({"rows": adaptive, "verdict": {"adaptive_worst_case": {
        "accuracy": 0.015, "ci95": [0.005, 0.043], "n": 200, "attacks": ["fgsm", "pgd"],
        "budget": {"norm": "linf", "eps": 0.3}}}})
    assert new == "1.5 % [0.5 %, 4.3 %] (200; L-inf 0.3: fgsm, pgd)"
    ev = {"oblivious": {"red_flags": [{"check": "label-leaking"}]}, "adaptive": {"health": {}, "red_flags": []},
          "baselines": {"jpeg": {"oblivious": {"red_flags": [{"check": "x"}]}, "adaptive": None}}}
    assert h.flags_cell(ev) == "**1** (see the report); 1 more on the baselines beside it"
    assert h.flags_cell({**ev, "adaptive": {"red_flags": []}}) == (
        "**1** (see the report); 1 more on the baselines beside it, health checks not run †")
    assert h.flags_cell({**ev, "oblivious": {}}) == "none fired; 1 more on the baselines beside it"
    assert h.flags_cell({"oblivious": {}, "adaptive": {"red_flags": []}}) == "not run †"
    assert h.adaptive_cell({"rows": adaptive[2:]}) == "no bounded adaptive attack (unbounded ones have no threat budget)"
