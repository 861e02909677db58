"""The connector contract: normalized records, batches, the Connector protocol and its errors.

Connectors do I/O and normalization only. They never touch SQL, never print and never compute
scores. A connector turns a source (Gmail, Graph, IMAP, a maildir ...) into a stream of
:class:`Batch` objects. Each batch carries records plus an opaque cursor; the daemon commits the
records and the cursor in one transaction, so a batch is the unit of progress and of resumption.

Vocabulary
----------
account
    The configured account name (``[[accounts]] name``). Every record carries it.
provider_id
    The record's id inside its account: a Gmail message id, a maildir file key, an IMAP
    ``folder/uidvalidity/uid`` triple, an event id. ``(account, provider_id)`` is unique.
cursor
    An opaque string that lets the connector resume after the last committed batch.
    ``None`` means "start from scratch" (a full, bounded sync). A batch with ``keep_cursor``
    leaves the stored cursor unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, Literal, Protocol

from keepwarm.core.errors import KeepwarmError
from keepwarm.core.records import Attendee as Attendee  # one type for connectors and engine
from keepwarm.core.records import ResponseStatus as ResponseStatus

MessageRole = Literal["from", "to", "cc", "bcc", "reply_to", "sender"]
EventStatus = Literal["confirmed", "tentative", "cancelled"]
EventType = Literal["default", "birthday", "outOfOffice", "focusTime", "workingLocation", "other"]


@dataclass(frozen=True, slots=True)
class Address:
    """One mailbox: a normalized address (see :func:`headers.normalize_address`) and a display name."""

    email: str
    name: str = ""

    def __reduce__(self) -> tuple[type[Address], tuple[str, str]]:
        return Address, (self.email, self.name)  # pickles twice as fast (worker processes)


@dataclass(frozen=True, slots=True)
class MessageMeta:
    """Metadata of one mail message. Never carries a body.

    ``date`` is timezone-aware UTC. ``markers`` lists the automation / bulk evidence found in the
    headers or labels, as short strings: ``list-id``, ``list-unsubscribe``, ``precedence:bulk``,
    ``auto-submitted:auto-replied``, ``return-path-null``, ``x-auto-response-suppress``,
    ``category:promotions``, ``inference:other``, ``keepwarm-digest`` ... Identity and the engine
    decide what they mean; connectors only report them.
    """

    account: str
    provider_id: str
    date: datetime
    sender: Address | None
    to: tuple[Address, ...] = ()
    cc: tuple[Address, ...] = ()
    bcc: tuple[Address, ...] = ()
    reply_to: tuple[Address, ...] = ()
    message_id: str | None = None
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()
    subject: str | None = None
    thread_hint: str | None = None  # provider thread id (Gmail threadId, Graph conversationId)
    folder: str | None = None
    labels: tuple[str, ...] = ()
    list_id: str | None = None
    markers: tuple[str, ...] = ()
    date_from_provider: bool = False  # True when the header date was unusable
    invalid_addresses: int = 0  # address entries dropped as invalid (the store counts them)

    def __reduce__(self) -> tuple[type[MessageMeta], tuple[Any, ...]]:
        return MessageMeta, tuple(getattr(self, f) for f in _MESSAGE_FIELDS)


_MESSAGE_FIELDS = tuple(f.name for f in fields(MessageMeta))


@dataclass(frozen=True, slots=True)
class EventMeta:
    """Metadata of one calendar event occurrence. ``start``/``end`` are UTC; no description."""

    account: str
    provider_id: str
    start: datetime
    end: datetime
    all_day: bool = False
    ical_uid: str | None = None
    organizer: Address | None = None
    attendees: tuple[Attendee, ...] = ()
    attendees_omitted: bool = False
    my_response: ResponseStatus = "unknown"
    status: EventStatus = "confirmed"
    recurring: bool = False
    event_type: EventType = "default"
    title: str | None = None


DeletionReason = Literal["deleted", "vanished", "spam", "replaced", "unselected"]


@dataclass(frozen=True, slots=True)
class ContactMeta:
    """What keepwarm keeps of one address-book contact: names, addresses, dates, work, groups.

    Never phone numbers, postal addresses, photos or notes. ``emails`` are normalized, the
    preferred one first. ``birthday`` and ``anniversary`` are ``YYYY-MM-DD``, or ``--MM-DD``
    when the year is not known. ``groups`` are the names of the contact's groups (labels).
    """

    account: str
    provider_id: str
    name: str = ""
    emails: tuple[str, ...] = ()
    birthday: str | None = None
    anniversary: str | None = None
    organisation: str | None = None
    title: str | None = None
    groups: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Deletion:
    """A record that disappeared from its source, and why. The store applies the history rule:

    ``deleted``     deleted or moved away at the source (trash, expunge, a file removed). A
                    message stays in the history (what happened, happened) unless the user
                    asked to forget deleted mail; an event is removed (it did not take place).
    ``vanished``    its whole folder, mailbox or calendar file disappeared: kept, and the
                    connector says so in ``Batch.notices``.
    ``spam``        the user or the provider marked it as spam: removed.
    ``replaced``    a fresh read of the same source replaces it (a changed file): removed.
    ``unselected``  the account no longer reads that part of the source (the config): removed.
    """

    account: str
    provider_id: str
    kind: Literal["message", "event", "contact"] = "message"
    reason: DeletionReason = "deleted"


def kept_notice(what: str, n: int | None, noun: str = "message") -> str:
    """The notice for a folder, mailbox or calendar file that vanished at its source:
    ``folder Old is gone from the server; its 3 messages stay in your history``."""
    if n is None:
        return f"{what}; its {noun}s stay in your history"
    return f"{what}; its {n:,} {noun}{'' if n == 1 else 's'} stay{'s' if n == 1 else ''} in your history"


@dataclass(frozen=True, slots=True)
class Progress:
    """How far a sync has come: ``done`` of an estimated ``total`` units (messages or events)."""

    done: int
    total: int | None = None
    phase: str = ""


@dataclass(slots=True)
class Batch:
    """Records plus the cursor that is valid once they are stored.

    ``reset`` says the source is read again whole (an mbox a mail client compacted): every
    record of this account that the new read does not bring again counts as deleted at the
    source. ``skipped`` counts records that could not be used, by reason ("unparseable date": 3).
    ``notices`` are sentences for the user about the source itself ("folder Archive is gone from
    the server ..."), shown by ``keepwarm status`` and in the digest. ``spam_message_ids`` are
    Message-IDs the source now files as spam: a deletion of one of them is a spam report.
    ``keep_cursor`` says the batch leaves the stored cursor as it is (``cursor`` is then
    ignored): a connector whose cursor grows with the source writes it only now and then, and
    after a restart reads again what it yielded since, which the store's dedup makes harmless.
    """

    messages: list[MessageMeta] = field(default_factory=list)
    events: list[EventMeta] = field(default_factory=list)
    contacts: list[ContactMeta] = field(default_factory=list)
    deletions: list[Deletion] = field(default_factory=list)
    cursor: str | None = None
    progress: Progress | None = None
    reset: bool = False
    skipped: dict[str, int] = field(default_factory=dict)
    notices: list[str] = field(default_factory=list)
    spam_message_ids: list[str] = field(default_factory=list)
    keep_cursor: bool = False

    def __len__(self) -> int:
        return len(self.messages) + len(self.events) + len(self.contacts) + len(self.deletions)


class Connector(Protocol):
    """What every source implements.

    ``sync(cursor)`` yields batches. ``cursor`` is the cursor of the last committed batch of this
    account, or ``None``. The generator must be safe to abandon at any yield (the daemon may stop
    between batches) and to resume from any cursor it yielded, without losing or duplicating
    records. It raises one of the errors below; anything else is a bug.
    """

    kind: str
    account: str

    def sync(self, cursor: str | None) -> Iterator[Batch]: ...


class ConnectorError(KeepwarmError):
    """Base of all connector errors. ``str()`` must be a sentence a user can act on; ``fix`` is
    what to do when the sentence alone does not say it (a command to run, a key to change)."""


class TransientError(ConnectorError):
    """Retry later: 5xx, 429, timeouts, dropped connections. ``retry_after`` in seconds if known."""

    def __init__(self, message: str, retry_after: float | None = None, fix: str = "") -> None:
        super().__init__(message, fix)
        self.retry_after = retry_after


class AuthRequired(ConnectorError):
    """The credentials no longer work; the user must re-authorise. ``fix`` is the command to run."""


class CursorExpired(ConnectorError):
    """The stored cursor is no longer valid; the daemon clears it and runs a full sync."""


class SourceError(ConnectorError):
    """A permanent problem with the source that the user must fix (missing path, bad folder).

    ``fix`` is what to do, when the message alone does not say it (an admin to ask, a console
    page to open); the daemon shows it with the account in ``status``, ``doctor`` and the digest.
    """
