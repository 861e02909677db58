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

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

WEEK = 7 * 86400
COVERED_SHARE = 0.5  # a span is covered when this share of its weeks shows the user writing

I64 = NDArray[np.int64]


@dataclass(frozen=True, eq=False)
class Coverage:
    """Sorted epoch seconds of every message the user sent (``sent``) and received
    (``received``), touches or not: list and bulk mail in the inbox show it is synced too."""

    sent: I64
    received: I64

    @classmethod
    def of(cls, sent: I64, received: I64) -> Coverage:
        return cls(np.sort(sent), np.sort(received))

    @property
    def first_sent(self) -> int | None:
        return int(self.sent[0]) if len(self.sent) else None

    def sent_since(self, when: I64) -> NDArray[np.bool_]:
        """For each time in ``when``: did the user send anything from then on (up to now)?"""
        return np.searchsorted(self.sent, when, side="left") < len(self.sent)

    def sent_near(self, when: I64, span: int) -> NDArray[np.bool_]:
        """For each time in ``when``: did the user send anything within ``span`` of it?"""
        lo = np.searchsorted(self.sent, when - span, side="left")
        hi = np.searchsorted(self.sent, when + span, side="right")
        seen: NDArray[np.bool_] = hi > lo
        return seen

    def received_near(self, when: I64, span: int) -> NDArray[np.bool_]:
        """For each time in ``when``: did any mail come in within ``span`` of it?"""
        lo = np.searchsorted(self.received, when - span, side="left")
        hi = np.searchsorted(self.received, when + span, side="right")
        seen: NDArray[np.bool_] = hi > lo
        return seen

    def received_after(self, when: I64) -> NDArray[np.bool_]:
        """For each time in ``when``: did any mail come in later (up to now)?"""
        return np.searchsorted(self.received, when, side="right") < len(self.received)

    @staticmethod
    def _share(dates: I64, start: int, end: int) -> float:
        """The share of the weeks in ``[start, end)`` with one of ``dates`` in them."""
        if end <= start:
            return 1.0
        weeks = max(1, -(-(end - start) // WEEK))
        lo, hi = np.searchsorted(dates, [start, end])
        seen = np.unique((dates[lo:hi] - start) // WEEK)
        return min(1.0, len(seen) / weeks)

    def covered(self, start: int, end: int, *, received: bool = False) -> bool:
        """Is the user seen writing through most of ``[start, end)`` (and, with ``received``,
        mail seen coming in through most of it too)?"""
        ok = self._share(self.sent, start, end) >= COVERED_SHARE
        return ok and (not received or self._share(self.received, start, end) >= COVERED_SHARE)
