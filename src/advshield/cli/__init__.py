"""The ``advshield`` command line (typer + rich): each command parses its options, builds a typed config
and makes one call into the experiment layer."""

from __future__ import annotations

import sys

from pydantic import ValidationError

from advshield.cli import analyze, attack, evaluate, info, reproduce, train  # noqa: F401  (registers commands)
from advshield.cli.common import app
from advshield.errors import AdvShieldError


def main() -> None:
    """Entry point: user errors become one line on stderr and exit status 2, never a traceback."""
    try:
        app()
    except AdvShieldError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'value'}: {e['msg']}" for e in exc.errors())
        print(f"error: invalid option(s): {problems}", file=sys.stderr)
        sys.exit(2)


__all__ = ["app", "main"]
