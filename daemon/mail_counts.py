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

from dataclasses import dataclass
from typing import TYPE_CHECKING

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


@dataclass(frozen=True)
class Sent:
    """What one address sent me (not from me): see :class:`~keepwarm.daemon.identity.AddressActivity`."""

    n: int
    bulk: int
    auto: int
    direct: int
    first: int
    last: int


@dataclass(frozen=True)
class Received:
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
    names = every.markers

    def marked(test: set[str] | frozenset[str] | None, word: str = "") -> NDArray[np.bool_]:
        # one entry per markers string, and a last one (False) for index -1: no markers
        flags = [(m in test) if test is not None else word in f" {m.lower()} " for m in names]
        return np.array([*flags, False], dtype=np.bool_)

    marks = every.marks
    seen = (every.date <= as_of) & ~marked(classes.digest)[marks]
    sender = every.sender
    mine = np.isin(sender, np.array(sorted(self_ids), dtype=np.int64))
    bulk = every.listed | marked(classes.bulk)[marks]
    auto = marked(classes.auto)[marks]
    direct = ~bulk & ~auto & (every.n_recipients <= max_recipients)
    theirs = seen & (sender >= 0) & ~mine
    filed = theirs & marked(None, SENT_FOLDER)[marks]
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

    stride = every.stride
    packed = every.recipients
    message = packed // (4 * stride)
    ids = every.id
    if len(ids) and not np.all(ids[1:] > ids[:-1]):
        order = np.argsort(ids, kind="stable")
        pos = order[np.minimum(np.searchsorted(ids, message, sorter=order), len(ids) - 1)]
    else:
        pos = np.minimum(np.searchsorted(ids, message), max(len(ids) - 1, 0))
    found = ids[pos] == message if len(ids) else np.zeros(len(message), dtype=np.bool_)
    packed = packed[found]
    return pos[found], (packed // stride) % 4, packed % stride


def _groups(key: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.int64], list[int]]:
    """``key`` sorted: (order, the start of each run of one key, the keys)."""
    import numpy as np

    order = np.argsort(key, kind="stable")
    ordered = key[order]
    starts = np.flatnonzero(np.append(True, ordered[1:] != ordered[:-1])) if len(key) else key
    return order, starts, ordered[starts].tolist()


def _sent(
    sender: NDArray[np.int64],
    date: NDArray[np.int64],
    bulk: NDArray[np.bool_],
    auto: NDArray[np.bool_],
    direct: NDArray[np.bool_],
) -> dict[int, Sent]:
    import numpy as np

    if not len(sender):
        return {}
    order, starts, keys = _groups(sender)
    date = date[order]
    columns = (
        np.diff(np.append(starts, len(order))),
        np.add.reduceat(bulk[order].astype(np.int64), starts),
        np.add.reduceat(auto[order].astype(np.int64), starts),
        np.add.reduceat(direct[order].astype(np.int64), starts),
        np.minimum.reduceat(date, starts),
        np.maximum.reduceat(date, starts),
    )
    rows = zip(keys, *(c.tolist() for c in columns), strict=True)
    return {k: Sent(*values) for k, *values in rows}


def _received(
    address: NDArray[np.int64], date: NDArray[np.int64], direct: NDArray[np.bool_]
) -> dict[int, Received]:
    import numpy as np

    if not len(address):
        return {}
    order, starts, keys = _groups(address)
    date, direct = date[order], direct[order]
    direct_date = np.where(direct, date, np.iinfo(np.int64).min)
    direct_last = np.maximum.reduceat(direct_date, starts).tolist()
    columns = (
        np.diff(np.append(starts, len(order))),
        np.add.reduceat(direct.astype(np.int64), starts),
        np.minimum.reduceat(date, starts),
        np.maximum.reduceat(date, starts),
    )
    rows = zip(keys, *(c.tolist() for c in columns), direct_last, strict=True)
    return {
        k: Received(n, nd, first, last, None if nd == 0 else dl)
        for k, n, nd, first, last, dl in rows
    }


def _counts(address: NDArray[np.int64]) -> dict[int, int]:
    import numpy as np

    keys, n = np.unique(address, return_counts=True)
    return dict(zip(keys.tolist(), n.tolist(), strict=True))
