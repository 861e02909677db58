"""keepwarm CLI commands: digest, snooze."""

from __future__ import annotations

import json
import sys
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import click

from keepwarm.connectors.headers import normalize_address
from keepwarm.daemon.cli import (
    EXIT_FAIL,
    Ctx,
    UserError,
    cli,
    now_utc,
    parse_as_of,
    pass_ctx,
)
from keepwarm.daemon.config import parse_duration
from keepwarm.daemon.store import Store

__all__ = ["cli", "digest", "snooze"]


@cli.command()
@click.option(
    "--as-of",
    "as_of",
    metavar="DATE",
    help="Build the digest of that morning (YYYY-MM-DD, at [digest].time in your zone; only "
    "history up to then is seen), or as of an ISO timestamp.",
)
@click.option(
    "--out",
    "out",
    metavar="FILE",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the digest to FILE: .html (the HTML part), .eml (the whole message) or any other "
    "name for the text part. Nothing is sent or recorded unless --send is given too.",
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print the suggestions (kinds, people, facts) as JSON."
)
@click.option(
    "--send",
    is_flag=True,
    help="Deliver it with the configured [delivery] method (the file outbox by default), at most "
    "once per local day; a second --send the same day does nothing.",
)
@click.option(
    "--force", is_flag=True, help="With --send: deliver again even if today's digest went out."
)
@pass_ctx
def digest(
    obj: Ctx, as_of: str | None, out: Path | None, as_json: bool, send: bool, force: bool
) -> None:
    """Build today's digest.

    Without --send or --out it prints the plain-text digest to stdout as a preview: nothing is
    delivered and nothing is recorded (suggestions shown, cooldowns), so it can run any time.
    """
    from keepwarm.daemon.digest_job import OutFileError, digest_moment, run_digest

    config = obj.config
    if as_of and len(as_of) == 10:  # a day: that morning's digest, at [digest].time
        try:
            now = digest_moment(config, date.fromisoformat(as_of))
        except ValueError:
            raise UserError(f"--as-of: expected a date YYYY-MM-DD, found {as_of!r}") from None
    else:
        now = now_utc(parse_as_of(as_of, config.zone))
    if force and not send:
        raise UserError("--force only makes sense with --send")
    if out is not None:
        _check_writable(out)
    with obj.store() as store:
        try:
            outcome = run_digest(config, store, now=now, send=send, out=out, force=force)
        except OutFileError as exc:
            raise UserError(str(exc)) from None
    if as_json:
        click.echo(
            json.dumps(
                {
                    "date": outcome.local_date.isoformat(),
                    "subject": outcome.subject,
                    "state": outcome.state,
                    "path": str(outcome.path) if outcome.path else None,
                    "error": outcome.error,
                    "suggestions": [s.to_json() for s in outcome.suggestions],
                },
                indent=2,
                ensure_ascii=False,
            )
        )
    elif not send and out is None and outcome.rendered is not None:
        click.echo(f"Subject: {outcome.rendered.subject}\n")
        click.echo(outcome.rendered.text, nl=False)
    else:
        _report(outcome.state, outcome.local_date, outcome.path, outcome.error, out)
    if outcome.state == "failed":
        sys.exit(EXIT_FAIL)


def _check_writable(out: Path) -> None:
    """--out: a file in an existing folder (an error now beats a traceback after the work)."""
    parent = out.parent if str(out.parent) else Path(".")
    if out.is_dir():
        raise UserError(f"--out: {out} is a folder; give a file name such as {out / 'digest.html'}")
    if not parent.is_dir():
        raise UserError(
            f"--out: the folder {parent} does not exist; create it (mkdir -p {parent}) "
            "or write somewhere else"
        )


def _report(state: str, day: date, path: Path | None, error: str | None, out: Path | None) -> None:
    if out is not None and state in ("written", "sent", "already_sent"):
        click.echo(f"wrote {out}")
    if state == "sent":
        click.echo(f"digest for {day} delivered" + (f" to {path}" if path else ""))
        if error:
            click.echo(f"note: {error}", err=True)
    elif state == "already_sent":
        click.echo(f"digest for {day} was already delivered; use --force to send it again")
    elif state == "in_progress":
        click.echo(f"digest for {day} is {error}")
    elif state == "failed":
        click.echo(f"digest for {day} not delivered: {error}", err=True)


