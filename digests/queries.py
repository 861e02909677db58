"""Read-only SQL over the store's tables, into plain frozen dataclasses. The only SQL in digests/.

The engine (:mod:`keepwarm.digests.cadence`) never touches the database: it takes a
:class:`History` built here. Times are kept as UTC epoch seconds (ints) because a year of mail is
hundreds of thousands of records and a ``datetime`` per record costs time and memory; the
``when`` properties give aware datetimes for display.

``--as-of`` is honoured here: :func:`load_history` sees only messages dated up to ``until`` and
only events that *start* before ``events_until`` (the end of the local day, so that today's
meetings can be prepared for; the engine itself ignores events after ``now`` except for that).
"""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

# Address roles in message_addresses (mirrors daemon/store/migrations.py; digests may not import it).
ROLE_FROM, ROLE_TO, ROLE_CC, ROLE_BCC, ROLE_REPLY_TO = 0, 1, 2, 3, 4


@dataclass(frozen=True, slots=True)
class MessageRecord:
    """One stored message, as the engine needs it. ``date`` is UTC epoch seconds."""

    id: int
    date: int
    sender: str | None
    to: tuple[str, ...] = ()
    cc: tuple[str, ...] = ()
    bcc: tuple[str, ...] = ()
    message_id: str | None = None
    in_reply_to: str | None = None
    refs: tuple[str, ...] = ()
    subject: str | None = None
    norm_subject: str | None = None
    thread_hint: str | None = None
    list_id: str | None = None
    markers: frozenset[str] = frozenset()

    @property
    def when(self) -> datetime:
        return datetime.fromtimestamp(self.date, UTC)

    @property
    def n_recipients(self) -> int:
        return len(self.to) + len(self.cc) + len(self.bcc)


