"""The ``advshield`` command line (typer + rich): each command parses its options, builds a typed config
and makes one call into the experiment layer."""

from __future__ import annotations

import sys
import traceback

import typer
from pydantic import ValidationError

from advshield.cli import analyze, attack, evaluate, info, reproduce, scorecard, train  # noqa: F401  (registers commands)
from advshield.cli.common import app
from advshield.errors import AdvShieldError

# typer bundles its own click: its usage errors share this base (typer.BadParameter -> UsageError -> it)
ClickException = typer.BadParameter.__mro__[2]


def main() -> None:
    """Entry point: user errors become one line on stderr and exit status 2, never a traceback."""
    try:
        app(standalone_mode=False)
    except typer.Exit as exc:  # --help, typer.Exit
        sys.exit(exc.exit_code)
    except typer.Abort:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except ClickException as exc:  # bad option values, unknown options, missing arguments: one line
        ctx = getattr(exc, "ctx", None)
        if type(exc).__name__ == "NoArgsIsHelpError" and ctx is not None:  # `advshield` alone: its help
            print(ctx.get_help())
            sys.exit(0)
        hint = f" (see: {ctx.command_path} --help)" if ctx is not None else ""
        print(f"error: {exc.format_message()}{hint}", file=sys.stderr)
        sys.exit(2)
    except AdvShieldError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'value'}: {e['msg']}" for e in exc.errors())
        print(f"error: invalid option(s): {problems}", file=sys.stderr)
        sys.exit(2)
    except OSError as exc:  # the user's files: a folder that cannot be written, a file that vanished
        where = f" {exc.filename}" if getattr(exc, "filename", None) else ""
        print(f"error: cannot use{where}: {exc.strerror or exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted: finished shards, epochs and sets are kept; the same command resumes", file=sys.stderr)
        sys.exit(130)
    except Exception:  # noqa: BLE001 - anything else is a bug: say so, with the traceback to report
        traceback.print_exc()
        print("advshield: internal error (a bug, not a problem with your input): please report it with the "
              "traceback above and the command you ran", file=sys.stderr)
        sys.exit(1)


__all__ = ["app", "main"]
