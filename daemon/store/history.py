"""The engine's reads: the stored history as the records of :mod:`keepwarm.digests.queries`.

The engine (:mod:`keepwarm.digests.cadence`) never touches the database: the daemon builds its
:class:`~keepwarm.digests.queries.History` here. Times are kept as UTC epoch seconds (ints)
because a year of mail is hundreds of thousands of records and a ``datetime`` per record costs
time and memory.

``--as-of`` is honoured here: :func:`load_history` sees only messages dated up to ``until`` and
only events that *start* before ``events_until`` (the end of the local day, so that today's
meetings can be prepared for; the engine itself ignores events after ``now`` except for that).
"""

from __future__ import annotations

import itertools
import json
import operator
import sqlite3
import sys
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, cast

from keepwarm.core.records import Attendee, ResponseStatus
from keepwarm.core.threadkeys import COLUMNS as THREAD_KEY_COLUMNS
from keepwarm.core.vocabulary import ROLE_BCC, ROLE_CC, ROLE_TO
from keepwarm.digests.queries import (
    MESSAGE_COLUMNS,
    EventRecord,
    History,
    MessageChunk,
    MessageRecord,
    Packed,
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


_MESSAGE_SQL = f"""
    SELECT group_concat(id), group_concat(date), group_concat(ifnull(sender, -1)),
           group_concat(list_id IS NOT NULL), group_concat(n_recipients), {", ".join(f"group_concat({c})" for c in THREAD_KEY_COLUMNS)},
           group_concat(id) FILTER (WHERE markers IS NOT NULL),
           json_group_array(markers) FILTER (WHERE markers IS NOT NULL)
    FROM messages WHERE id BETWEEN ? AND ?"""
# One text of comma-separated numbers per column and range of message ids: SQLite writes them
# without Python's GIL and numpy parses them, several times as fast as a Python tuple per row.
# The markers (words, not numbers) come as one JSON array, with the ids of the messages that
# have any (most have none). Every date: a range is kept whole (blocks.py), and the dates up to
# the moment asked for are taken after.
_MESSAGE_RANGE = 1 << 17  # message ids per query (a few MB of text)
_RECORD_SQL = """
    SELECT id, date, sender, message_id, in_reply_to, refs, subject, norm_subject, thread_hint,
           list_id, markers
    FROM messages NOT INDEXED WHERE date <= ? ORDER BY date, id"""
_RECIPIENT_SQL = f"""
    SELECT group_concat((message * 4 + role) * ? + address, ',') FROM message_addresses
    WHERE message BETWEEN ? AND ? AND role IN ({ROLE_TO}, {ROLE_CC}, {ROLE_BCC})"""
# One text of comma-separated numbers per range of message ids: SQLite writes it and numpy parses
# it, twice as fast as a Python int and a tuple per row.
_RECIPIENT_RANGE = 1 << 18  # message ids per range (a few MB of text)
_SUBJECTS_SQL = """
    SELECT json_group_array(m.subject) FROM json_each(?) j LEFT JOIN messages m ON m.id = j.value"""
# The left table of a LEFT JOIN is always SQLite's outer loop: the subjects come in the order of
# the ids (a null for an id not stored), one rowid look-up each (fastest with the ids sorted).
_NO_LIMIT = 2**62
_MESSAGE_BOUNDS = "SELECT (SELECT min(id) FROM messages), (SELECT max(id) FROM messages)"
_RECIPIENT_BOUNDS = """SELECT (SELECT min(message) FROM message_addresses),
                              (SELECT max(message) FROM message_addresses)"""
# One min() or max() per query: SQLite then looks it up at one end of the key, where
# ``SELECT min(id), max(id)`` scans every row (0.1 s and 0.3 s on a million messages).


READERS = 2  # connections answering the bulk reads at once (one per core of a small machine)


def answers(
    conn: sqlite3.Connection, sql: str, params: Sequence[tuple[object, ...]]
) -> Iterator[tuple[Any, ...]]:
    """The one row ``sql`` answers for each of ``params``, in order.

    SQLite builds each answer without Python's GIL, so with a database file the queries run
    :data:`READERS` at a time, on read-only connections of their own in threads, while the
    caller works on the answers already in (a few queries ahead, not all: each answer is megabytes
    of text). Each connection reads what was committed when its query started: a write committed
    meanwhile (the daemon syncing) may show in later ranges and not in earlier ones, as it would
    have in a read one range after the other. In memory, inside a transaction of ``conn`` (its
    uncommitted rows are visible to it alone), or when a second connection cannot be opened, the
    queries run here, one after the other."""
    # a connection in the middle of a transaction reads what it wrote: only it can
    readers = [] if conn.in_transaction else _readers(conn, min(READERS, len(params)))
    if not readers:
        for p in params:
            yield conn.execute(sql, p).fetchone()
        return
    import queue  # threads only where a big read runs: not at every command's start
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    free: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()
    for r in readers:
        free.put(r)

    def ask(p: tuple[object, ...]) -> tuple[Any, ...]:
        reader = free.get()
        try:
            row: tuple[Any, ...] = reader.execute(sql, p).fetchone()
            return row
        finally:
            free.put(reader)

    try:
        with ThreadPoolExecutor(len(readers), thread_name_prefix="keepwarm-read") as pool:
            todo = iter(params)
            pending = deque(pool.submit(ask, p) for p in itertools.islice(todo, len(readers)))
            try:
                while pending:
                    row = pending.popleft().result()
                    nxt = next(todo, None)
                    if nxt is not None:
                        pending.append(pool.submit(ask, nxt))
                    yield row
            except BaseException:  # an error, Ctrl-C, or the caller stopped: stop the queries
                for r in readers:
                    r.interrupt()
                for f in pending:
                    f.cancel()
                raise
    finally:  # every thread is done (leaving the pool waits for them)
        for r in readers:
            r.close()


_MIN_RANGE = 1 << 13  # ids: a range smaller than this is not worth a query of its own


def _split(lo: int, hi: int, most: int) -> list[tuple[int, int]]:
    """``[lo, hi]`` in ranges of at most ``most`` ids, and at least :data:`READERS` of them when
    each still has :data:`_MIN_RANGE` ids (so that a mailbox of 100,000 messages is read on two
    cores too)."""
    n = max(-(-(hi - lo + 1) // most), min(READERS, (hi - lo + 1) // _MIN_RANGE), 1)
    size = -(-(hi - lo + 1) // n)
    return [(a, min(a + size - 1, hi)) for a in range(lo, hi + 1, size)]


def _readers(conn: sqlite3.Connection, n: int) -> list[sqlite3.Connection]:
    """``n`` read-only connections to the database file of ``conn`` (none when it has no file,
    ``n`` is below 2, or one cannot be opened)."""
    path = next((str(r[2]) for r in conn.execute("PRAGMA database_list") if r[1] == "main"), "")
    if n < 2 or not path:
        return []
    opened: list[sqlite3.Connection] = []
    try:
        for _ in range(n):
            reader = sqlite3.connect(path, check_same_thread=False, timeout=10)
            opened.append(reader)
            reader.execute("PRAGMA query_only=ON")
    except sqlite3.Error:
        for reader in opened:
            reader.close()
        return []
    return opened


def _parse_messages(row: tuple[Any, ...]) -> tuple[list[Any], Any, list[str]]:
    """The columns of one answer of :data:`_MESSAGE_SQL`, the ids of the messages with markers
    and their markers (empty columns when the range holds no message)."""
    import numpy as np

    *texts, marked, markers = row
    columns = [np.fromstring(t or "", dtype=np.int64, sep=",") for t in texts]
    ids = np.fromstring(marked or "", dtype=np.int64, sep=",")
    return columns, ids, json.loads(markers) if marked else []


def _parse_packed(row: tuple[Any, ...]) -> Any:
    import numpy as np

    return np.fromstring(row[0] or "", dtype=np.int64, sep=",")


class MessageStream:
    """The stored messages up to ``until``, read from the database each time they are asked for.

    The engine reads them in bulk (a :class:`~keepwarm.digests.queries.MessageSource`); iterating gives
    :class:`MessageRecord` objects, oldest first (for tools and tests, not for a million messages).
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
        emails: list[str] = [""] * (max(self.addresses, default=0) + 1)
        for i, (e, _n) in self.addresses.items():
            emails[i] = e
        self._emails = emails

    @property
    def emails(self) -> Sequence[str]:
        return self._emails

    def chunks(self, until: int | None = None) -> Iterator[MessageChunk]:
        """The messages up to ``until`` (the stream's own moment when None), a block of ids at a
        time (:mod:`keepwarm.daemon.store.blocks`: kept blocks are not read again)."""
        import numpy as np  # only the engine reads these in bulk

        from keepwarm.daemon.store import blocks

        if until is None:
            until = self.until if self.until is not None else _NO_LIMIT
        lo, hi = self.conn.execute(_MESSAGE_BOUNDS).fetchone()
        if lo is None:
            return
        pieces = blocks.pieces_of(lo, hi, lambda a, b: _split(a, b, _MESSAGE_RANGE))
        query = blocks.Query(_MESSAGE_SQL, lambda r: r, answers)
        for columns, marked, markers in blocks.message_blocks(
            self.conn, pieces, query, _parse_messages, len(MESSAGE_COLUMNS)
        ):
            if not len(columns[0]):
                continue
            date = columns[1]
            if int(date.max()) > until:  # the block holds every date: keep those up to until
                keep = date <= until
                if not keep.any():
                    continue
                at = np.searchsorted(columns[0], marked)
                kept_marks = keep[at]
                markers = [m for m, k in zip(markers, kept_marks.tolist(), strict=True) if k]
                marked = marked[kept_marks]
                columns = [c[keep] for c in columns]
            yield MessageChunk(columns, marked, markers)

    def recipients(self) -> Iterator[Packed]:
        from keepwarm.daemon.store import blocks

        lo, hi = self.conn.execute(_RECIPIENT_BOUNDS).fetchone()
        if lo is None:
            return
        stride = len(self._emails)
        pieces = blocks.pieces_of(lo, hi, lambda a, b: _split(a, b, _RECIPIENT_RANGE))
        query = blocks.Query(_RECIPIENT_SQL, lambda r: (stride, *r), answers)
        for packed in blocks.recipient_blocks(self.conn, pieces, query, _parse_packed, stride):
            if len(packed):
                yield packed

    def subjects(self, ids: Sequence[int]) -> dict[int, str | None]:
        """The subjects of these messages (None for a message without one or not stored): one
        query, its answer one JSON array in the order of ``ids``."""
        if not len(ids):
            return {}
        wanted = [int(i) for i in ids]
        text = self.conn.execute(_SUBJECTS_SQL, (json.dumps(wanted),)).fetchone()[0]
        return dict(zip(wanted, json.loads(text), strict=True))

    def __iter__(self) -> Iterator[MessageRecord]:
        roles: dict[int, dict[int, list[str]]] = {}
        stride = len(self._emails)
        for packed in itertools.chain.from_iterable(self.recipients()):
            head, aid = divmod(int(packed), stride)
            mid, role = divmod(head, 4)
            roles.setdefault(mid, {}).setdefault(role, []).append(self._emails[aid])
        until = self.until if self.until is not None else _NO_LIMIT
        for row in self.conn.execute(_RECORD_SQL, (until,)):
            mid, date, sender, msgid, irt, refs, subj, nsubj, hint, lid, marks = row
            got = roles.get(mid, {})
            yield MessageRecord(
                id=mid,
                date=date,
                sender=self._emails[sender] if sender is not None else None,
                to=tuple(sorted(got.get(ROLE_TO, ()))),
                cc=tuple(sorted(got.get(ROLE_CC, ()))),
                bcc=tuple(sorted(got.get(ROLE_BCC, ()))),
                message_id=msgid,
                in_reply_to=irt,
                refs=tuple(refs.split()) if refs else (),
                subject=subj,
                norm_subject=nsubj,
                thread_hint=hint,
                list_id=lid,
                markers=_markers(marks),
            )


_EMAIL = operator.attrgetter("email")


def load_events(
    conn: sqlite3.Connection,
    until: datetime | None = None,
    addresses: Mapping[int, tuple[str, str]] | None = None,
) -> tuple[EventRecord, ...]:
    """Events starting before ``until`` (all when None), oldest first, with their attendees."""
    addresses = load_addresses(conn) if addresses is None else addresses
    cut = _epoch(until)
    where, args = ("WHERE e.start < ?", (cut,)) if cut is not None else ("", ())
    attendees: dict[int, list[Attendee]] = {}
    # The same attendee (address, response, roles) comes back in many events: one frozen record
    # each, shared, rather than one per event (a calendar of 20,000 events has 70,000 rows).
    made: dict[tuple[Any, ...], Attendee] = {}
    for eid, *who in conn.execute(
        f"""SELECT a.event, a.address, a.response, a.organizer, a.optional, a.resource, a.is_self
            FROM event_attendees a JOIN events e ON e.id = a.event {where}""",
        args,
    ):
        key = tuple(who)
        got = made.get(key)
        if got is None:
            aid, resp, org, opt, res, me = who
            got = made[key] = Attendee(
                addresses[aid][0],
                response=cast(ResponseStatus, str(resp)),
                organizer=bool(org),
                optional=bool(opt),
                resource=bool(res),
                is_self=bool(me),
            )
        attendees.setdefault(eid, []).append(got)
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
                attendees=tuple(sorted(attendees.get(eid, ()), key=_EMAIL)),
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
