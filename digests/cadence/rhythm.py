"""Strength, rhythm and overdue ratio for one person, from their ledger. Pure arithmetic.

* strength: each two-way contact day's weight, halved every ``half_life`` of age, summed; one-way
  days count a quarter; then raised by up to 50% for reciprocity (messages both ways) and up to
  50% for the length of the history (a year or more).
* rhythm: the median of the last :data:`RECENT_GAPS` gaps between *episodes* of contact: a
  contact day more than :data:`EPISODE_GAP_DAYS` after the previous one begins an episode (a
  two-day exchange is one contact, not a 1-day rhythm; a weekly status thread that never ends is
  weekly contact, not one conversation); while there are fewer than :data:`FULL_GAPS` gaps it is
  blended with a prior (the pinned tier's cadence, else the tier cadence nearest to what was
  observed), and never below :data:`MIN_GAP_DAYS`.
* overdue ratio: days since the last contact day, minus days the user was out of office, over
  the expected gap. It only depends on the history and grows with silence.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import math
from dataclasses import dataclass
from statistics import median

from keepwarm.digests.cadence.ledger import Ledger

RECENT_GAPS = 8
FULL_GAPS = 5
MIN_GAP_DAYS = 7.0
ACTIVE_MIN_DAYS = 4  # a tie needs this many contact days to be "really active" (can fade)
EPISODE_GAP_DAYS = 2  # contact days closer than this belong to one episode
MATURE_SPAN_DAYS = 56  # a rhythm seen over at least eight weeks ...
MATURE_EPISODES = 6  # ... and this many episodes of contact (a learnt rhythm) can fade
LENGTH_FULL_DAYS = 365


@dataclass(frozen=True, slots=True)
class Rhythm:
    contact_days: tuple[int, ...]
    typical_gap: float | None
    expected_gap: float
    days_since: int | None
    paused_days: int
    silence_days: int | None
    overdue_ratio: float | None
    episodes: int = 0  # episodes of contact so far (see the module docstring)

    @property
    def mature(self) -> bool:
        """A tie with a rhythm of its own: enough episodes of contact over at least two months
        (a fortnight's busy project is not a relationship that fades when the project ends)."""
        days = self.contact_days
        return (
            len(days) >= ACTIVE_MIN_DAYS
            and days[-1] - days[0] >= MATURE_SPAN_DAYS
            and self.episodes >= MATURE_EPISODES
        )


class Decay(dict[int, float]):
    """A contact day's weight factor by its age in days, ``0.5 ** (age / half_life)``, worked
    out once per age (the engine asks it of every contact day of every person, twice)."""

    def __init__(self, half_life_days: float) -> None:
        super().__init__()
        self.half_life_days = half_life_days

    def __missing__(self, age: int) -> float:
        got = self[age] = math.pow(0.5, age / self.half_life_days)
        return got


def strengths(led: Ledger, today: int, then: int, decay: Decay) -> tuple[float, float]:
    """The strength as of ``today`` and as of ``then`` (an earlier day): time-decayed contact,
    boosted by reciprocity and history length; zero before any touch. Each total adds its
    contact days' decayed weights in day order."""
    now_base = then_base = 0.0
    first = now_last = then_last = None
    for d, w in sorted(led.days.items()):
        if d <= today:
            now_base += w * decay[today - d]
            now_last = d
            if first is None:
                first = d
        if d <= then:
            then_base += w * decay[then - d]
            then_last = d
    if led.one_way_days:
        now_one = then_one = 0.0
        for d, w in sorted(led.one_way_days.items()):
            if d not in led.days:
                if d <= today:
                    now_one += w * decay[today - d]
                if d <= then:
                    then_one += w * decay[then - d]
        now_base += 0.25 * now_one
        then_base += 0.25 * then_one
    if now_base <= 0.0 and then_base <= 0.0:
        return 0.0, 0.0
    ins, outs = led.msgs_in + led.meetings, led.msgs_out + led.meetings
    recip = min(ins, outs) / max(ins, outs) if max(ins, outs) else 0.0
    return (
        _boosted(now_base, recip, first, now_last),
        _boosted(then_base, recip, first, then_last),
    )


def _boosted(base: float, recip: float, first: int | None, last: int | None) -> float:
    """The decayed contact ``base``, raised for reciprocity and for the span of contact days."""
    if base <= 0.0:
        return 0.0
    span = last - first if first is not None and last is not None else 0
    length = min(1.0, span / LENGTH_FULL_DAYS)
    return round(base * (1 + 0.5 * recip) * (1 + 0.5 * length), 6)


@functools.lru_cache(maxsize=4096)  # few distinct typical gaps: each person asks
def prior_cadence(
    typical: float | None, cadences: tuple[float, ...], pinned: float | None
) -> float:
    """The cadence to lean on while a rhythm is still being learnt."""
    if pinned is not None:
        return pinned
    if not cadences:
        return 30.0
    if typical is None:
        return cadences[-1]
    t = max(typical, 1.0)
    return min(cadences, key=lambda c: (abs(math.log(c / t)), c))


def rhythm(
    days: dict[int, float],
    today: int,
    ooo_days: tuple[int, ...],
    cadences: tuple[float, ...],
    pinned: float | None,
) -> Rhythm:
    """The person's rhythm and how overdue they are, ``today`` being the local day number."""
    ordered = sorted(days)
    if ordered and ordered[-1] > today:
        ordered = [d for d in ordered if d <= today]
    cdays = tuple(ordered)
    begun = episodes(cdays)
    gaps = [b - a for a, b in itertools.pairwise(begun)]
    recent = gaps[-RECENT_GAPS:]
    typical = float(median(recent)) if recent else None
    prior = prior_cadence(typical, cadences, pinned)
    w = min(1.0, len(recent) / FULL_GAPS)
    learnt = (w * typical + (1 - w) * prior) if typical is not None else prior
    expected = max(MIN_GAP_DAYS, learnt)
    if not cdays:
        return Rhythm(cdays, None, expected, None, 0, None, None, len(begun))
    last = cdays[-1]
    since = today - last
    paused = bisect.bisect_right(ooo_days, today) - bisect.bisect_right(ooo_days, last)
    silence = max(0, since - paused)
    return Rhythm(
        cdays, typical, expected, since, paused, silence, round(silence / expected, 4), len(begun)
    )


def episodes(contact_days: tuple[int, ...]) -> list[int]:
    """The days episodes of contact began (see the module docstring)."""
    return [
        d
        for i, d in enumerate(contact_days)
        if i == 0 or d - contact_days[i - 1] > EPISODE_GAP_DAYS
    ]


def human_gap(days: float) -> str:
    """ "5 days", "3 weeks", "2 months" """
    if days < 7:
        n = max(1, round(days))
        return f"{n} day{'s' if n != 1 else ''}"
    if days < 60:
        n = round(days / 7)
        return f"{n} week{'s' if n != 1 else ''}"
    n = round(days / 30.4)
    return f"{n} month{'s' if n != 1 else ''}"


def every(days: float) -> str:
    """ "every day", "every week", "every 3 weeks" """
    gap = human_gap(days)
    return "every " + (gap[2:] if gap.startswith("1 ") else gap)
