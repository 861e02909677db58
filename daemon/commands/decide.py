"""keepwarm CLI commands: done, snooze, dismiss, ignore, merge, note, decisions.

The same decisions the digest's action links make (daemon/decisions.py): each is listed, and
can be undone, with ``--list`` / ``--undo ID`` on its command or with ``keepwarm decisions``.
PERSON is an email address or any name ``keepwarm people`` prints; a person keepwarm has never
seen is an error.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any, TypeVar, get_args

import click

from keepwarm.connectors.headers import normalize_address
from keepwarm.daemon import completion, decisions
from keepwarm.daemon.commands.base import Ctx, UserError, cli, pass_ctx
from keepwarm.daemon.config import Config, parse_duration
from keepwarm.daemon.decisions import KINDS, Decision
from keepwarm.daemon.identity import Identity, Person
from keepwarm.daemon.people_stats import load_view
from keepwarm.daemon.store import Store, ledger

__all__ = ["cli"]

F = TypeVar("F", bound=Callable[..., Any])
MIN_SNOOZE = timedelta(days=1)


@dataclass
class Session:
    """One command's store, decided config and identity (as of now)."""

    config: Config
    store: Store
    identity: Identity
    now: datetime

    def person(self, query: str) -> Person:
        from keepwarm.daemon.commands.people import find_person  # a sibling command module

        return find_person(self.identity, query)

    def names(self) -> dict[str, str]:
        return {a: p.name for p in self.identity.people.values() for a in p.addresses}

    def decide(self, verb: str, person: str, **fields: Any) -> None:
        """Record a decision made now and say what it is and how to undo it."""
        d = decisions.record(self.store, verb, person, at=self.now, **fields)
        assert d is not None  # only an action mail's key can repeat
        today = self.now.astimezone(self.config.zone).date()
        line = decisions.describe(d, self.names(), self.config.zone, today)
        click.echo(f"{line} (#{d.id}); undo with: keepwarm {verb} --undo {d.id}")


@contextmanager
def session(obj: Ctx) -> Iterator[Session]:
    config = obj.config
    now = datetime.now(UTC)
    with obj.store() as store:
        decided = decisions.decided_config(config, store, now)
        view = load_view(store, decided, None)
        yield Session(config, store, view.identity, now)


def list_undo_options(f: F) -> F:
    f = click.option("--json", "as_json", is_flag=True, help="With --list: print JSON.")(f)
    f = click.option(
        "--undo", "undo_id", type=int, metavar="ID", help="Undo decision ID (see --list)."
    )(f)
    return click.option("--list", "list_", is_flag=True, help="List these decisions in force.")(f)


def _list_or_undo(obj: Ctx, verb: str, list_: bool, undo_id: int | None, as_json: bool) -> bool:
    """Handle --list and --undo for ``verb``; True when one of them was given."""
    if not list_ and undo_id is None:
        if as_json:
            raise UserError("--json goes with --list")
        return False
    with session(obj) as s:
        if undo_id is not None:
            d = decisions.get(s.store, undo_id)
            if d is not None and d.verb != verb:
                raise UserError(
                    f"decision #{undo_id} is a {d.verb}, not a {verb}; "
                    f"undo it with keepwarm decisions --undo {undo_id}"
                )
            _undo(s, undo_id)
        if list_:
            _print(s, decisions.load(s.store, verbs=(verb,)), as_json, empty=f"no {verb} decisions")
    return True


def _undo(s: Session, decision_id: int) -> None:
    try:
        d = decisions.undo(s.store, decision_id, s.now)
    except decisions.UndoError as exc:
        raise UserError(str(exc)) from None
    today = s.now.astimezone(s.config.zone).date()
    click.echo(f"undone: {decisions.describe(d, s.names(), s.config.zone, today)} (#{d.id})")


def _print(s: Session, found: list[Decision], as_json: bool, empty: str) -> None:
    if as_json:
        click.echo(json.dumps([d.to_json() for d in found], indent=2, ensure_ascii=False))
        return
    if not found:
        click.echo(empty)
        return
    today = s.now.astimezone(s.config.zone).date()
    names = s.names()
    width = max(len(str(d.id)) for d in found) + 1
    for d in found:
        line = decisions.describe(d, names, s.config.zone, today)
        where = "from the digest" if d.source == "mail" else "on the command line"
        state = "" if d.state == "active" else f" [{d.state}]"
        click.echo(f"{'#' + str(d.id):>{width}}  {line}  ({where}){state}")


