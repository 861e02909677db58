"""keepwarm CLI commands: digest."""

from __future__ import annotations

import sys
from datetime import UTC, date, datetime
from pathlib import Path

import click

from keepwarm.core import gc_paused
from keepwarm.daemon import jsonout
from keepwarm.daemon.commands.base import (
    EXIT_FAIL,
    Ctx,
    UserError,
    cli,
    now_utc,
    parse_as_of,
    pass_ctx,
)

__all__ = ["cli", "digest"]


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
@gc_paused()
def digest(
    obj: Ctx, as_of: str | None, out: Path | None, as_json: bool, send: bool, force: bool
) -> None:
    """Build today's digest.

    Without --send or --out it prints the plain-text digest to stdout as a preview: nothing is
    delivered and nothing is recorded (suggestions shown, cooldowns), so it can run any time.
    """
    from keepwarm.daemon.delivery_check import settle_deliveries
    from keepwarm.daemon.digest_job import digest_moment, run_digest

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
        if send:  # an earlier digest lost in a crash: confirmed, resent, or told in this one
            settle_deliveries(config, store, datetime.now(UTC))
        outcome = run_digest(config, store, now=now, send=send, out=out, force=force)
    if as_json:
        click.echo(
            jsonout.dumps(
                {
                    "date": outcome.local_date.isoformat(),
                    "subject": outcome.subject,
                    "state": outcome.state,
                    "path": str(outcome.path) if outcome.path else None,
                    "error": outcome.error,
                    "suggestions": [s.to_json() for s in outcome.suggestions],
                },
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
