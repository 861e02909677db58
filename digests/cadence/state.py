"""The engine's working state, shared by the engine and the signal builders."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from keepwarm.digests.cadence.ledger import Clock, Ledger
from keepwarm.digests.cadence.model import Directory, EngineSettings, Stage
from keepwarm.digests.cadence.rhythm import Rhythm


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
