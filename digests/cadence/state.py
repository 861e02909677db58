"""The engine's working state, shared by the engine and the signal builders."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from zoneinfo import ZoneInfo

from keepwarm.digests.cadence.coverage import Coverage
from keepwarm.digests.cadence.ledger import DAY, Clock, Ledger
from keepwarm.digests.cadence.model import Directory, EngineSettings, Stage
from keepwarm.digests.cadence.rhythm import Rhythm

KNOWN_BEFORE_DAYS = 90  # a first contact is new only if my mail was seen this long before it


@dataclass(slots=True)
class Person:
    """The engine's working state for one person."""

    led: Ledger
    strength: float
    strength_then: float
    pinned: int | None
    rhythm: Rhythm
    tier: int | None = None
    tier_then: int | None = None
    stage: Stage = "established"


@dataclass(frozen=True, slots=True)
class Context:
    """What the signal builders need besides the people."""

    settings: EngineSettings
    directory: Directory
    clock: Clock
    today: int
    zone: ZoneInfo
    now: datetime
    history_start: int | None = None  # epoch of the earliest touch in the data, if any
    coverage: Coverage | None = None  # when the mailbox shows my mail (None: everywhere)
    my_domains: frozenset[str] = frozenset()  # organisation families of my own addresses
    my_surname: str | None = None  # people who share it are family, not professional ties
    local_today: date = field(init=False)  # the user's local date of ``clock.now``

    def __post_init__(self) -> None:
        object.__setattr__(self, "local_today", self.clock.local(self.clock.now).date())

    def covered(self, start: int, end: int, *, received: bool = False) -> bool:
        """Is my own mail visible through most of ``[start, end)`` (and, with ``received``, my
        incoming mail too)?"""
        return self.coverage is None or self.coverage.covered(start, end, received=received)

    def seen_since(self, start: int) -> bool:
        """Was my own mail visible through most of the quarter before ``start`` (so that a tie
        first seen then is really new, not the start of what the mailbox holds)?"""
        return self.covered(start - KNOWN_BEFORE_DAYS * DAY, start, received=True)
