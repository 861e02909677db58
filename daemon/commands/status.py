"""``keepwarm sync`` and ``keepwarm status``: syncing the configured accounts now, and what the
database holds, each account's health and the digests."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import click

from keepwarm.connectors.base import ConnectorError
from keepwarm.core.errors import EXIT_FAIL
from keepwarm.daemon.commands.base import Ctx, ProgressPrinter, cli, pass_ctx
from keepwarm.daemon.config import Config, ConfigError
from keepwarm.daemon.errors import UserError
from keepwarm.daemon.store import Notice, StoreError, ledger
from keepwarm.daemon.words import plural

if TYPE_CHECKING:
    from keepwarm.daemon.config import Account
    from keepwarm.daemon.freshness import AccountFreshness
    from keepwarm.daemon.sync import SyncOutcome


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
