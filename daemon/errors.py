"""Every error the daemon package raises for a user, in one place (all :class:`KeepwarmError`).

The CLI turns them into one line with the fix (``daemon/commands/base.py``); nothing else translates them.
"""

from __future__ import annotations

from pathlib import Path

from keepwarm.connectors.base import AuthRequired
from keepwarm.core.errors import EXIT_USER, KeepwarmError

__all__ = [
    "AlreadyRunning",
    "ConfigError",
    "KeepwarmError",
    "OutFileError",
    "SecretError",
    "StartupError",
    "StoreError",
    "UndoError",
    "UserError",
]


class UserError(KeepwarmError):
    """A problem with what the user asked for (an argument, an account name); exit status 2."""

    exit_code = EXIT_USER


class ConfigError(KeepwarmError):
    """The config cannot be used. ``problems`` lists every problem found, each one line."""

    exit_code = EXIT_USER

    def __init__(self, path: Path | None, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        where = f" in {path}" if path else ""
        lines = "\n".join(f"  - {p}" for p in problems)
        n = f"{len(problems)} problem{'' if len(problems) == 1 else 's'}"
        super().__init__(f"{n}{where}:\n{lines}")


class StoreError(KeepwarmError):
    """A problem with the database file that the user must fix (permissions, disk full, corrupt).

    ``kind``: "damaged" or "read_only" (nothing works until the user acts), "full" (free disk
    space, or a disk error), "other".
    """

    exit_code = EXIT_USER

    def __init__(self, message: str, kind: str = "other") -> None:
        super().__init__(message)
        self.kind = kind

    @property
    def fatal(self) -> bool:
        """Nothing can work until the user acts (a daemon should stop rather than retry)."""
        return self.kind in ("damaged", "read_only")


class SecretError(AuthRequired):
    """The password could not be read; ``str()`` says why and ``fix`` what to do."""


class StartupError(KeepwarmError):
    """The daemon cannot start; the message says why and how to fix it."""

    exit_code = EXIT_USER


class AlreadyRunning(KeepwarmError):
    """Another keepwarm holds the state directory's lock."""

    exit_code = EXIT_USER

    def __init__(self, path: Path, pid: int | None) -> None:
        self.path = path
        self.pid = pid
        who = f"pid {pid}" if pid else "another process"
        super().__init__(
            f"keepwarm is already running ({who}, lock {path}); stop it first "
            "(systemctl stop keepwarm, or kill that pid) or use a different state directory"
        )


class UndoError(KeepwarmError):
    """The decision cannot be undone; the message says why."""

    exit_code = EXIT_USER


class OutFileError(KeepwarmError):
    """``--out`` could not be written; the message says why."""

    exit_code = EXIT_USER
