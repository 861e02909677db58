"""The user's tiers and greetings, as the config declares them and the engine reads them (one
type each, for ``daemon/config.py`` and ``digests/cadence/``)."""

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
