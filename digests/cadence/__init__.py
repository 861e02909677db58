"""The cadence engine: pure functions from an interaction history and ``now`` to a report.

Entry point: :func:`analyze` (``history``, ``directory``, ``settings``, ``now``) ->
:class:`NetworkReport`. See ``docs/how-it-works.md`` for the rules in plain words.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from keepwarm.digests.cadence.engine import analyze, read_ahead

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
    "read_ahead",
]


def __getattr__(name: str) -> Any:
    """``analyze`` and ``read_ahead`` are imported on first use: the engine (and numpy) loads only for commands that
    run it, not for every command that names the report's types."""
    if name in ("analyze", "read_ahead"):
        from keepwarm.digests.cadence import engine

        return getattr(engine, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
