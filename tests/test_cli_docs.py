"""The command pages' option listings and the names page are generated from --help and the registries:
a stale page fails here (regenerate with python scripts/gen_cli_docs.py)."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_cli_pages_are_current():
    spec = importlib.util.spec_from_file_location("gen_cli_docs", ROOT / "scripts" / "gen_cli_docs.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    stale = [str(p.relative_to(ROOT)) for p, text in gen.pages().items() if not p.exists() or p.read_text() != text]
    assert not stale, f"regenerate with python scripts/gen_cli_docs.py: {stale}"
