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

from collections.abc import Callable, Sequence
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
class MailCounts:
    """What each of the addresses asked for (``ids``) did, one list per figure in the order of
    ``ids``: what it sent me (not from me: all, bulk, automatic, direct; the first and last date,
    None when it sent nothing), what it received from me (all, direct; first, last and last
    direct date, None when none), what it received from others (To/Cc of mail not from me: all
    and bulk); and the senders of mail filed as sent (ids)."""

    sent: list[int]
    sent_bulk: list[int]
    sent_auto: list[int]
    sent_direct: list[int]
    in_first: list[int | None]
    in_last: list[int | None]
    out: list[int]
    out_direct: list[int]
    out_first: list[int | None]
    out_last: list[int | None]
    out_direct_last: list[int | None]
    received_other: list[int]
    received_bulk: list[int]
    filed_as_sent: frozenset[int]


def count_mail(
    every: EveryMessage,
    classes: MarkerClasses,
    self_ids: frozenset[int],
    as_of: int,
    max_recipients: int,
    ids: Sequence[int],
) -> MailCounts:
    """Count ``every`` message up to ``as_of`` (epoch seconds; ``every`` must reach it) for the
    addresses ``ids`` (address ids >= 0)."""
    import numpy as np

    if every.until < as_of:
        raise ValueError("the messages read do not reach as_of")

    def marked(test: Callable[[str], bool]) -> NDArray[np.bool_]:
        """Per message: do its markers pass ``test``? (none: no)"""
        # one entry per markers string, and a last one for index -1: no markers
        return np.array([*map(test, every.markers), False], dtype=np.bool_)[every.marks]

    sender = every.sender
    row, role, address = _recipient_rows(every)
    wanted = np.array(ids, dtype=np.int64)
    top = 1 + max(
        int(wanted.max(initial=-1)), int(sender.max(initial=-1)), int(address.max(initial=-1))
    )
    per = _PerAddress(wanted, top)
    is_me = np.zeros(top + 1, dtype=np.bool_)  # per address id, and a last False for -1: none
    is_me[[i for i in self_ids if 0 <= i < top]] = True

    seen = (every.date <= as_of) & ~marked(classes.digest.__contains__)
    mine = is_me[sender]
    bulk = every.listed | marked(classes.bulk.__contains__)
    auto = marked(classes.auto.__contains__)
    direct = ~bulk & ~auto & (every.n_recipients <= max_recipients)
    theirs = seen & (sender >= 0) & ~mine
    filed = theirs & marked(lambda m: SENT_FOLDER in f" {m.lower()} ")

    who, date = sender[theirs], every.date[theirs]
    n_sent = per.count(who)
    in_first, in_last = per.dates(who, date, n_sent)

    out = (seen & mine)[row]
    out_row = row[out]
    to, date, out_direct = address[out], every.date[out_row], direct[out_row]
    n_out, n_direct = per.count(to), per.count(to[out_direct])
    out_first, out_last = per.dates(to, date, n_out)
    _, direct_last = per.dates(to[out_direct], date[out_direct], n_direct)

    other = (seen & ~mine)[row] & ((role == ROLE_TO) | (role == ROLE_CC))
    return MailCounts(
        sent=n_sent.tolist(),
        sent_bulk=per.count(who[bulk[theirs]]).tolist(),
        sent_auto=per.count(who[auto[theirs]]).tolist(),
        sent_direct=per.count(who[direct[theirs]]).tolist(),
        in_first=in_first,
        in_last=in_last,
        out=n_out.tolist(),
        out_direct=n_direct.tolist(),
        out_first=out_first,
        out_last=out_last,
        out_direct_last=direct_last,
        received_other=per.count(address[other]).tolist(),
        received_bulk=per.count(address[other & bulk[row]]).tolist(),
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


class _PerAddress:
    """Figures per address id (counted over ``top`` ids in one pass, no sort), read out for the
    addresses ``wanted``, in their order."""

    def __init__(self, wanted: NDArray[np.int64], top: int) -> None:
        self.wanted, self.top = wanted, top

    def count(self, address: NDArray[np.int64]) -> NDArray[np.int64]:
        """How many of ``address`` are each wanted address."""
        import numpy as np

        counted: NDArray[np.int64] = np.bincount(address, minlength=self.top)[self.wanted]
        return counted

    def dates(
        self, address: NDArray[np.int64], date: NDArray[np.int64], n: NDArray[np.int64]
    ) -> tuple[list[int | None], list[int | None]]:
        """The first and last ``date`` of each wanted address (None where ``n`` is 0)."""
        import numpy as np

        first = np.full(self.top, np.iinfo(np.int64).max, dtype=np.int64)
        last = np.full(self.top, np.iinfo(np.int64).min, dtype=np.int64)
        np.minimum.at(first, address, date)
        np.maximum.at(last, address, date)
        none = n == 0
        out: list[list[int | None]] = []
        for found in (first, last):
            values = found[self.wanted].astype(object)  # Python ints, and None where none
            values[none] = None
            out.append(values.tolist())
        return out[0], out[1]
