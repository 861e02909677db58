"""What the mailbox shows: the days the user's own mail and their incoming mail are visible.

Real mailboxes have gaps: an archive whose Sent folder covers only some months, an account whose
Sent folder is not synced, a holiday. Silence in the data is not silence in life, so the engine
judges only what it can see: a reply is owed only if the user is seen writing to anyone in the
weeks around its arrival (else their Sent mail is not in what keepwarm reads); a follow-up only if mail is seen coming in after it left; a tie fades only if the user is
seen writing to others through most of the silence; a relationship is new only if the user's mail
was visible long before it began; give and take is weighed only over weeks with mail both ways.
A complete mailbox is covered everywhere, and these checks change nothing there.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

DAY = 86400
WEEK = 7 * DAY
COVERED_SHARE = 0.5  # a span is covered when this share of its weeks shows the user writing

I64 = NDArray[np.int64]


@dataclass(frozen=True, eq=False)
class Coverage:
    """Sorted epoch seconds of every message the user sent (``sent``) and received
    (``received``), touches or not: list and bulk mail in the inbox show it is synced too."""

    sent: I64  # the distinct UTC days with mail I sent, sorted
    received: I64  # likewise, mail I received
    last_sent: int  # epoch seconds of the latest of each (-1: none)
    last_received: int
    first: int | None  # epoch seconds of my first sent mail
    _sent_weeks: _Weeks = field(init=False, repr=False)
    _received_weeks: _Weeks = field(init=False, repr=False)
    _sent_days: _DayCounts = field(init=False, repr=False)
    _received_days: _DayCounts = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_sent_weeks", _Weeks(self.sent))
        object.__setattr__(self, "_received_weeks", _Weeks(self.received))
        object.__setattr__(self, "_sent_days", _DayCounts(self.sent))
        object.__setattr__(self, "_received_days", _DayCounts(self.received))

    @classmethod
    def of(cls, sent: I64, received: I64) -> Coverage:
        return cls(
            distinct(sent // DAY)[0],
            distinct(received // DAY)[0],
            int(sent.max()) if len(sent) else -1,
            int(received.max()) if len(received) else -1,
            int(sent.min()) if len(sent) else None,
        )

    @property
    def first_sent(self) -> int | None:
        return self.first

    def sent_since(self, when: I64) -> NDArray[np.bool_]:
        """For each time in ``when``: did the user send anything from then on (up to now)?"""
        seen: NDArray[np.bool_] = when <= self.last_sent
        return seen

    def received_after(self, when: I64) -> NDArray[np.bool_]:
        """For each time in ``when``: did any mail come in later (up to now)?"""
        seen: NDArray[np.bool_] = when < self.last_received
        return seen

    def sent_near(self, when: I64, span: int) -> NDArray[np.bool_]:
        """For each time in ``when``: did the user send anything on the days within ``span``?"""
        return self._sent_days.any_between((when - span) // DAY, (when + span) // DAY)

    def received_near(self, when: I64, span: int) -> NDArray[np.bool_]:
        """For each time in ``when``: did any mail come in on the days within ``span``?"""
        return self._received_days.any_between((when - span) // DAY, (when + span) // DAY)

    def covered(self, start: int, end: int, *, received: bool = False) -> bool:
        """Is the user seen writing through most of ``[start, end)`` (and, with ``received``,
        mail seen coming in through most of it too)?"""
        ok = self._sent_weeks.share(start, end) >= COVERED_SHARE
        return ok and (not received or self._received_weeks.share(start, end) >= COVERED_SHARE)


DENSE_MAX = 1 << 20  # a range of integers this long is looked up in an array of its own


def distinct(values: I64) -> tuple[I64, I64]:
    """The distinct ``values`` (sorted) and, for each value, its position among them: marked in
    an array over their range when it is short (days), else sorted (``np.unique``)."""
    if len(values) and int(values.max()) - int(values.min()) < DENSE_MAX:
        low = int(values.min())
        present = np.zeros(int(values.max()) - low + 1, dtype=np.bool_)
        present[values - low] = True
        position = np.cumsum(present, dtype=np.int64) - 1
        found: I64 = np.flatnonzero(present) + low
        return found, position[values - low]
    unique, inverse = np.unique(values, return_inverse=True)
    return unique, inverse


class _DayCounts:
    """Sorted distinct days, ready to say for a million spans at once whether a span holds one
    of them: a count of the days up to each day of their range, looked up at both ends of each
    span (two gathers from a small array instead of two binary searches per span). A range too
    long for that (a stray date centuries away) falls back to the binary searches."""

    __slots__ = ("_base", "_counts", "_days")

    MAX_RANGE = 1 << 20  # days (about 2,900 years)

    def __init__(self, days: I64) -> None:
        self._days = days
        self._base = int(days[0]) if len(days) else 0
        size = int(days[-1]) - self._base + 1 if len(days) else 0
        self._counts: NDArray[np.int32] | None = None
        if size <= self.MAX_RANGE:
            # _counts[i]: how many of the days are before day _base + i
            counts = np.zeros(size + 1, dtype=np.int32)
            counts[days - self._base + 1] = 1
            self._counts = np.cumsum(counts, dtype=np.int32)

    def any_between(self, first: I64, last: I64) -> NDArray[np.bool_]:
        """For each ``i``: is one of the days in ``[first[i], last[i]]``?"""
        counts = self._counts
        if counts is None:
            lo = np.searchsorted(self._days, first, side="left")
            hi = np.searchsorted(self._days, last, side="right")
            found: NDArray[np.bool_] = hi > lo
            return found
        top = len(counts) - 1
        upto = counts[np.clip(last - (self._base - 1), 0, top)]
        before = counts[np.clip(first - self._base, 0, top)]
        seen: NDArray[np.bool_] = upto > before
        return seen


class _Weeks:
    """Sorted distinct days, ready to say in constant time what share of the weeks of a span have
    one of them (the engine asks this of every person, so no numpy call per question).

    Weeks are counted from the span's first day, so a week boundary falls on the days ``d`` with
    ``(d - r) % 7 == 0``, ``r`` being that first day modulo 7: for each of the 7 residues,
    ``_changes[r][i]`` counts the boundaries crossed between ``days[0]`` and ``days[i]``.
    """

    __slots__ = ("_changes", "_days")

    def __init__(self, days: I64) -> None:
        self._days: list[int] = days.tolist()
        self._changes: list[list[int]] = []
        for r in range(7):
            week = (days - r) // 7
            crossed = np.zeros(len(days), dtype=np.int64)
            crossed[1:] = np.cumsum(week[1:] != week[:-1])
            self._changes.append(crossed.tolist())

    def share(self, start: int, end: int) -> float:
        """The share of the weeks of ``[start, end)`` (epoch seconds) with one of the days."""
        if end <= start:
            return 1.0
        first = start // DAY
        lo = bisect_left(self._days, first)
        hi = bisect_left(self._days, (end - 1) // DAY + 1)
        changes = self._changes[first % 7]
        weeks = 1 + changes[hi - 1] - changes[lo] if hi > lo else 0
        return min(1.0, weeks / max(1, -(-(end - start) // WEEK)))