def _kind(value: str | None) -> str | None:
    if value is None:
        return None
    v = value.strip().lower().replace(" ", "_").replace("-", "_")
    if v not in KINDS:
        raise UserError(f"unknown kind {value!r}; kinds: {', '.join(KINDS)}")
    return v


# -- done -------------------------------------------------------------------------------------------
@cli.command()
@click.argument("person", required=False, shell_complete=completion.people)
@click.option(
    "--kind",
    metavar="KIND",
    shell_complete=completion.kinds,
    help="The suggestion you acted on (reply_owed, fading, ... or a section such as reconnect); "
    "default: the one the digest last showed for PERSON.",
)
@list_undo_options
@pass_ctx
def done(
    obj: Ctx,
    person: str | None,
    kind: str | None,
    list_: bool,
    undo_id: int | None,
    as_json: bool,
) -> None:
    """You got in touch with PERSON: it counts as a touch now and restarts their clock.

    The suggestion you acted on leaves the digest, and so do replies owed from before now.
    Example: 'keepwarm done "Maya Lopez"'.
    """
    if _list_or_undo(obj, "done", list_, undo_id, as_json):
        return
    if not person:
        raise UserError("give a PERSON (an email address or a name), or --list")
    with session(obj) as s:
        p = s.person(person)
        chosen = _kind(kind) or _last_shown_kind(s.store, p)
        s.decide("done", p.key, kind=chosen)


def _last_shown_kind(store: Store, p: Person) -> str | None:
    return ledger.last_shown_kind(store, p.addresses)


# -- snooze -----------------------------------------------------------------------------------------
def parse_until(value: str, now: datetime, config: Config) -> datetime:
    """A duration ("30d", "2w", "3mo") from now, or a date YYYY-MM-DD (its start, your zone)."""
    try:
        span = parse_duration(value)
    except ValueError:
        span = None
    if span is not None:
        if span < MIN_SNOOZE:
            raise UserError(
                f'a snooze of {value!r} is shorter than a day; write months as "1mo", weeks as "1w"'
            )
        return now + span
    try:
        d = datetime.strptime(value, "%Y-%m-%d").date()
    except ValueError:
        raise UserError(
            f'expected a duration such as "30d", "2w", "3mo" or a date YYYY-MM-DD, found {value!r}'
        ) from None
    until = datetime.combine(d, time(0, 0), config.zone).astimezone(UTC)
    if until <= now:
        raise UserError(f"{value} is not in the future; the snooze must end after today")
    return until


@cli.command()
@click.argument("person", required=False, shell_complete=completion.people)
@click.argument("duration", required=False, default="30d")
@click.option("--clear", "clear", is_flag=True, help="End PERSON's snooze now.")
@list_undo_options
@pass_ctx
def snooze(
    obj: Ctx,
    person: str | None,
    duration: str,
    clear: bool,
    list_: bool,
    undo_id: int | None,
    as_json: bool,
) -> None:
    """Not now: keep PERSON out of the digest for DURATION (default 30d) or until a date.

    Examples: 'keepwarm snooze tom@example.com 3mo', 'keepwarm snooze "Tom Berg" 2026-03-01',
    'keepwarm snooze --list', 'keepwarm snooze --clear tom@example.com'.
    """
    if _list_or_undo(obj, "snooze", list_, undo_id, as_json):
        return
    if not person:
        raise UserError("give a PERSON (an email address or a name), or --list")
    with session(obj) as s:
        p = s.person(person)
        if clear:
            n = decisions.undo_all(s.store, "snooze", p.addresses, s.now)
            click.echo(f"{p.name} <{p.key}>: snooze ended" if n else f"{p.key} was not snoozed")
            return
        until = parse_until(duration, s.now, s.config)
        s.decide("snooze", p.key, until=until)


