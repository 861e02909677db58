"""The engine's public types: its inputs (settings, the people directory) and its report.

Everything here is plain data. The daemon converts its config into :class:`EngineSettings` and its
identity result into a :class:`Directory`; the digest reads :class:`NetworkReport`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from typing import Literal, get_args

from keepwarm.core.specs import EngineKnobs
from keepwarm.core.specs import GreetingSpec as GreetingSpec
from keepwarm.core.specs import TierSpec as TierSpec
from keepwarm.digests.cadence.facts import Facts, other_of

Stage = Literal["new", "growing", "established", "fading", "dormant"]
PersonKind = Literal["person", "list", "robot", "role", "excluded", "self"]
SignalKind = Literal[
    "reply_owed",
    "awaiting_reply",
    "fading",
    "dormant",
    "lopsided_me",
    "lopsided_them",
    "new",
    "growing",
    "meeting_followup",
    "meeting_today",
    "occasion_birthday",
    "occasion_anniversary",
    "occasion_job_change",
    "occasion_greeting",
    "introduce",
]
SIGNAL_KINDS: tuple[SignalKind, ...] = get_args(SignalKind)


# -- inputs ---------------------------------------------------------------------------------------
DEFAULT_TIERS: tuple[TierSpec, ...] = (
    TierSpec("inner", 5, timedelta(weeks=2)),
    TierSpec("close", 15, timedelta(weeks=4)),
    TierSpec("active", 50, timedelta(weeks=12)),
    TierSpec("wider", 150, timedelta(weeks=26)),
)


@dataclass(frozen=True)
class Organisation:
    """Where a person works, by the user's address book; ``previous`` and ``since`` (UTC epoch)
    when the address book saw the organisation change."""

    name: str
    title: str | None = None
    previous: str | None = None
    since: int | None = None


@dataclass(frozen=True)
class EngineSettings(EngineKnobs):
    """Every knob of the engine: the ``[engine]`` section's (:class:`EngineKnobs`, with their
    defaults), then the user's tiers, greetings, dates and zone."""

    tiers: tuple[TierSpec, ...] = DEFAULT_TIERS
    greetings: tuple[GreetingSpec, ...] = ()
    birthdays: Mapping[str, str] = field(default_factory=dict)  # address -> "MM-DD"
    anniversaries: Mapping[str, str] = field(default_factory=dict)  # address -> "MM-DD"
    organisations: Mapping[str, Organisation] = field(default_factory=dict)  # address -> work
    timezone: str = "UTC"  # the user's zone: "today", "yesterday" and contact days are local


@dataclass(frozen=True)
class PersonInfo:
    """One identity cluster, as the engine needs it."""

    key: str
    name: str
    addresses: tuple[str, ...]
    kind: PersonKind = "person"


@dataclass(frozen=True)
class Directory:
    """Who is who: people by key, each address's person, and the user's own addresses.

    An address missing from ``person_of`` is its own unnamed person (key = the address), so the
    engine can run on raw history; identity normally maps every stored address.
    """

    people: Mapping[str, PersonInfo]
    person_of: Mapping[str, str]
    self_addresses: frozenset[str]

    def key_of(self, address: str) -> str:
        return self.person_of.get(address, address)

    def kind_of(self, key: str) -> PersonKind:
        info = self.people.get(key)
        return info.kind if info is not None else "person"


# -- output ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Signal:
    """Something worth attention today, with the facts behind it.

    ``urgency`` is in 0..1. ``facts`` holds the numbers structurally, typed per kind (see
    :mod:`.facts`); ``because`` says the same in plain English, one fact per line.
    """

    kind: SignalKind
    person_key: str
    urgency: float
    facts: Facts
    because: list[str]

    def __post_init__(self) -> None:
        if self.kind not in self.facts.kinds:
            raise TypeError(
                f"{type(self.facts).__name__} are not the facts of a {self.kind} signal"
            )


# How a signal's ``because`` says that replies are owed (daemon/decisions.py takes the line out
# again when a ``done`` answered them).
YOU_OWE = "you owe them"
THEY_OWE = "they owe you"


@dataclass(frozen=True)
class PersonReport:
    """Everything the engine knows about one person, as of ``now``."""

    key: str
    name: str
    addresses: tuple[str, ...]
    tier: str | None  # None: an acquaintance (no cadence nudges)
    pinned: bool
    strength: float
    stage: Stage
    two_way: bool  # at least one conversation in both directions, or a small meeting
    contact_days: int  # days with two-way contact, all time
    typical_gap_days: float | None  # median of recent gaps between contact days
    expected_gap_days: float  # the gap the overdue ratio divides by (rhythm blended with tier)
    days_since_contact: int | None
    overdue_ratio: float | None
    last_contact: datetime | None
    first_contact: datetime | None
    initiated_by_me: int  # threads (and meetings) in the reciprocity window
    initiated_by_them: int
    messages_in: int  # their messages to me in the window
    messages_out: int  # my messages to them in the window
    answered_by_me: float | None  # share of their messages I answered
    answered_by_them: float | None  # share of my messages they answered
    my_reply_hours: float | None  # median time I take to answer them
    their_reply_hours: float | None
    meetings_by_me: int
    meetings_by_them: int
    replies_owed_by_me: int
    replies_owed_to_me: int
    balance: float  # -1 they carry the relationship .. 0 even .. +1 I carry it
    last_subjects: tuple[str, ...]
    occasions: tuple[str, ...]


@dataclass(frozen=True)
class TierUsage:
    name: str
    size: int
    cadence_days: float
    members: int
    pinned: int
    warm: int  # not fading or dormant
    fading: int
    dormant: int


@dataclass(frozen=True)
class NetworkWarning:
    """``kind``: over_capacity | tier_over_capacity | drift. ``text`` is a sentence for the user."""

    kind: str
    text: str
    person_key: str | None = None
    facts: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class MeetingReport:
    """A meeting with at least one person from the network (for prep and follow-up)."""

    event_id: int
    start: datetime
    end: datetime
    title: str | None
    people: tuple[str, ...]  # person keys, not me
    organised_by_me: bool


@dataclass(frozen=True)
class NetworkReport:
    now: datetime
    people: tuple[PersonReport, ...]  # strongest first
    tiers: tuple[TierUsage, ...]
    acquaintances: int
    warnings: tuple[NetworkWarning, ...]
    meetings_today: tuple[MeetingReport, ...]
    meetings_yesterday: tuple[MeetingReport, ...]
    signals: tuple[Signal, ...]  # most urgent first

    def person(self, key: str) -> PersonReport | None:
        return self._by_key.get(key)

    def signals_for(self, key: str) -> tuple[Signal, ...]:
        """The signals about ``key``: theirs, and the introductions that name them as the other."""
        return self._signals_by_key.get(key, ())

    # Indexes built on first use (a report of 20,000 people is looked up once per person): cached
    # in the instance's __dict__, outside the dataclass fields (asdict and == never see them).
    @cached_property
    def _by_key(self) -> dict[str, PersonReport]:
        return {p.key: p for p in reversed(self.people)}  # the first of a key wins, as before

    @cached_property
    def _signals_by_key(self) -> dict[str, tuple[Signal, ...]]:
        found: dict[str, list[Signal]] = {}
        for s in self.signals:
            for key in {s.person_key, other_of(s.facts)}:
                if key is not None:
                    found.setdefault(key, []).append(s)
        return {k: tuple(v) for k, v in found.items()}