# -- snooze ----------------------------------------------------------------------------------------
def _resolve_person(store: Store, person: str) -> str:
    """An address, or a display name that matches exactly one stored address."""
    addr = normalize_address(person)
    if addr is not None:
        return addr
    rows = store.conn.execute(
        "SELECT email, name FROM addresses WHERE lower(name) = lower(?) ORDER BY email LIMIT 6",
        (person.strip(),),
    ).fetchall()
    if not rows:
        rows = store.conn.execute(
            "SELECT email, name FROM addresses WHERE lower(name) LIKE '%' || lower(?) || '%' "
            "ORDER BY email LIMIT 6",
            (person.strip(),),
        ).fetchall()
    if len(rows) == 1:
        return str(rows[0][0])
    if not rows:
        raise UserError(f"no one called {person!r} in your mail; give their email address")
    names = ", ".join(f"{n} <{e}>" for e, n in rows[:5])
    raise UserError(f"{person!r} matches several people ({names}); give the email address")


def _parse_until(value: str, now: datetime) -> datetime:
    try:
        return now + parse_duration(value)
    except ValueError:
        pass
    try:
        d = datetime.strptime(value, "%Y-%m-%d").date()
    except ValueError:
        raise UserError(
            f'expected a duration such as "30d", "2w", "3mo" or a date YYYY-MM-DD, found {value!r}'
        ) from None
    return datetime.combine(d, time(0, 0), UTC)


@cli.command()
@click.argument("person", required=False)
@click.argument("duration", required=False, default="30d")
@click.option("--list", "list_", is_flag=True, help="List active snoozes.")
@click.option("--clear", "clear", is_flag=True, help="Remove PERSON's snooze.")
@pass_ctx
def snooze(obj: Ctx, person: str | None, duration: str, list_: bool, clear: bool) -> None:
    """Keep PERSON out of the digest for DURATION (default 30d; or until a date YYYY-MM-DD).

    PERSON is an email address or a display name seen in your mail. Examples:
    'keepwarm snooze tom@example.com 30d', 'keepwarm snooze --list',
    'keepwarm snooze --clear tom@example.com'.
    """
    now = datetime.now(UTC)
    with obj.store() as store:
        if list_:
            _list_snoozes(obj, store, now)
            return
        if not person:
            raise UserError("give a PERSON (an email address), or --list")
        addr = _resolve_person(store, person)
        if clear:
            with store.atomic():
                n = store.conn.execute("DELETE FROM snoozes WHERE person = ?", (addr,)).rowcount
            click.echo(f"{addr}: snooze cleared" if n else f"{addr} was not snoozed")
            return
        until = _parse_until(duration, now)
        if until <= now:
            raise UserError("the snooze must end in the future")
        with store.atomic():
            store.conn.execute(
                """INSERT INTO snoozes (person, until, created_at) VALUES (?, ?, ?)
                   ON CONFLICT(person) DO UPDATE SET until = excluded.until""",
                (addr, int(until.timestamp()), int(now.timestamp())),
            )
    local = until.astimezone(obj.config.zone).date()
    click.echo(f"{addr}: snoozed until {local.isoformat()}")


def _list_snoozes(obj: Ctx, store: Store, now: datetime) -> None:
    rows = store.conn.execute(
        "SELECT person, until FROM snoozes WHERE until > ? ORDER BY until",
        (int(now.timestamp()),),
    ).fetchall()
    if not rows:
        click.echo("no one is snoozed")
        return
    zone = obj.config.zone
    for person, until in rows:
        end = datetime.fromtimestamp(until, UTC).astimezone(zone).date()
        left = (end - now.astimezone(zone).date()) // timedelta(days=1)
        click.echo(f"{person}  until {end.isoformat()} ({left} days)")
