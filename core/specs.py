"""The engine's knobs, the user's tiers and greetings: as the config declares them and the engine
reads them (one type each, and one default each, for ``daemon/config.py`` and
``digests/cadence/``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True)
class TierSpec:
    """One Dunbar layer: at most ``size`` people, who should hear from you every ``cadence``.

    ``members`` pins people: exact addresses, ``@domain`` (and its subdomains) or shell globs.
    """

    name: str
    size: int
    cadence: timedelta
    members: tuple[str, ...] = ()


@dataclass(frozen=True)
class GreetingSpec:
    """A seasonal greeting on ``date`` (``MM-DD``) for the people in ``tiers`` (empty: all)."""

    name: str
    date: str
    tiers: tuple[str, ...] = ()


@dataclass(frozen=True)
class EngineKnobs:
    """The ``[engine]`` section: every knob and its default (the engine's ``EngineSettings`` adds
    the tiers, greetings, dates and zone; docs/how-it-works.md says what each knob does)."""

    half_life: timedelta = timedelta(days=90)
    max_attendees: int = 8
    max_recipients: int = 10
    fading_factor: float = 2.0
    dormant_factor: float = 8.0
    reciprocity_window: timedelta = timedelta(days=180)
    reply_grace: timedelta = timedelta(days=2)
    reply_max_age: timedelta = timedelta(days=30)
    outreach_wait: timedelta = timedelta(days=7)
    max_growing: int = 3
    new_window: timedelta = timedelta(days=60)
    lopsided_share: float = 0.8
    lopsided_min_threads: int = 5


ENGINE_DEFAULTS = EngineKnobs()


@dataclass(frozen=True)
class DigestKnobs:
    """The ``[digest]`` section's knobs that ranking reads, with their defaults."""

    max_items: int = 7  # suggestions a day at most
    cooldown: timedelta = timedelta(days=14)  # someone shown is not shown again before this


DIGEST_DEFAULTS = DigestKnobs()
