"""A small, fixed network report for digest tests (shaped like the engine's NetworkReport)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

from keepwarm.daemon.config import Config, loads
from keepwarm.digests.cadence.facts import Facts, types_of

NOW = datetime(2026, 11, 24, 6, 30, tzinfo=UTC)  # Tue 24 Nov, 07:30 in Berlin

# A blank value by a facts field's declared type (the string annotation's first member).
_BLANKS = {"int": 0, "float": 0.0, "bool": False, "str": "", "tuple": ()}


def blank(cls: type[Facts], **given: Any) -> Facts:
    """Facts of type ``cls``: the fields ``given``, the rest blank (None where it may be None)."""
    rest = {
        f.name: None if "None" in str(f.type) else _BLANKS[str(f.type).split("[")[0]]
        for f in fields(cls)
        if f.name not in given
    }
    return cls(**rest, **given)


def facts_of(kind: str, **given: Any) -> Facts:
    """Facts of ``kind`` as the engine types them (:func:`blank`): the first of the kind's facts
    types that has every given field."""
    for cls in types_of(kind):
        if set(given) <= {f.name for f in fields(cls)}:
            return blank(cls, **given)
    raise TypeError(f"no facts type of {kind} has the fields {sorted(given)}")


@dataclass(frozen=True)
class FakeSignal:
    """A signal as the engine's (``facts`` may be given as a dict of the fields that matter)."""

    kind: str
    person_key: str
    urgency: float
    facts: Facts | dict[str, Any] = field(default_factory=dict)
    because: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if isinstance(self.facts, dict):
            object.__setattr__(self, "facts", facts_of(self.kind, **self.facts))


@dataclass(frozen=True)
class FakePerson:
    key: str
    name: str
    tier: str | None
    strength: float
    addresses: tuple[str, ...] = ()


@dataclass(frozen=True)
class FakeTier:
    name: str
    size: int
    members: int
    warm: int
    fading: int
    dormant: int = 0


@dataclass(frozen=True)
class FakeWarning:
    text: str


@dataclass(frozen=True)
class FakeReport:
    people: tuple[FakePerson, ...]
    tiers: tuple[FakeTier, ...]
    warnings: tuple[FakeWarning, ...]
    signals: tuple[FakeSignal, ...]


def person(key: str, name: str, tier: str | None, strength: float) -> FakePerson:
    return FakePerson(key, name, tier, strength, (key,))


PEOPLE = (
    person("maria@example.com", "Maria Lopez", "inner", 9.0),
    person("tom@example.com", "Tom Becker", "inner", 8.0),
    person("ana@example.org", "Ana Silva", "close", 5.0),
    person("ben@example.net", "Ben Okafor", "close", 4.5),
    person("carol@example.com", "Carol Ng", "active", 2.0),
    person("dev@example.com", "Dev Patel", "active", 1.5),
    person("erin@example.com", "Erin Walsh", "wider", 0.6),
    person("finn@example.com", "Finn Berg", None, 0.2),
)

SIGNALS = (
    FakeSignal(
        "reply_owed",
        "maria@example.com",
        0.9,
        {"subject": "Budget review", "days_waiting": 4},
        ["her message of Fri 20 Nov is unanswered", "you usually reply within a day"],
    ),
    FakeSignal(
        "fading",
        "tom@example.com",
        0.8,
        {"topic": "Q3 launch", "days_since_contact": 47, "typical_gap_days": 14},
        ["last contact 47 days ago", "you usually talk every 2 weeks"],
    ),
    FakeSignal(
        "meeting_today",
        "ana@example.org",
        0.7,
        {
            "title": "Roadmap review",
            "start": "2026-11-24T13:00:00+00:00",
            "topic": "Pricing",
        },
        ["last contact 12 days ago"],
    ),
    FakeSignal(
        "introduce",
        "ana@example.org",
        0.5,
        {"other": "ben@example.net", "topic": "payments"},
        ["both strong ties", "never on a thread together"],
    ),
    FakeSignal(
        "lopsided_them",
        "ben@example.net",
        0.6,
        {"initiated_by_them": 5, "initiated_by_me": 1},
        ["Ben started 5 of the last 6 threads"],
    ),
    FakeSignal(
        "occasion_job_change",
        "erin@example.com",
        0.6,
        {"new_domain": "acme.io"},
        ["now writes from acme.io (was example.com)"],
    ),
    FakeSignal(
        "fading",
        "erin@example.com",
        0.9,
        {"days_since_contact": 200},
        ["last contact 200 days ago"],
    ),
    FakeSignal(
        "growing",
        "carol@example.com",
        0.5,
        {"topic": "Data contracts"},
        ["4 conversations in the last 6 weeks"],
    ),
    FakeSignal(
        "reply_owed",
        "finn@example.com",
        0.5,
        {"subject": "Quick question", "days_waiting": 3},
        ["his message of Sat 21 Nov is unanswered"],
    ),
)

TIERS = (
    FakeTier("inner", 5, 4, 3, 1),
    FakeTier("close", 15, 9, 8, 1),
    FakeTier("active", 50, 31, 25, 4, 2),
    FakeTier("wider", 150, 162, 120, 30, 12),
)


def report(signals: tuple[FakeSignal, ...] = SIGNALS, **kw: Any) -> FakeReport:
    return FakeReport(
        people=kw.get("people", PEOPLE),
        tiers=kw.get("tiers", TIERS),
        warnings=kw.get(
            "warnings", (FakeWarning("Your wider tier holds 162 people; it has room for 150."),)
        ),
        signals=signals,
    )


def builder(rep: FakeReport | None = None) -> Any:
    chosen = rep or report()

    def build(config: Config, store: Any, now: datetime) -> FakeReport:
        return chosen

    return build


def config(tmp_path: Any, extra: str = "") -> Config:
    text = f"""
[me]
name = "Jane Doe"
addresses = ["jane@example.com"]
timezone = "Europe/Berlin"
[store]
path = "{tmp_path}/kw.db"
[delivery]
outbox = "{tmp_path}/outbox"
{extra}
"""
    return loads(text)


RECORDED: list[Any] = []


class RecordingDelivery:
    """A Delivery registered through daemon.digest_job.DELIVERIES in tests."""

    method = "recording"

    def delivered(self, local_date: Any, message_id: str) -> bool | None:
        return None

    def deliver(self, message: Any, *, local_date: Any, html: str, before_data: Any) -> str:
        before_data()
        RECORDED.append(message)
        return "recorded"

    def close(self) -> None:
        pass


def recording_delivery(config: Config) -> RecordingDelivery:
    return RecordingDelivery()
