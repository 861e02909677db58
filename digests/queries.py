"""What the engine reads, as plain frozen dataclasses: messages, events, the :class:`History`.

The engine (:mod:`keepwarm.digests.cadence`) never touches the database: it takes a
:class:`History`, which the daemon reads from the store (``keepwarm.daemon.store.history``) and
tests build from records. Times are kept as UTC epoch seconds (ints) because a year of mail is
hundreds of thousands of records and a ``datetime`` per record costs time and memory; the
``when`` properties give aware datetimes for display.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, NamedTuple, Protocol, TypeAlias, cast

from keepwarm.core.records import Attendee as Attendee  # the connectors' type, without names
from keepwarm.core.threadkeys import COLUMNS as THREAD_KEY_COLUMNS
from keepwarm.core.threadkeys import thread_keys
from keepwarm.core.vocabulary import ROLE_BCC as ROLE_BCC
from keepwarm.core.vocabulary import ROLE_CC as ROLE_CC
from keepwarm.core.vocabulary import ROLE_TO as ROLE_TO

if TYPE_CHECKING:  # numpy is imported only where the engine runs
    import numpy as np
    from numpy.typing import NDArray


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


# The messages as the engine reads them in bulk (:meth:`MessageSource.chunks`): numbers only, one
# sequence per column. ``sender`` is an address id (an index into :attr:`MessageSource.emails`) or
# -1; ``listed`` is 1 when the message has a List-Id; ``n_recipients`` counts its distinct To, Cc
# and Bcc addresses. The keys that are only compared, never shown
# (Message-ID, In-Reply-To, References, thread id, normalized subject) come as the stored 64-bit
# hashes of :mod:`keepwarm.core.threadkeys`: a million strings would cost more than the rest.
MESSAGE_COLUMNS = ("id", "date", "sender", "listed", "n_recipients", *THREAD_KEY_COLUMNS)
Packed: TypeAlias = "Sequence[int] | NDArray[np.int64]"  # recipients, see pack_recipient
CHUNK = 4096  # rows per chunk: big enough to amortise the calls, small enough to stay in cache


class MessageChunk(NamedTuple):
    """Some messages, as columns: one sequence of numbers per name of :data:`MESSAGE_COLUMNS`
    (lists of ints or int64 arrays, all the same length); and the stored ``markers`` strings
    (space separated) of those that have any, with their ids (``marked``)."""

    columns: Sequence[Packed]
    marked: Packed
    markers: Sequence[str]


def pack_recipient(message: int, role: int, address: int, stride: int) -> int:
    """One To/Cc/Bcc row of a message as one integer (the bulk form of
    :meth:`MessageSource.recipients`): ``(message * 4 + role) * stride + address``, where
    ``stride`` is ``len(emails)``. One number a row reads twice as fast as three."""
    return (message * 4 + role) * stride + address


class MessageSource(Protocol):
    """Messages as the engine reads them: in chunks of rows, recipients packed in integers.

    Two implementations: ``MessageStream`` (the store, in ``keepwarm.daemon.store.history``) and
    :class:`RecordMessages` (records in memory, as in tests); the engine reads both the same way.
    """

    @property
    def emails(self) -> Sequence[str]:
        """Address id -> address (``""`` for ids that are not used)."""
        ...

    def chunks(self, until: int | None = None) -> Iterator[MessageChunk]:
        """Every message once, in no particular order; those dated after ``until`` (epoch
        seconds) may be left out."""
        ...

    def recipients(self) -> Iterator[Packed]:
        """Chunks of the To, Cc and Bcc rows of the messages, each :func:`pack_recipient`-ed
        (a list of ints or a one-dimensional int64 array)."""
        ...

    def subjects(self, ids: Sequence[int]) -> dict[int, str | None]:
        """The subjects of the messages with these ids (read on demand: only a few are shown)."""
        ...


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
    attendees: tuple[Attendee, ...] = ()
    attendees_omitted: bool = False
    title: str | None = None

    @property
    def when(self) -> datetime:
        return datetime.fromtimestamp(self.start, UTC)


@dataclass(frozen=True, slots=True)
class History:
    """Everything the engine reads: messages and events (any order), display names by address.

    ``messages`` is a tuple of records (tests) or a :class:`MessageSource` read from the store.
    """

    messages: Iterable[MessageRecord] = ()
    events: tuple[EventRecord, ...] = ()
    names: Mapping[str, str] = field(default_factory=dict)


class RecordMessages:
    """:class:`MessageRecord` objects in memory as a :class:`MessageSource`.

    A record repeated under one id counts once (the last one wins), as a re-read store row would.
    """

    def __init__(self, records: Iterable[MessageRecord]) -> None:
        unique = {m.id: m for m in records}
        ids: dict[str, int] = {}
        emails: list[str] = [""]

        def aid(email: str) -> int:
            got = ids.get(email)
            if got is None:
                got = ids[email] = len(emails)
                emails.append(email)
            return got

        columns: list[list[int]] = [[] for _name in MESSAGE_COLUMNS]
        markers: list[str] = []  # of each row ("" for none)
        recipients: list[tuple[int, int, int]] = []
        for m in unique.values():
            refs = " ".join(m.refs) or None
            row = (
                m.id,
                m.date,
                aid(m.sender) if m.sender is not None else -1,
                int(bool(m.list_id)),
                len({*m.to, *m.cc, *m.bcc}),
                *thread_keys(m.message_id, m.in_reply_to, refs, m.thread_hint, m.norm_subject),
            )
            for column, value in zip(columns, row, strict=True):
                column.append(value)
            markers.append(" ".join(sorted(m.markers)))
            for role, addrs in ((ROLE_TO, m.to), (ROLE_CC, m.cc), (ROLE_BCC, m.bcc)):
                for a in dict.fromkeys(addrs):  # the store keeps an address once per role
                    recipients.append((m.id, role, aid(a)))
        self._emails = emails
        self._columns = columns
        self._markers = markers
        self._subjects = {m.id: m.subject for m in unique.values()}
        self._recipients = [pack_recipient(*r, len(emails)) for r in recipients]

    @property
    def emails(self) -> Sequence[str]:
        return self._emails

    def chunks(self, until: int | None = None) -> Iterator[MessageChunk]:
        for i in range(0, len(self._markers), CHUNK):
            part = [column[i : i + CHUNK] for column in self._columns]
            rows = [
                (m, mk) for m, mk in zip(part[0], self._markers[i : i + CHUNK], strict=True) if mk
            ]
            yield MessageChunk(part, [m for m, _mk in rows], [mk for _m, mk in rows])

    def recipients(self) -> Iterator[Packed]:
        for i in range(0, len(self._recipients), CHUNK):
            yield self._recipients[i : i + CHUNK]

    def subjects(self, ids: Sequence[int]) -> dict[int, str | None]:
        return {i: self._subjects[i] for i in ids}


def message_source(messages: Iterable[MessageRecord] | MessageSource) -> MessageSource:
    """The messages of a :class:`History` as a :class:`MessageSource`."""
    if isinstance(messages, RecordMessages) or hasattr(messages, "chunks"):
        return cast(MessageSource, messages)  # the store's stream, or records already converted
    return RecordMessages(messages)
