"""What the command modules share: the ``keepwarm`` group (and its ``auth`` subgroup), the
context every command gets, ``--as-of``, progress lines, and how a keepwarm error becomes one line.
Each module of ``daemon/commands/`` adds its commands to the group; ``daemon/cli.py`` imports
them all and is the entry point."""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, time
from typing import TYPE_CHECKING, Any, TypeVar
from zoneinfo import ZoneInfo

import click

from keepwarm.connectors.base import Batch, Progress
from keepwarm.core.errors import EXIT_FAIL as EXIT_FAIL
from keepwarm.core.errors import EXIT_USER as EXIT_USER
from keepwarm.core.errors import KeepwarmError
from keepwarm.daemon import config as cfgmod
from keepwarm.daemon.config import Config
from keepwarm.daemon.errors import UserError as UserError
from keepwarm.daemon.store import Store, database_problem

if TYPE_CHECKING:
    pass

F = TypeVar("F", bound=Callable[..., Any])


class Shown(click.ClickException):
    """A :class:`KeepwarmError` as the command line shows it: one line, then its fix."""

    def __init__(self, error: KeepwarmError) -> None:
        text = str(error)
        if error.fix and error.fix not in text:
            text += f"\n  fix: {error.fix}"
        super().__init__(text)
        setattr(self, "exit_code", error.exit_code)  # noqa: B010 (a class variable in click's types)


class KeepwarmGroup(click.Group):
    """The command group: every keepwarm error any command raises (config, store, sources,
    delivery, the user's input) ends the command here, in one line with its fix and exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KeepwarmError as exc:
            raise Shown(exc) from None


class Ctx:
    """Per-invocation state: where the config is, loaded lazily."""

    def __init__(self, config_path: str | None) -> None:
        self.config_path = config_path
        self._config: Config | None = None

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = cfgmod.load(self.config_path)
        return self._config

    @contextmanager
    def store(self) -> Iterator[Store]:
        """The open store; a damaged, read-only or full database ends the command in one line."""
        store = Store.open(self.config.store_path)
        store.forget_deleted = self.config.forget_deleted
        try:
            yield store
        except sqlite3.DatabaseError as exc:
            problem = database_problem(store.path, exc)
            if problem is None:
                raise
            raise UserError(str(problem)) from None
        finally:
            with suppress(sqlite3.Error):
                store.close()


pass_ctx = click.make_pass_decorator(Ctx)


def parse_as_of(value: str | None, zone: ZoneInfo) -> datetime | None:
    """``--as-of 2024-06-01`` means the end of that local day; a full ISO timestamp is taken as is."""
    if not value:
        return None
    try:
        if len(value) == 10:
            d = datetime.strptime(value, "%Y-%m-%d").date()
            return datetime.combine(d, time(23, 59, 59), zone).astimezone(UTC)
        dt = datetime.fromisoformat(value)
    except ValueError:
        raise UserError(
            f"--as-of: expected a date YYYY-MM-DD or an ISO timestamp, found {value!r}"
        ) from None
    return (dt.replace(tzinfo=zone) if dt.tzinfo is None else dt).astimezone(UTC)


def as_of_option(f: F) -> F:
    return click.option(
        "--as-of",
        "as_of",
        metavar="DATE",
        help="Run as if today were DATE (YYYY-MM-DD, end of that day in your zone): only history up to it is seen.",
    )(f)


def now_utc(as_of: datetime | None) -> datetime:
    return as_of or datetime.now(UTC)


def setup_logging(level: str = "warning") -> None:
    """Plain lines to stderr; journald-friendly ``<N>`` priority prefixes when under systemd."""
    from keepwarm.daemon.logs import configure

    configure(level)


# -- progress -------------------------------------------------------------------------------------
class ProgressPrinter:
    """A progress bar on a terminal (messages done / estimated, rate, ETA); silent otherwise."""

    def __init__(self, label: str, stream: Any = None) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.enabled = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.start = datetime.now(UTC)
        self.done = 0
        self._shown = False

    def __call__(self, account: str, progress: Progress | None, batch: Batch) -> None:
        self.done = progress.done if progress else self.done + len(batch)
        if not self.enabled:
            return
        elapsed = max((datetime.now(UTC) - self.start).total_seconds(), 1e-6)
        rate = self.done / elapsed
        total = progress.total if progress else None
        if total:
            frac = min(1.0, self.done / max(total, 1))
            bar = "#" * int(frac * 24)
            eta = (total - self.done) / rate if rate > 0 else 0
            line = f"\r{self.label}: [{bar:<24}] {self.done:,}/{total:,} {rate:,.0f}/s ETA {int(eta) // 60}m{int(eta) % 60:02d}s"
        else:
            line = f"\r{self.label}: {self.done:,} done, {rate:,.0f}/s"
        self.stream.write(line[:120])
        self.stream.flush()
        self._shown = True

    def close(self) -> None:
        if self._shown:
            self.stream.write("\n")
            self.stream.flush()


# -- the group ------------------------------------------------------------------------------------
@click.group(cls=KeepwarmGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    metavar="PATH",
    help="Config file (default: $KEEPWARM_CONFIG, then ~/.config/keepwarm/config.toml).",
)
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
@click.version_option(package_name="keepwarm")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, verbose: int) -> None:
    """keepwarm keeps your professional relationships warm.

    It reads mail and calendar metadata (never bodies), learns the rhythm of each relationship and
    mails you a short morning digest of value-adding touches.
    """
    setup_logging({0: "warning", 1: "info"}.get(verbose, "debug"))
    ctx.obj = Ctx(config_path)


@cli.group()
def auth() -> None:
    """Authorise keepwarm to read an account (run once per account, again if access expires)."""
