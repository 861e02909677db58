"""Strength, rhythm and overdue ratio of each person, from their ledger. Pure arithmetic.

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

import functools
import itertools
import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from keepwarm.digests.cadence.ledger import Ledger

I64 = NDArray[np.int64]
F64 = NDArray[np.float64]

RECENT_GAPS = 8
FULL_GAPS = 5
MIN_GAP_DAYS = 7.0
ACTIVE_MIN_DAYS = 4  # a tie needs this many contact days to be "really active" (can fade)
EPISODE_GAP_DAYS = 2  # contact days closer than this belong to one episode
MATURE_SPAN_DAYS = 56  # a rhythm seen over at least eight weeks ...
MATURE_EPISODES = 6  # ... and this many episodes of contact (a learnt rhythm) can fade
LENGTH_FULL_DAYS = 365


class Rhythm(NamedTuple):
    """A person's rhythm (see the module docstring). A named tuple: the engine makes one per
    person (18,000 on the 1M bench store), a third of the cost of a frozen dataclass."""

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


def all_strengths(
    ledgers: Sequence[Ledger], today: int, then: int, decay: Decay, days: Days | None = None
) -> list[tuple[float, float]]:
    """:func:`strengths` of every ledger, to the last bit, with numpy: each person's decayed
    weights are still added one day after another in day order (the people side by side), the
    same float operations follow element by element, and only the rounding is Python's.
    ``days``: the ledgers' :class:`Days`, when known."""
    two = days if days is not None else Days([led.days for led in ledgers])
    one = Days([led.one_way_days for led in ledgers])
    one.drop(two)  # a day both ways counts once, as a two-way day
    now_base, now_n = two.decayed(today, decay)
    then_base, then_n = two.decayed(then, decay)
    now_base += 0.25 * one.decayed(today, decay)[0]  # (+ 0.0: unchanged)
    then_base += 0.25 * one.decayed(then, decay)[0]
    ins = np.fromiter((led.msgs_in + led.meetings for led in ledgers), np.int64, len(ledgers))
    outs = np.fromiter((led.msgs_out + led.meetings for led in ledgers), np.int64, len(ledgers))
    most = np.maximum(ins, outs)
    recip = np.minimum(ins, outs) / np.where(most > 0, most, 1)  # 0.0 where there is none
    now_v = _boosted_all(now_base, recip, two, now_n, now_n)
    then_v = _boosted_all(then_base, recip, two, now_n, then_n)
    six = itertools.repeat(6)  # (a base of 0.0 is a value of 0.0, rounded: as strengths gives)
    return list(zip(map(round, now_v.tolist(), six), map(round, then_v.tolist(), six), strict=True))


def _boosted_all(base: F64, recip: F64, days: Days, first_n: I64, last_n: I64) -> F64:
    """:func:`_boosted` before its rounding, for everyone: ``first_n`` and ``last_n`` count the
    days up to the first's and the last's horizon (the first is the earliest counted day)."""
    day = days.day
    if not len(day):
        return base * (1 + 0.5 * recip) * (1 + 0.5 * np.zeros(len(base)))
    first = day[np.minimum(days.start, len(day) - 1)]
    last = day[np.maximum(days.start + last_n - 1, 0)]
    span = np.where((first_n > 0) & (last_n > 0), last - first, 0)
    length = np.minimum(1.0, span / LENGTH_FULL_DAYS)
    boosted: F64 = base * (1 + 0.5 * recip) * (1 + 0.5 * length)
    return np.where(base > 0.0, boosted, 0.0)


class Days:
    """Every person's days (of a ``{day: weight}`` dict each), in day order, one person after
    another: ``day`` and ``weight`` from ``start[i]`` for ``length[i]`` are person ``i``'s."""

    def __init__(self, dicts: Sequence[dict[int, float]]) -> None:
        n = len(dicts)
        self.length: I64 = np.fromiter(map(len, dicts), np.int64, n)
        total = int(self.length.sum())
        self.start: I64 = np.cumsum(self.length) - self.length
        self.day: I64 = np.fromiter(itertools.chain.from_iterable(dicts), np.int64, total)
        self.weight: F64 = np.fromiter(
            itertools.chain.from_iterable(d.values() for d in dicts), np.float64, total
        )
        self.who: I64 = np.repeat(np.arange(n, dtype=np.int64), self.length)
        if total > 1:
            same = self.who[1:] == self.who[:-1]
            late = same & (self.day[1:] <= self.day[:-1])
            if late.any():  # some dicts are not in day order: sort those people's days
                unsorted = np.zeros(n, dtype=bool)
                unsorted[self.who[1:][late]] = True
                rows = np.flatnonzero(unsorted[self.who])
                order = rows[np.lexsort((self.day[rows], self.who[rows]))]
                self.day[rows], self.weight[rows] = self.day[order], self.weight[order]

    def drop(self, other: Days) -> None:
        """Weigh nothing (0.0) on a day that is a day of the same person in ``other``."""
        if not len(self.day) or not len(other.day):
            return
        low = min(int(self.day.min()), int(other.day.min()))
        span = max(int(self.day.max()), int(other.day.max())) - low + 1
        theirs = other.who * span + (other.day - low)  # ascending: people, then days in order
        mine = self.who * span + (self.day - low)
        at = np.minimum(np.searchsorted(theirs, mine), len(theirs) - 1)
        self.weight[theirs[at] == mine] = 0.0

    def upto(self, day: int) -> I64:
        """How many of each person's days are on or before ``day``."""
        return np.bincount(self.who[self.day <= day], minlength=len(self.length))

    def decayed(self, as_of: int, decay: Decay) -> tuple[F64, I64]:
        """Each person's weights of the days up to ``as_of``, times their decay by age, added
        in day order; and how many days that is."""
        day = self.day
        kept = day <= as_of
        terms = np.zeros(len(day))
        if kept.any():
            age = as_of - day[kept]
            oldest = int(age.max())
            if oldest <= 4 * len(age) + 10_000:  # a table of every age up to the oldest
                table = np.array([decay[a] for a in range(oldest + 1)], dtype=np.float64)
                factor = table[age]
            else:
                ages, where = np.unique(age, return_inverse=True)
                factor = np.array([decay[a] for a in ages.tolist()], dtype=np.float64)[where]
            terms[kept] = self.weight[kept] * factor
        count = np.bincount(self.who[kept], minlength=len(self.length))
        return _sum_in_order(terms, self.start, self.length), count


