"""The ``keepwarm`` command: the only code that talks to people (prints, prompts, exit codes)."""

from __future__ import annotations

import json
import os
import sqlite3
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, time
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from zoneinfo import ZoneInfo

import click

from keepwarm.connectors.base import Batch, ConnectorError, Progress
from keepwarm.core.errors import EXIT_FAIL as EXIT_FAIL
from keepwarm.core.errors import EXIT_USER as EXIT_USER
from keepwarm.core.errors import KeepwarmError
from keepwarm.daemon import config as cfgmod
from keepwarm.daemon.config import Config, ConfigError
from keepwarm.daemon.errors import UserError as UserError
from keepwarm.daemon.store import Notice, Store, StoreError, database_problem, ledger
from keepwarm.daemon.words import plural

if TYPE_CHECKING:
    from keepwarm.daemon.config import Account
    from keepwarm.daemon.freshness import AccountFreshness
    from keepwarm.daemon.sync import SyncOutcome

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


def _complete_accounts(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
    from keepwarm.daemon.completion import accounts

    return accounts(ctx, param, incomplete)


def _accounts_to_sync(config: Config, names: list[str]) -> list[Account]:
    """The named accounts (all enabled ones if none is named), or a UserError saying what to do."""
    try:
        accounts = (
            [config.account(n) for n in names]
            if names
            else [a for a in config.accounts if a.enabled]
        )
    except ConfigError as exc:
        raise UserError(
            "; ".join(exc.problems) + ". (`keepwarm sync` syncs the accounts in your config; "
            "run `keepwarm import KIND PATH` again to update an imported folder or file)"
        ) from None
    if not accounts:
        raise UserError(
            "no accounts configured: add an [[accounts]] table to your config (every kind: "
            "`keepwarm init --example`), or import files with `keepwarm import maildir PATH`"
        )
    return accounts


def _report_outcome(
    name: str, outcome: SyncOutcome, *, quiet: bool, collect: list[Any] | None
) -> bool:
    """Print (or collect) one account's outcome; True when it failed."""
    ok = outcome.state in ("ok", "interrupted")
    if collect is not None:
        collect.append(outcome)
    elif ok:
        if not quiet:
            click.echo(f"{name}: {outcome.summary()}")
    else:
        fix = f" To fix: {outcome.fix}" if outcome.fix else ""
        click.echo(f"{name}: {outcome.state.replace('_', ' ')}: {outcome.error}.{fix}", err=True)
    return not ok


def sync_accounts(
    obj: Ctx, names: list[str], *, quiet: bool = False, collect: list[Any] | None = None
) -> int:
    """Sync the named accounts (all enabled ones if empty); returns the number that failed.

    With ``collect``, nothing is printed: each account's outcome is appended to it instead."""
    from keepwarm.daemon.accounts import make_connector
    from keepwarm.daemon.actions import ActionInbox
    from keepwarm.daemon.sync import SyncOutcome, run_account

    config = obj.config
    accounts = _accounts_to_sync(config, names)
    failed = 0
    with obj.store() as store:
        for account in accounts:
            try:
                connector = make_connector(account, config)
            except ConnectorError as exc:
                failed += 1
                if collect is not None:
                    collect.append(SyncOutcome(account.name, state="failing", error=str(exc)))
                else:
                    click.echo(f"{account.name}: {exc}", err=True)
                continue
            printer = ProgressPrinter(account.name) if collect is None else None
            try:
                outcome = run_account(
                    store, connector, on_batch=printer, intercept=ActionInbox(config, store)
                )
            except StoreError as exc:
                raise UserError(str(exc)) from None
            finally:
                if printer is not None:
                    printer.close()
            failed += _report_outcome(account.name, outcome, quiet=quiet, collect=collect)
        if failed < len(accounts):  # a digest lost in a crash may have arrived by now
            from keepwarm.daemon.delivery_check import settle_deliveries

            for line in settle_deliveries(config, store, datetime.now(UTC)):
                click.echo(line)
    return failed


@cli.command()
@click.argument("accounts", nargs=-1, shell_complete=_complete_accounts)
@click.option("--json", "as_json", is_flag=True, help="Print each account's outcome as JSON.")
@pass_ctx
def sync(obj: Ctx, accounts: tuple[str, ...], as_json: bool) -> None:
    """Sync configured accounts now (all enabled ones by default)."""
    if not as_json:
        if sync_accounts(obj, list(accounts)):
            sys.exit(EXIT_FAIL)
        return
    outcomes: list[Any] = []
    failed = sync_accounts(obj, list(accounts), collect=outcomes)
    click.echo(json.dumps([o.to_json() for o in outcomes], indent=2))
    if failed:
        sys.exit(EXIT_FAIL)


def _fmt_ts(ts: int | None, zone: ZoneInfo) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).astimezone(zone).isoformat(timespec="minutes")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_ctx
def status(obj: Ctx, as_json: bool) -> None:
    """Counts of messages, events, contacts and people, every account (imported ones too), the
    digests."""
    from keepwarm.daemon import freshness

    config = obj.config
    now = datetime.now(UTC)
    since = now.timestamp() - NOTICE_DAYS * 86400
    with obj.store() as store:
        counts = store.counts()
        found = freshness.accounts(config, store, now)
        problem = freshness.data_problem(store, now, config)
        latest = freshness.newest(store, now)
        sent = freshness.sent_days(store)
        digests = ledger.latest(store)
        kept = store.history_counts()
        notices = {a.name: store.notices(a.name, since) for a in found}
    zone = config.zone

    def ts(dt: datetime | None) -> str | None:
        return dt.astimezone(zone).isoformat(timespec="minutes") if dt else None

    accounts: list[dict[str, Any]] = [
        {
            "name": a.name,
            "kind": a.kind,
            "configured": a.configured,
            "enabled": a.enabled,
            "state": a.state,
            "health": a.words,
            "up_to_date": a.up_to_date,
            "last_ok": ts(a.last_ok_at),
            "last_attempt": ts(a.last_attempt_at),
            "next_attempt": ts(a.next_attempt_at),
            "last_error": a.last_error,
            "fix": a.fix,
            "progress": list(a.progress) if a.progress else None,
            "deleted_kept": kept.get(a.name, 0),
            "notices": [{"at": _fmt_ts(n.at, zone), "text": n.text} for n in notices[a.name]],
        }
        for a in found
    ]
    due, catch_up = freshness.next_digest(config, now, sent)
    data: dict[str, Any] = {
        "database": str(config.store_path),
        "messages": counts["messages"],
        "events": counts["events"],
        "contacts": counts["contacts"],
        "addresses": counts["addresses"],
        "newest": ts(latest),
        "data_problem": problem,
        "accounts": accounts,
        "last_digest": {"date": digests[0], "state": digests[1], "error": digests[2]}
        if digests
        else None,
        "next_digest": ts(due),
        "next_digest_catch_up": catch_up,
        **_daemon_info(config),
    }
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    _echo_counts(data, counts, latest, zone, problem)
    for a in found:
        for line in _account_lines(a, notices[a.name], kept.get(a.name, 0), ts, zone):
            click.echo(line)
    if not found:
        click.echo(
            "account    none: import files (keepwarm import maildir PATH) or add [[accounts]]"
        )
    if data["last_digest"]:
        d = data["last_digest"]
        click.echo(
            f"digest     {d['date']}: {d['state']}" + (f" ({d['error']})" if d["error"] else "")
        )
    when = "now (catching up today's)" if catch_up else f"{ts(due)} {config.timezone}"
    click.echo(f"next       digest {when}")
    dmn = data["daemon"]
    click.echo(
        f"daemon     running (pid {dmn['pid']}, since {dmn['started']})"
        if dmn["running"]
        else "daemon     not running (start it with 'keepwarm run', or install it as a "
        "service: keepwarm service install --user)"
    )


