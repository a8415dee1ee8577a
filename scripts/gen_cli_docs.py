"""Regenerate the command pages' option listings (docs/guide/<command>.md) and the names page
(docs/guide/names.md) from the CLI's --help and the registries; `--check` fails when a page is stale.

    python scripts/gen_cli_docs.py [--check]
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "guide"
PAGES = {"attack": ["attack"], "evaluate": ["evaluate"], "detect": ["detect"], "reproduce": ["reproduce"],
         "train-target": ["train-target"], "train-defense": ["train-defense"],
         "models": ["models", "list"], "data": ["data", "info"], "analyze": ["analyze", "propagation"],
         "scorecard": ["scorecard"]}
INTRO = "The options below are generated from `{cmd} --help` by `scripts/gen_cli_docs.py` (a test keeps them current)."


def help_text(args: list[str]) -> str:
    env = dict(os.environ, COLUMNS="110", NO_COLOR="1", TERM="dumb", _TYPER_FORCE_DISABLE_TERMINAL="1")
    out = subprocess.run([sys.executable, "-m", "advshield", *args, "--help"], capture_output=True, text=True,
                         env=env, check=True).stdout
    lines = [line.rstrip() for line in out.replace("python -m advshield", "advshield").splitlines()]
    while lines and not lines[0]:
        lines.pop(0)
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines)


def render_page(old: str, args: list[str]) -> str:
    """``old`` with its first ```text block (and the sentence before it) replaced by the current help."""
    cmd = "advshield " + " ".join(args)
    block = f"{INTRO.format(cmd=cmd)}\n\n```text\n{help_text(args)}\n```"
    pattern = re.compile(r"(The options below[^\n]*\n\n)?```text\n.*?\n```", re.S)
    return pattern.sub(lambda _: block, old, count=1) if pattern.search(old) else old.rstrip() + "\n\n" + block + "\n"


def names_page() -> str:
    from advshield.attacks import ATTACKS
    from advshield.defenses import DEFENSES
    from advshield.detectors import DETECTORS, make_detector  # noqa: F401  (registrations)
    from advshield.models import MODELS
    from advshield.reproduce import builtin_presets

    lines = ["# Registered names", "", "Generated from the registries by `scripts/gen_cli_docs.py`: every name the "
             "command line and the presets accept.", ""]
    for title, reg in (("Attacks", ATTACKS), ("Defenses", DEFENSES), ("Detectors", DETECTORS), ("Models", MODELS)):
        lines += [f"## {title}", "", "| name | what |", "|---|---|"]
        for name in reg.names():
            meta = reg.entry(name).meta
            what = meta.get("paper") or (reg.entry(name).factory.__doc__ or "").strip().splitlines()[0:1]
            what = what if isinstance(what, str) else (what[0] if what else "")
            extra = ", ".join(f"{k}: {v}" for k, v in meta.items() if k in ("kind", "dataset", "norm"))
            lines.append(f"| `{name}` | {what}{' (' + extra + ')' if extra else ''} |")
        lines.append("")
    lines += ["## Presets", "", "| name | kind |", "|---|---|"]
    from advshield.reproduce import load_preset

    lines += [f"| `{name}` | {load_preset(name).kind} |" for name in builtin_presets()] + [""]
    return "\n".join(lines)


def pages() -> dict[Path, str]:
    out = {GUIDE / f"{page}.md": render_page((GUIDE / f"{page}.md").read_text(), args) for page, args in PAGES.items()}
    out[GUIDE / "names.md"] = names_page()
    return out


def main(check: bool) -> int:
    stale = []
    for path, text in pages().items():
        if not path.exists() or path.read_text() != text:
            stale.append(path.relative_to(ROOT))
            if not check:
                path.write_text(text)
    if check and stale:
        print("stale (run python scripts/gen_cli_docs.py): " + ", ".join(map(str, stale)))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main("--check" in sys.argv))
