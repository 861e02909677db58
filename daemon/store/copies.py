"""Copies of one message that an archive filed twice with its Date moved by whole hours.

Some exports (Lotus Notes and PST conversions among them) file a message in two folders, one copy
with its Date shifted by a whole number of hours (a time-zone bug: 9 or 10 h is common), under a
different Message-ID. Such a copy would count as a second interaction and could even sort after
its own answer. A *copy key* (the To+Cc set and the normalized subject) finds the candidates; a
stored message is the same message when its date differs by a whole number of half hours, at most
:data:`MAX_SHIFT` apart, and the senders agree. The earliest date is kept: with one copy right and
the other shifted, the earlier of the two never sorts after an answer to it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

MAX_SHIFT = 14 * 3600  # the widest time-zone error seen between two copies
SHIFT_UNIT = 1800  # whole half hours (zones such as +05:30 shift by halves)


def copy_key(recipients: Iterable[str], norm_subject: str | None) -> str | None:
    """The key shared by shifted copies, or None when a message has too little to go on."""
    people = sorted(set(recipients))
    if not people or not norm_subject:
        return None
    text = "\x1f".join([",".join(people), norm_subject])
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=12).hexdigest()


def shifted(a: int, b: int) -> bool:
    """Are two dates (epoch seconds) the same instant seen through a time-zone error?"""
    d = abs(a - b)
    return 0 < d <= MAX_SHIFT and d % SHIFT_UNIT == 0


def same_sender(a: int | None, b: int | None) -> bool:
    """Senders (address ids) agree when equal or when one copy lost its sender."""
    return a is None or b is None or a == b
