"""The cadence engine: pure functions from an interaction history and ``now`` to a report.

Entry point: :func:`analyze` (``history``, ``directory``, ``settings``, ``now``) ->
:class:`NetworkReport`. See ``docs/how-it-works.md`` for the rules in plain words.
"""

from __future__ import annotations

from keepwarm.digests.cadence.engine import analyze
from keepwarm.digests.cadence.model import (
    DEFAULT_TIERS,
    SIGNAL_KINDS,
    Directory,
    EngineSettings,
    GreetingSpec,
    MeetingReport,
    NetworkReport,
    NetworkWarning,
    Organisation,
    PersonInfo,
    PersonKind,
    PersonReport,
    Signal,
    SignalKind,
    Stage,
    TierSpec,
    TierUsage,
)

__all__ = [
    "DEFAULT_TIERS",
    "SIGNAL_KINDS",
    "Directory",
    "EngineSettings",
    "GreetingSpec",
    "MeetingReport",
    "NetworkReport",
    "NetworkWarning",
    "Organisation",
    "PersonInfo",
    "PersonKind",
    "PersonReport",
    "Signal",
    "SignalKind",
    "Stage",
    "TierSpec",
    "TierUsage",
    "analyze",
]
