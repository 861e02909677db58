"""The facts behind each signal kind: one frozen dataclass per shape of facts.

The engine builds them where it emits a signal (``signals.py``, ``book.py``); the digest words a
suggestion from their attributes (``digests/kinds.py``, type-checked), and ``to_json`` is what
``keepwarm digest --json`` and ``keepwarm person --why --json`` print under ``"facts"`` (the
field order is the key order).

Rules that keep a forgotten fact loud:

- every field is required (no defaults): the engine sets each one where it builds the signal,
  and a field added here fails at the constructor (and in mypy) until it does;
- ``kinds`` names the signal kinds that carry the type, and :class:`~.model.Signal` refuses
  facts of another kind; ``tests/test_digest_suggest.py`` checks that every signal kind has a
  type here and that each kind's phrasing takes exactly the types the engine builds for it.

Values are JSON-friendly: timestamps are ISO strings, sequences are tuples (lists in JSON). Kinds
with facts in common share a base (:class:`OwedFacts`, :class:`MeetingFacts`) whose fields come
first, as in the JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from keepwarm.digests.cadence.model import SignalKind


@dataclass(frozen=True)
class Facts:
    """The base of every facts type (it has no facts of its own)."""

    kinds: ClassVar[tuple[SignalKind, ...]] = ()

    def to_json(self) -> dict[str, object]:
        """The facts as JSON values, keyed by field (or by the field's ``json`` name)."""
        return {
            f.metadata.get("json", f.name): _json_value(getattr(self, f.name)) for f in fields(self)
        }


def _json_value(value: object) -> object:
    return list(value) if isinstance(value, tuple) else value


# -- replies --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class OwedFacts(Facts):
    """A reply owed, either way: how many threads wait, and the one the suggestion is about."""

    count: int  # threads waiting for an answer
    oldest: str  # ISO time of the message waiting (of the thread below)
    days_waiting: int
    subject: str | None
    message: int  # the store id of the message waiting for an answer


@dataclass(frozen=True)
class ReplyOwedFacts(OwedFacts):
    """A reply I owe: the thread that waits longest for an answer, and how we usually answer."""

    kinds: ClassVar[tuple[SignalKind, ...]] = ("reply_owed",)

    asks: bool  # its subject asks something
    waiting_messages: int  # their messages in a row without an answer
    shared_with: int  # other people it was addressed to
    answer_rate: float | None  # share of their recent messages I answered
    relationship: bool  # two-way contact before
    their_messages: int
    my_messages: int
    asked_me: int  # their direct messages to me where my own mail is visible ...
    i_answered: int  # ... and how many of those I answered


@dataclass(frozen=True)
class AwaitingReplyFacts(OwedFacts):
    """A reply owed to me: my oldest unanswered thread with them."""

    kinds: ClassVar[tuple[SignalKind, ...]] = ("awaiting_reply",)

    i_asked: int  # my direct messages to them where their answer would be visible ...
    they_answered: int  # ... and how many of those they answered


# -- rhythm, balance, stage -----------------------------------------------------------------------
@dataclass(frozen=True)
class RhythmFacts(Facts):
    """A tie past its own rhythm."""

    kinds: ClassVar[tuple[SignalKind, ...]] = ("fading", "dormant")

    days_since_contact: int | None
    typical_gap_days: float | None
    expected_gap_days: float
    overdue_ratio: float | None
    contact_days: int
    paused_days: int  # out-of-office days not counted
    tier: str | None
    last_contact: str | None  # ISO time
    topic: str | None  # the latest subject worth talking about


@dataclass(frozen=True)
class BalanceFacts(Facts):
    """Who starts the conversations, in the reciprocity window."""

    kinds: ClassVar[tuple[SignalKind, ...]] = ("lopsided_me", "lopsided_them")

    initiated_by_me: int
    initiated_by_them: int
    window_days: int
    answered_by_me: float | None
    answered_by_them: float | None
    balance: float


@dataclass(frozen=True)
class NurtureFacts(Facts):
    """A young or growing tie."""

    kinds: ClassVar[tuple[SignalKind, ...]] = ("new", "growing")

    first_contact: str  # ISO time of the first two-way contact
    contact_days: int
    strength: float
    topic: str | None


# -- meetings -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MeetingFacts(Facts):
    """A small meeting (of the calendar, or a touch the user recorded with ``done``)."""

    event_id: int  # negative: a touch recorded with ``done``
    title: str | None
    start: str  # ISO time


@dataclass(frozen=True)
class MeetingTodayFacts(MeetingFacts):
    """A small meeting today, with what to prepare."""

    kinds: ClassVar[tuple[SignalKind, ...]] = ("meeting_today",)

    local_time: str  # HH:MM in the user's zone
    people: tuple[str, ...] = field(metadata={"json": "with"})  # everyone in it (person keys)
    days_since_contact: int | None
    replies_owed_by_me: int
    replies_owed_to_me: int
    topic: str | None


@dataclass(frozen=True)
class MeetingFollowupFacts(MeetingFacts):
    """Yesterday's small meeting, with no mail since."""

    kinds: ClassVar[tuple[SignalKind, ...]] = ("meeting_followup",)

    people: tuple[str, ...] = field(metadata={"json": "with"})


# -- occasions ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BirthdayFacts(Facts):
    kinds: ClassVar[tuple[SignalKind, ...]] = ("occasion_birthday",)

    date: str  # MM-DD
    days_until: int


@dataclass(frozen=True)
class FirstContactAnniversaryFacts(Facts):
    """A year (or more) since the first conversation, to the day."""

    kinds: ClassVar[tuple[SignalKind, ...]] = ("occasion_anniversary",)

    first_contact: str  # ISO date
    years: int


@dataclass(frozen=True)
class BookAnniversaryFacts(Facts):
    """An anniversary the address book records (a wedding, a founding)."""

    kinds: ClassVar[tuple[SignalKind, ...]] = ("occasion_anniversary",)

    date: str  # MM-DD
    days_until: int
    source: str  # "address book"


@dataclass(frozen=True)
class DomainChangeFacts(Facts):
    """A new role, seen in mail: they write from a new organisation's domain."""

    kinds: ClassVar[tuple[SignalKind, ...]] = ("occasion_job_change",)

    new_domain: str
    old_domain: str
    since: str  # ISO time of the first mail from the new domain


@dataclass(frozen=True)
class BookJobChangeFacts(Facts):
    """A new role, seen in the address book."""

    kinds: ClassVar[tuple[SignalKind, ...]] = ("occasion_job_change",)

    new_org: str
    old_org: str
    title: str | None
    since: str  # ISO date of the change
    source: str  # "address book"


@dataclass(frozen=True)
class GreetingFacts(Facts):
    kinds: ClassVar[tuple[SignalKind, ...]] = ("occasion_greeting",)

    greeting: str
    date: str  # MM-DD
    days_until: int
    tier: str


# -- introductions --------------------------------------------------------------------------------
@dataclass(frozen=True)
class IntroduceFacts(Facts):
    """Two strong ties who share a topic and have never been together on mail or in a meeting;
    the signal is for the stronger, ``other`` is the second."""

    kinds: ClassVar[tuple[SignalKind, ...]] = ("introduce",)

    other: str  # person key
    topic: str
    tiers: tuple[str | None, str | None]


FACT_TYPES: tuple[type[Facts], ...] = (  # the types signals carry (each with its kinds)
    ReplyOwedFacts,
    AwaitingReplyFacts,
    RhythmFacts,
    BalanceFacts,
    NurtureFacts,
    MeetingTodayFacts,
    MeetingFollowupFacts,
    BirthdayFacts,
    FirstContactAnniversaryFacts,
    BookAnniversaryFacts,
    DomainChangeFacts,
    BookJobChangeFacts,
    GreetingFacts,
    IntroduceFacts,
)


def types_of(kind: str) -> tuple[type[Facts], ...]:
    """The facts types a signal of ``kind`` may carry."""
    return tuple(t for t in FACT_TYPES if kind in t.kinds)


def other_of(facts: Facts) -> str | None:
    """The second person a signal names (an introduction's), if any."""
    return facts.other if isinstance(facts, IntroduceFacts) else None