@dataclass(frozen=True, slots=True)
class AttendeeRecord:
    email: str
    response: str = "unknown"  # accepted | declined | tentative | needsAction | unknown
    organizer: bool = False
    optional: bool = False
    resource: bool = False
    is_self: bool = False


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One stored calendar event occurrence. ``start``/``end`` are UTC epoch seconds."""

    id: int
    start: int
    end: int
    all_day: bool = False
    status: str = "confirmed"
    event_type: str = "default"
    organizer: str | None = None
    my_response: str = "unknown"
    recurring: bool = False
    attendees: tuple[AttendeeRecord, ...] = ()
    attendees_omitted: bool = False
    title: str | None = None

    @property
    def when(self) -> datetime:
        return datetime.fromtimestamp(self.start, UTC)


@dataclass(frozen=True, slots=True)
class History:
    """Everything the engine reads: messages and events (any order), display names by address."""

    messages: tuple[MessageRecord, ...] = ()
    events: tuple[EventRecord, ...] = ()
    names: Mapping[str, str] = field(default_factory=dict)


def _epoch(dt: datetime | None) -> int | None:
    if dt is None:
        return None
    if dt.tzinfo is None:
        raise ValueError("queries need timezone-aware datetimes")
    return int(dt.timestamp())


class _Interner:
    """Share one string object per distinct value: a year of mail repeats the same few thousand."""

    def __init__(self) -> None:
        self._seen: dict[str, str] = {}

    def __call__(self, value: str | None) -> str | None:
        if value is None:
            return None
        got = self._seen.get(value)
        if got is None:
            got = sys.intern(value) if len(value) < 64 else value
            self._seen[value] = got
        return got


def load_addresses(conn: sqlite3.Connection) -> dict[int, tuple[str, str]]:
    """Every stored address: id -> (email, display name)."""
    return {
        int(i): (sys.intern(str(e)), str(n or ""))
        for i, e, n in conn.execute("SELECT id, email, name FROM addresses")
    }


def _recipients(
    conn: sqlite3.Connection, until: int | None, emails: Mapping[int, str]
) -> dict[int, tuple[list[str], list[str], list[str]]]:
    sql = """SELECT ma.message, ma.role, ma.address FROM message_addresses ma
             WHERE ma.role IN (1, 2, 3)"""
    args: tuple[object, ...] = ()
    if until is not None:
        sql = """SELECT ma.message, ma.role, ma.address FROM message_addresses ma
                 JOIN messages m ON m.id = ma.message
                 WHERE ma.role IN (1, 2, 3) AND m.date <= ?"""
        args = (until,)
    out: dict[int, tuple[list[str], list[str], list[str]]] = {}
    for mid, role, aid in conn.execute(sql, args):
        slot = out.get(mid)
        if slot is None:
            slot = out[mid] = ([], [], [])
        slot[role - 1].append(emails[aid])
    return out


_EMPTY: tuple[str, ...] = ()


def _tuple(values: list[str]) -> tuple[str, ...]:
    return tuple(sorted(values)) if values else _EMPTY


def load_messages(
    conn: sqlite3.Connection,
    until: datetime | None = None,
    addresses: Mapping[int, tuple[str, str]] | None = None,
) -> tuple[MessageRecord, ...]:
    """Messages dated up to ``until`` (all of them when None), oldest first."""
    addresses = load_addresses(conn) if addresses is None else addresses
    emails = {i: e for i, (e, _n) in addresses.items()}
    cut = _epoch(until)
    recips = _recipients(conn, cut, emails)
    intern = _Interner()
    markers_cache: dict[str, frozenset[str]] = {}
    sql = """SELECT id, date, sender, message_id, in_reply_to, refs, subject, norm_subject,
                    thread_hint, list_id, markers FROM messages"""
    args: tuple[object, ...] = ()
    if cut is not None:
        sql += " WHERE date <= ?"
        args = (cut,)
    sql += " ORDER BY date, id"
    out: list[MessageRecord] = []
    empty: tuple[list[str], list[str], list[str]] = ([], [], [])
    for mid, date, sender, msgid, irt, refs, subj, nsubj, hint, lid, marks in conn.execute(
        sql, args
    ):
        to, cc, bcc = recips.get(mid, empty)
        mk = markers_cache.get(marks or "")
        if mk is None:
            mk = markers_cache[marks or ""] = frozenset((marks or "").split())
        out.append(
            MessageRecord(
                id=mid,
                date=date,
                sender=emails.get(sender) if sender is not None else None,
                to=_tuple(to),
                cc=_tuple(cc),
                bcc=_tuple(bcc),
                message_id=msgid,
                in_reply_to=irt,
                refs=tuple(refs.split()) if refs else _EMPTY,
                subject=intern(subj),
                norm_subject=intern(nsubj),
                thread_hint=intern(hint),
                list_id=intern(lid),
                markers=mk,
            )
        )
    return tuple(out)


def load_events(
    conn: sqlite3.Connection,
    until: datetime | None = None,
    addresses: Mapping[int, tuple[str, str]] | None = None,
) -> tuple[EventRecord, ...]:
    """Events starting before ``until`` (all when None), oldest first, with their attendees."""
    addresses = load_addresses(conn) if addresses is None else addresses
    cut = _epoch(until)
    where, args = ("WHERE e.start < ?", (cut,)) if cut is not None else ("", ())
    attendees: dict[int, list[AttendeeRecord]] = {}
    for eid, aid, resp, org, opt, res, me in conn.execute(
        f"""SELECT a.event, a.address, a.response, a.organizer, a.optional, a.resource, a.is_self
            FROM event_attendees a JOIN events e ON e.id = a.event {where}""",
        args,
    ):
        attendees.setdefault(eid, []).append(
            AttendeeRecord(addresses[aid][0], str(resp), bool(org), bool(opt), bool(res), bool(me))
        )
    out: list[EventRecord] = []
    for row in conn.execute(
        f"""SELECT e.id, e.start, e."end", e.all_day, e.status, e.event_type, e.organizer,
                   e.my_response, e.recurring, e.attendees_omitted, e.title
            FROM events e {where} ORDER BY e.start, e.id""",
        args,
    ):
        eid, start, end, all_day, status, etype, org, my_resp, rec, omitted, title = row
        out.append(
            EventRecord(
                id=eid,
                start=start,
                end=end,
                all_day=bool(all_day),
                status=str(status),
                event_type=str(etype),
                organizer=addresses[org][0] if org is not None else None,
                my_response=str(my_resp),
                recurring=bool(rec),
                attendees=tuple(sorted(attendees.get(eid, ()), key=lambda a: a.email)),
                attendees_omitted=bool(omitted),
                title=title,
            )
        )
    return tuple(out)


def load_history(
    conn: sqlite3.Connection,
    until: datetime | None = None,
    events_until: datetime | None = None,
) -> History:
    """The whole history the engine needs, as seen at ``until``.

    Messages dated after ``until`` are not loaded. Events are loaded when they start before
    ``events_until`` (default: ``until``); pass the end of the local day to see today's meetings.
    """
    addresses = load_addresses(conn)
    ev_cut = events_until if events_until is not None else until
    return History(
        messages=load_messages(conn, until, addresses),
        events=load_events(conn, ev_cut, addresses),
        names={e: n for e, n in addresses.values() if n},
    )
