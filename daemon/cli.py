"""The ``keepwarm`` command: the only code that talks to people (prints, prompts, exit codes).

The group and what its commands share are in ``daemon/commands/base.py``; each module of
``daemon/commands/`` adds its commands to it, and is imported here (the commands import nothing
of this module). ``main`` is the entry point: it turns every error into one line."""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from keepwarm.daemon import config as cfgmod
from keepwarm.daemon.commands import (  # noqa: F401  (each module adds its commands to the group)
    decide,
    demo,
    digest,
    google,
    local,
    manual,
    microsoft,
    people,
    service,
    setup,
    status,
)
from keepwarm.daemon.commands.base import EXIT_FAIL as EXIT_FAIL
from keepwarm.daemon.commands.base import EXIT_USER as EXIT_USER
from keepwarm.daemon.commands.base import Ctx as Ctx
from keepwarm.daemon.commands.base import UserError as UserError
from keepwarm.daemon.commands.base import cli as cli
from keepwarm.daemon.commands.base import parse_as_of as parse_as_of


def main(args: list[str] | None = None) -> None:
    """Console-script entry point: every error is one line with its fix, never a traceback.

    Ctrl-C exits 130 (everything committed so far is kept); a bug prints one line and the file
    its traceback was written to (``KEEPWARM_DEBUG=1`` shows it instead).
    """
    try:
        code = cli.main(args=args, prog_name="keepwarm", standalone_mode=False)
    except click.exceptions.Abort as exc:
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, EOFError):
            click.echo(
                "keepwarm: no answer to the question (input ended); pass the values as flags",
                err=True,
            )
            sys.exit(EXIT_USER)
        _interrupted()
    except KeyboardInterrupt:
        _interrupted()
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except Exception as exc:
        if os.environ.get("KEEPWARM_DEBUG"):
            raise
        where = write_traceback(exc)
        saved = (
            f"its traceback is in {where}" if where else "KEEPWARM_DEBUG=1 shows where it happened"
        )
        click.echo(
            f"keepwarm: unexpected error: {type(exc).__name__}: {exc}. This is a bug; "
            f"{saved}; please report it.",
            err=True,
        )
        sys.exit(EXIT_FAIL)
    sys.exit(code if isinstance(code, int) else 0)


def write_traceback(exc: BaseException) -> Path | None:
    """The traceback of an unexpected error, written (0600) to ``STATE_DIR/last-error.txt``
    (``$TMPDIR`` when the state directory cannot be written); None when nowhere can be."""
    import tempfile
    import traceback

    text = "".join(traceback.format_exception(exc))
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    for folder in (cfgmod.default_state_dir(), Path(tempfile.gettempdir())):
        path = folder / "keepwarm-last-error.txt"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(f"keepwarm {' '.join(sys.argv[1:])} at {stamp}\n{text}")
            return path
        except OSError:
            continue
    return None


def _interrupted() -> None:
    click.echo("\ninterrupted; everything committed so far is kept", err=True)
    sys.exit(130)