# -- dismiss ----------------------------------------------------------------------------------------
@cli.command()
@click.argument("person", required=False, shell_complete=completion.people)
@click.argument("kind", required=False, shell_complete=completion.kinds)
@list_undo_options
@pass_ctx
def dismiss(
    obj: Ctx,
    person: str | None,
    kind: str | None,
    list_: bool,
    undo_id: int | None,
    as_json: bool,
) -> None:
    """Not useful: never suggest KIND for PERSON again (it also weighs KIND down a little).

    KIND is a suggestion kind (reply_owed, awaiting_reply, fading, dormant, lopsided_me, ...)
    or a section (reply, meeting, reconnect, nurture, rebalance, occasion); 'keepwarm digest
    --json' shows each suggestion's kind. Example: 'keepwarm dismiss tom@example.com reconnect'.
    """
    if _list_or_undo(obj, "dismiss", list_, undo_id, as_json):
        return
    if not person or not kind:
        raise UserError("give a PERSON and a KIND (e.g. reconnect), or --list")
    chosen = _kind(kind)
    with session(obj) as s:
        p = s.person(person)
        s.decide("dismiss", p.key, kind=chosen)


# -- ignore -----------------------------------------------------------------------------------------
@cli.command()
@click.argument("address", required=False, shell_complete=completion.people)
@list_undo_options
@pass_ctx
def ignore(obj: Ctx, address: str | None, list_: bool, undo_id: int | None, as_json: bool) -> None:
    """Not a person: leave ADDRESS out of your network (as [exclude] addresses would).

    ADDRESS is an address keepwarm has seen (or a name 'keepwarm people' prints). For one
    it has not seen yet, add it to [exclude] addresses in the config.
    """
    if _list_or_undo(obj, "ignore", list_, undo_id, as_json):
        return
    if not address:
        raise UserError("give an ADDRESS (or a name), or --list")
    with session(obj) as s:
        p = s.person(address)
        target = (normalize_address(address) if "@" in address else None) or p.key
        if p.kind == "self":
            raise UserError(f"{target} is one of your own addresses ([me] addresses)")
        s.decide("ignore", target)


# -- merge ------------------------------------------------------------------------------------------
@cli.command()
@click.argument("first", required=False, shell_complete=completion.people)
@click.argument("second", required=False, shell_complete=completion.people)
@list_undo_options
@pass_ctx
def merge(
    obj: Ctx,
    first: str | None,
    second: str | None,
    list_: bool,
    undo_id: int | None,
    as_json: bool,
) -> None:
    """Same person: FIRST and SECOND (addresses or names) are one person from now on.

    Like [people] aliases in the config; 'keepwarm people --merge-candidates' lists likely ones.
    """
    if _list_or_undo(obj, "merge", list_, undo_id, as_json):
        return
    if not first or not second:
        raise UserError("give two people (addresses or names), or --list")
    with session(obj) as s:
        a, b = s.person(first), s.person(second)
        if a.key == b.key:
            raise UserError(f"{first} and {second} are already one person ({a.key})")
        s.decide("merge", a.key, other=b.key)


# -- note -------------------------------------------------------------------------------------------
@cli.command()
@click.argument("person", required=False, shell_complete=completion.people)
@click.argument("text", nargs=-1)
@list_undo_options
@pass_ctx
def note(
    obj: Ctx,
    person: str | None,
    text: tuple[str, ...],
    list_: bool,
    undo_id: int | None,
    as_json: bool,
) -> None:
    """Keep a note about PERSON; it shows in 'keepwarm person' and before your meetings.

    Example: 'keepwarm note "Maya Lopez" moving to Lisbon in March'.
    """
    if _list_or_undo(obj, "note", list_, undo_id, as_json):
        return
    body = " ".join(text).strip()
    if not person or not body:
        raise UserError("give a PERSON and the TEXT of the note, or --list")
    with session(obj) as s:
        p = s.person(person)
        s.decide("note", p.key, note=body[:1000])


# -- decisions --------------------------------------------------------------------------------------
@cli.command("decisions")
@click.option("--all", "all_", is_flag=True, help="Also undone decisions and rejected mails.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--undo", "undo_id", type=int, metavar="ID", help="Undo decision ID.")
@pass_ctx
def decisions_cmd(obj: Ctx, all_: bool, as_json: bool, undo_id: int | None) -> None:
    """Every decision in force (done, not now, not useful, not a person, same person, notes),
    made here or from the digest's links; --undo ID takes one back."""
    with session(obj) as s:
        if undo_id is not None:
            _undo(s, undo_id)
            return
        states: tuple[decisions.State, ...] = get_args(decisions.State) if all_ else ("active",)
        found = decisions.load(s.store, states=states)
        _print(s, found, as_json, empty="no decisions yet")