def _echo_counts(
    data: dict[str, Any],
    counts: dict[str, int],
    latest: datetime | None,
    zone: ZoneInfo,
    problem: str | None,
) -> None:
    """The first lines of ``keepwarm status``: the database and what it holds."""
    click.echo(f"database   {data['database']}")
    click.echo(f"messages   {counts['messages']:,}")
    click.echo(f"events     {counts['events']:,}")
    click.echo(f"addresses  {counts['addresses']:,}")
    if counts["contacts"]:
        click.echo(f"contacts   {counts['contacts']:,}")
    if latest is not None:
        click.echo(f"newest     {latest.astimezone(zone):%Y-%m-%d %H:%M}")
    if problem:
        click.echo(f"note       {problem}")


def _account_lines(
    a: AccountFreshness,
    notices: list[Notice],
    kept: int,
    ts: Callable[[datetime | None], str | None],
    zone: ZoneInfo,
) -> list[str]:
    """The lines of ``keepwarm status`` about one account."""
    line = f"account    {a.name} ({a.kind}{'' if a.configured else ', imported'}): {a.words}"
    if a.last_ok_at:
        line += f", last {'imported' if not a.configured else 'synced'} {ts(a.last_ok_at)}"
    if a.next_attempt_at and a.state != "ok":
        line += f", next attempt {ts(a.next_attempt_at)}"
    lines = [line]
    if a.last_error and not a.up_to_date and a.state != "imported":
        lines.append(f"           error: {a.last_error}")
    if a.fix and not a.up_to_date:
        lines.append(f"           fix:   {a.fix}")
    for n in notices:
        lines.append(f"           notice ({(_fmt_ts(n.at, zone) or '')[:10]}): {n.text}")
    if kept:
        lines.append(
            f"           history: {plural(kept, 'message')} deleted at the source "
            "are kept ([privacy] forget_deleted)"
        )
    return lines


NOTICE_DAYS = 30  # how long status shows an account's notices


def _daemon_info(config: Config) -> dict[str, Any]:
    """Whether ``keepwarm run`` holds the lock."""
    from keepwarm.daemon.lock import lock_path_for, running_daemon

    info = running_daemon(lock_path_for(config.store_path))
    zone = config.zone
    return {
        "daemon": {
            "running": info is not None,
            "pid": info.pid if info else None,
            "started": _fmt_ts(int(info.started_at), zone) if info and info.started_at else None,
        },
    }


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


def _register_subcommands() -> None:
    """Command modules add themselves to the group; imported here so ``cli`` is complete."""
    import importlib

    for module in (
        "setup",
        "local",
        "people",
        "digest",
        "decide",
        "google",
        "microsoft",
        "service",
        "demo",
        "manual",
    ):
        importlib.import_module(f"keepwarm.daemon.commands.{module}")


_register_subcommands()
