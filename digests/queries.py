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
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, TypeVar

_T = TypeVar("_T")

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


# A message as the engine's hot loop reads it: a plain tuple, since a million records are folded
# in one pass. Fields in MessageRecord's order, except ``refs`` and ``markers``, which stay the
# stored space-separated strings (None when empty).
MessageRow = tuple[
    int,  # id
    int,  # date
    str | None,  # sender
    tuple[str, ...],  # to
    tuple[str, ...],  # cc
    tuple[str, ...],  # bcc
    str | None,  # message_id
    str | None,  # in_reply_to
    str | None,  # refs
    str | None,  # subject
    str | None,  # norm_subject
    str | None,  # thread_hint
    str | None,  # list_id
    str | None,  # markers
]


def record_row(m: MessageRecord) -> MessageRow:
    """The row form of a record (for histories built in memory)."""
    return (
        m.id,
        m.date,
        m.sender,
        m.to,
        m.cc,
        m.bcc,
        m.message_id,
        m.in_reply_to,
        " ".join(m.refs) or None,
        m.subject,
        m.norm_subject,
        m.thread_hint,
        m.list_id,
        " ".join(sorted(m.markers)) or None,
    )


def row_record(r: MessageRow) -> MessageRecord:
    """The record form of a row."""
    refs, markers = r[8], r[13]
    return _make_message(
        *r[:8],
        tuple(refs.split()) if refs else _EMPTY,
        *r[9:13],
        _markers(markers),
    )


def _markers(value: str | None, cache: dict[str, frozenset[str]] = {}) -> frozenset[str]:  # noqa: B006
    if not value:
        return frozenset()
    got = cache.get(value)
    if got is None:
        got = frozenset(value.split())
        if len(cache) < 4096:
            cache[value] = got
    return got


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
    """Everything the engine reads: messages and events (any order), display names by address.

    ``messages`` is any iterable: a tuple in tests, a :class:`MessageStream` from the store.
    """

    messages: Iterable[MessageRecord] = ()
    events: tuple[EventRecord, ...] = ()
    names: Mapping[str, str] = field(default_factory=dict)


def _epoch(dt: datetime | None) -> int | None:
    if dt is None:
        return None
    if dt.tzinfo is None:
        raise ValueError("queries need timezone-aware datetimes")
    return int(dt.timestamp())


def load_addresses(conn: sqlite3.Connection) -> dict[int, tuple[str, str]]:
    """Every stored address: id -> (email, display name)."""
    return {
        int(i): (sys.intern(str(e)), str(n or ""))
        for i, e, n in conn.execute("SELECT id, email, name FROM addresses")
    }


def _frozen_factory(cls: type[_T]) -> Callable[..., _T]:
    """A fast positional constructor for a frozen slots dataclass.

    A frozen dataclass's ``__init__`` goes through ``object.__setattr__`` once per field, which
    costs several microseconds per record: too slow for a million messages. This builds the
    instance with the slot descriptors directly; the result is the same immutable object.
    """
    names = [f.name for f in fields(cls)]  # type: ignore[arg-type]
    env: dict[str, Any] = {"_new": object.__new__, "_cls": cls}
    body = ["    o = _new(_cls)"]
    for n in names:
        env[f"_set_{n}"] = getattr(cls, n).__set__
        body.append(f"    _set_{n}(o, {n})")
    src = f"def make({', '.join(names)}):\n" + "\n".join(body) + "\n    return o\n"
    exec(src, env)
    make: Callable[..., _T] = env["make"]
    return make


_EMPTY: tuple[str, ...] = ()
# One row per message with its To/Cc/Bcc address ids aggregated in SQL (much faster than
# folding message_addresses rows in Python, and no per-message dict held in memory).
# NOT INDEXED: with ``date <= ?`` SQLite would walk the date index and fetch every row at
# random; a full scan plus one sort is 1.6x faster on a million messages.
_MESSAGE_SQL = """
    SELECT m.id, m.date, m.sender, m.message_id, m.in_reply_to, m.refs, m.subject,
           m.norm_subject, m.thread_hint, m.list_id, m.markers,
           group_concat(ma.address) FILTER (WHERE ma.role = 1),
           group_concat(ma.address) FILTER (WHERE ma.role = 2),
           group_concat(ma.address) FILTER (WHERE ma.role = 3)
    FROM messages m NOT INDEXED
    LEFT JOIN message_addresses ma ON ma.message = m.id AND ma.role IN (1, 2, 3)
    WHERE m.date <= ?
    GROUP BY m.id
    ORDER BY m.date, m.id"""
_NO_LIMIT = 2**62


class MessageStream:
    """The messages up to ``until``, read from the database each time it is iterated.

    Yields records oldest first (by date, then id) without holding them all in memory: the engine
    folds a million messages into per-person ledgers in one pass.
    """

    def __init__(
        self,
        conn: sqlite3.Connection,
        until: datetime | None = None,
        addresses: Mapping[int, tuple[str, str]] | None = None,
    ) -> None:
        self.conn = conn
        self.until = _epoch(until)
        self.addresses = load_addresses(conn) if addresses is None else addresses

    def __iter__(self) -> Iterator[MessageRecord]:
        return map(row_record, self.rows())

    def rows(self) -> Iterator[MessageRow]:
        """The same messages as plain tuples (:data:`MessageRow`), the engine's fast path."""
        emails: list[str] = [""] * (max(self.addresses, default=0) + 1)
        for i, (e, _n) in self.addresses.items():
            emails[i] = e
        single: dict[str, tuple[str, ...]] = {}

        def recipients(ids: str | None) -> tuple[str, ...]:
            if not ids:
                return _EMPTY
            got = single.get(ids)
            if got is not None:
                return got
            out = tuple([emails[int(x)] for x in ids.split(",")])
            if "," not in ids:
                single[ids] = out
            return out

        strings: dict[str, str] = {}
        until = self.until if self.until is not None else _NO_LIMIT
        for row in self.conn.execute(_MESSAGE_SQL, (until,)):
            mid, date, sender, msgid, irt, refs, subj, nsubj, hint, lid, marks, to, cc, bcc = row
            if subj is not None:
                subj = strings.setdefault(subj, subj)
            yield (
                mid,
                date,
                emails[sender] if sender is not None else None,
                recipients(to),
                recipients(cc),
                recipients(bcc),
                msgid,
                irt,
                refs or None,
                subj,
                nsubj,
                hint,
                lid,
                marks or None,
            )


def load_messages(
    conn: sqlite3.Connection,
    until: datetime | None = None,
    addresses: Mapping[int, tuple[str, str]] | None = None,
) -> tuple[MessageRecord, ...]:
    """Messages dated up to ``until`` (all of them when None), oldest first."""
    return tuple(MessageStream(conn, until, addresses))


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
    *,
    stream: bool = False,
) -> History:
    """The whole history the engine needs, as seen at ``until``.

    Messages dated after ``until`` are not loaded. Events are loaded when they start before
    ``events_until`` (default: ``until``); pass the end of the local day to see today's meetings.
    With ``stream`` the messages are a :class:`MessageStream` (read while the engine runs).
    """
    addresses = load_addresses(conn)
    ev_cut = events_until if events_until is not None else until
    messages = MessageStream(conn, until, addresses)
    return History(
        messages=messages if stream else tuple(messages),
        events=load_events(conn, ev_cut, addresses),
        names={e: n for e, n in addresses.values() if n},
    )


_make_message = _frozen_factory(MessageRecord)