def _sum_in_order(terms: F64, start: I64, length: I64) -> F64:
    """Each run's sum (run ``i``: ``length[i]`` terms from ``start[i]``), added one term after
    another from 0.0 as a Python loop would (``np.add.reduceat`` adds in another order): the
    runs side by side, longest first, one position at a time."""
    n = len(length)
    total = np.zeros(n)
    if not n:
        return total
    longest_first = np.argsort(-length, kind="stable")
    starts, lengths = start[longest_first], length[longest_first]
    # still running at position k: the runs longer than k (a prefix, longest first)
    running = n - np.cumsum(np.bincount(lengths, minlength=int(lengths[0]) + 1))
    sums = np.zeros(n)
    for k in range(int(lengths[0])):
        m = int(running[k])
        sums[:m] += terms[starts[:m] + k]
    total[longest_first] = sums
    return total


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


def all_rhythms(
    days: Days,
    today: int,
    ooo_days: tuple[int, ...],
    cadences: tuple[float, ...],
    pinned: Sequence[float | None],
) -> list[Rhythm]:
    """:func:`rhythm` of every person of ``days`` (``pinned``: each one's pinned cadence), to
    the last bit: numpy finds the episodes and the median gaps, and works the same float
    operations as :func:`rhythm` element by element (only the final rounding is Python's)."""
    n = len(days.length)
    upto = days.upto(today)
    day, who = days.day, days.who
    begins = np.ones(len(day), dtype=bool)  # a person's first day, or after a gap: an episode
    begins[1:] = (day[1:] - day[:-1] > EPISODE_GAP_DAYS) | (who[1:] != who[:-1])
    begins &= day <= today
    n_begun = np.bincount(who[begins], minlength=n)
    typical, n_gaps = _recent_median_gaps(day[begins], who[begins], n_begun)
    known = n_gaps > 0
    typicals: list[float | None] = [
        t if k else None for t, k in zip(typical.tolist(), known.tolist(), strict=True)
    ]
    prior = np.array(
        [prior_cadence(t, cadences, p) for t, p in zip(typicals, pinned, strict=True)],
        dtype=np.float64,
    )
    w = np.minimum(1.0, n_gaps / FULL_GAPS)
    learnt = np.where(known, w * typical + (1 - w) * prior, prior)
    expected = np.maximum(MIN_GAP_DAYS, learnt)
    last = day[np.maximum(days.start + upto - 1, 0)] if len(day) else np.zeros(n, np.int64)
    since = today - last
    away = np.asarray(ooo_days, dtype=np.int64)
    paused = int(np.searchsorted(away, today, side="right")) - np.searchsorted(
        away, last, side="right"
    )
    silence = np.maximum(0, since - paused)
    ratio = silence / expected
    # the same values made by C loops (map), then the people without contact days fixed
    all_days = tuple(day.tolist())
    contact = map(
        all_days.__getitem__, map(slice, days.start.tolist(), (days.start + upto).tolist())
    )
    since_, paused_ = since.tolist(), paused.tolist()
    silence_, ratio_ = silence.tolist(), list(map(round, ratio.tolist(), itertools.repeat(4)))
    for i in np.flatnonzero(upto == 0).tolist():
        since_[i], paused_[i], silence_[i], ratio_[i] = None, 0, None, None
    return list(
        map(
            Rhythm,
            contact,
            typicals,
            expected.tolist(),
            since_,
            paused_,
            silence_,
            ratio_,
            n_begun.tolist(),
        )
    )


def _recent_median_gaps(begun: I64, who: I64, n_begun: I64) -> tuple[F64, I64]:
    """Per person, the median of the last :data:`RECENT_GAPS` gaps between the days their
    episodes began (``begun``, person by person, in order), as ``statistics.median`` gives it;
    and how many gaps that is (0: no median)."""
    n = len(n_begun)
    n_gaps = np.minimum(np.maximum(n_begun - 1, 0), RECENT_GAPS)
    same = who[1:] == who[:-1]
    gap, gap_who = (begun[1:] - begun[:-1])[same], who[1:][same]
    # a gap's place counted from the person's last gap: keep the last RECENT_GAPS
    from_end = (np.cumsum(np.maximum(n_begun - 1, 0)) - 1)[gap_who] - np.arange(len(gap))
    keep = from_end < RECENT_GAPS
    table = np.full((n, RECENT_GAPS), np.iinfo(np.int64).max, dtype=np.int64)
    table[gap_who[keep], from_end[keep]] = gap[keep]
    table.sort(axis=1)
    rows = np.arange(n)
    half = n_gaps // 2
    upper = table[rows, np.minimum(half, RECENT_GAPS - 1)]
    lower = table[rows, np.maximum(half - 1, 0)]
    odd = n_gaps % 2 == 1
    median_gap = np.where(odd, upper.astype(np.float64), (lower + upper) / 2)
    return np.where(n_gaps > 0, median_gap, 0.0), n_gaps


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
