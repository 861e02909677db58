"""Identity's mail aggregates, counted with numpy from the columns the engine reads.

Identity (:mod:`keepwarm.daemon.identity`) judges each address by what it did: what it sent me
(all, bulk, automatic, direct; first and last), what it received from me (all, direct; first,
last, last direct), what it received from others (all, bulk) and whether it sent mail filed in my
Sent folders. These are counted here from :class:`~keepwarm.digests.cadence.touches.EveryMessage`,
the one read of the messages that the engine's own read makes at the same time, so a million
messages are read once, as numbers, rather than aggregated again by SQL (which took longer than
the read itself).

A message is *seen* when dated up to ``as_of`` and not one of keepwarm's own digests; *bulk* when
it has a List-Id or bulk markers; *automatic* by its markers; *direct* when neither and sent to at
most ``max_recipients`` addresses. *Mine* is mail from one of my addresses.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    from keepwarm.digests.cadence.touches import EveryMessage

ROLE_TO, ROLE_CC = 1, 2  # as packed (keepwarm.core.vocabulary)
SENT_FOLDER = " sent-folder "


@dataclass(frozen=True)
class MarkerClasses:
    """Which stored ``markers`` strings mean bulk, automatic, our own digest."""

    bulk: frozenset[str]
    auto: frozenset[str]
    digest: frozenset[str]


class Sent(NamedTuple):
    """What one address sent me (not from me): see :class:`~keepwarm.daemon.identity.AddressActivity`."""

    n: int
    bulk: int
    auto: int
    direct: int
    first: int
    last: int


class Received(NamedTuple):
    """What one address received from me."""

    n: int
    direct: int
    first: int
    last: int
    direct_last: int | None


@dataclass(frozen=True)
class MailCounts:
    """Per address id: what it sent me, what it received from me, what it received from others
    (To/Cc of mail not from me: all and bulk), and the senders of mail filed as sent."""

    sent: dict[int, Sent]
    received: dict[int, Received]
    received_other: dict[int, int]
    received_bulk: dict[int, int]
    filed_as_sent: frozenset[int]


def count_mail(
    every: EveryMessage,
    classes: MarkerClasses,
    self_ids: frozenset[int],
    as_of: int,
    max_recipients: int,
) -> MailCounts:
    """Count ``every`` message up to ``as_of`` (epoch seconds; ``every`` must reach it)."""
    import numpy as np

    if every.until < as_of:
        raise ValueError("the messages read do not reach as_of")

    def marked(test: Callable[[str], bool]) -> NDArray[np.bool_]:
        """Per message: do its markers pass ``test``? (none: no)"""
        # one entry per markers string, and a last one for index -1: no markers
        return np.array([*map(test, every.markers), False], dtype=np.bool_)[every.marks]

    seen = (every.date <= as_of) & ~marked(classes.digest.__contains__)
    sender = every.sender
    mine = np.isin(sender, np.array(sorted(self_ids), dtype=np.int64))
    bulk = every.listed | marked(classes.bulk.__contains__)
    auto = marked(classes.auto.__contains__)
    direct = ~bulk & ~auto & (every.n_recipients <= max_recipients)
    theirs = seen & (sender >= 0) & ~mine
    filed = theirs & marked(lambda m: SENT_FOLDER in f" {m.lower()} ")
    sent = _sent(sender[theirs], every.date[theirs], bulk[theirs], auto[theirs], direct[theirs])

    row, role, address = _recipient_rows(every)
    date = every.date[row]
    out = (seen & mine)[row]
    received = _received(address[out], date[out], direct[row][out])
    other = ((seen & ~mine)[row]) & ((role == ROLE_TO) | (role == ROLE_CC))
    return MailCounts(
        sent=sent,
        received=received,
        received_other=_counts(address[other]),
        received_bulk=_counts(address[other & bulk[row]]),
        filed_as_sent=frozenset(np.unique(sender[filed]).tolist()),
    )


def _recipient_rows(every: EveryMessage) -> tuple[NDArray[np.int64], ...]:
    """(row in ``every``, role, address) of each To/Cc/Bcc row of the messages of ``every``."""
    import numpy as np

    from keepwarm.digests.cadence.touches import rows_of

    head, address = np.divmod(every.recipients, every.stride)
    message, role = head >> 2, head & 3  # head = message * 4 + role
    del head
    row = rows_of(every.id, message)
    found = row >= 0
    return row[found], role[found], address[found]


def _per_address(
    address: NDArray[np.int64], *flags: NDArray[np.bool_]
) -> tuple[list[int], list[list[int]]]:
    """The addresses present, and for each of ``flags`` how many of each address's rows have
    it (address ids are small: counted in one pass, no sort)."""
    import numpy as np

    n = np.bincount(address)
    present = np.flatnonzero(n)
    sums = [n[present].tolist()]
    for flag in flags:
        sums.append(np.bincount(address[flag], minlength=len(n))[present].tolist())
    return present.tolist(), sums


def _dates(
    address: NDArray[np.int64], date: NDArray[np.int64], present: list[int]
) -> tuple[list[int], list[int]]:
    """The first and last ``date`` of each present address."""
    import numpy as np

    top = int(address.max()) + 1
    first = np.full(top, np.iinfo(np.int64).max, dtype=np.int64)
    last = np.full(top, np.iinfo(np.int64).min, dtype=np.int64)
    np.minimum.at(first, address, date)
    np.maximum.at(last, address, date)
    return first[present].tolist(), last[present].tolist()


def _sent(
    sender: NDArray[np.int64],
    date: NDArray[np.int64],
    bulk: NDArray[np.bool_],
    auto: NDArray[np.bool_],
    direct: NDArray[np.bool_],
) -> dict[int, Sent]:
    if not len(sender):
        return {}
    keys, (n, nb, na, nd) = _per_address(sender, bulk, auto, direct)
    first, last = _dates(sender, date, keys)
    rows = zip(keys, n, nb, na, nd, first, last, strict=True)
    return {k: Sent(*values) for k, *values in rows}


def _received(
    address: NDArray[np.int64], date: NDArray[np.int64], direct: NDArray[np.bool_]
) -> dict[int, Received]:
    if not len(address):
        return {}
    import numpy as np

    keys, (n, nd) = _per_address(address, direct)
    first, last = _dates(address, date, keys)
    _, direct_last = _dates(address, np.where(direct, date, np.iinfo(np.int64).min), keys)
    rows = zip(keys, n, nd, first, last, direct_last, strict=True)
    return {
        k: Received(count, n_direct, lo, hi, dl if n_direct else None)
        for k, count, n_direct, lo, hi, dl in rows
    }


def _counts(address: NDArray[np.int64]) -> dict[int, int]:
    if not len(address):
        return {}
    keys, (n,) = _per_address(address)
    return dict(zip(keys, n, strict=True))
