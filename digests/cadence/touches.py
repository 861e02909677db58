"""From raw records to touches: which messages and meetings count, how much, and threads.

Rules (see docs/how-it-works.md):

* list, bulk and automatic mail is not a touch; an auto-reply is never a reply;
* a mail to more than ``max_recipients`` people, or a meeting with more than ``max_attendees``,
  is not a touch; a declined or cancelled meeting is not contact;
* weights: a 1:1 mail in To counts 1, Cc/Bcc half of that, shared between the k human
  counterparts (1/k each); a small meeting counts 2/k (synchronous time beats a mail);
* threads: the provider's thread id, then In-Reply-To/References, then the normalized subject
  with overlapping participants within :data:`SUBJECT_WINDOW_DAYS` (Enron has no reply headers).

Mail is handled as columns (:class:`Touches`), not one object per message: a heavy mailbox holds a
million messages, and array operations classify and thread them in a few seconds. Only the subject
rule, sequential by nature, runs message by message, and only for the messages that have a message
with the same subject within its window (the others can neither join nor be joined).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from keepwarm.core.vocabulary import not_contact
from keepwarm.digests.cadence.coverage import Coverage
from keepwarm.digests.cadence.model import Directory
from keepwarm.digests.queries import ROLE_BCC, ROLE_TO, EventRecord, MessageChunk, MessageSource

# Per-message flags (bits of :attr:`_Messages.flags`), from the stored markers.
F_SENT_FOLDER = 1  # filed in a Sent folder: the user's mail whatever its From says
F_REPLY = 2  # "Re:" subject
F_FORWARD = 4  # "Fw:" subject
F_FYI = 8  # "FYI" in the subject
F_THANKS = 16  # a thank-you note
F_SAME_DAY = 32  # about that day only ("Lunch today"): moot once the day is over
F_UNTHREADED = 64  # no subject and no thread id or reply headers: its answers cannot be found
F_QUESTION = 128  # the subject asks something
F_NO_SUBJECT = 256  # no subject, or only "Re:" (known even when subjects are not stored)
F_NOT_ASKING = F_FORWARD | F_FYI | F_THANKS | F_SAME_DAY | F_UNTHREADED  # no answer owed
_FLAG_MARKERS = {
    "sent-folder": F_SENT_FOLDER,
    "subject:re": F_REPLY,
    "subject:fwd": F_FORWARD,
    "subject:fyi": F_FYI,
    "subject:thanks": F_THANKS,
    "subject:sameday": F_SAME_DAY,
    "subject:question": F_QUESTION,
    "subject:none": F_NO_SUBJECT,
}
SUBJECT_WINDOW_DAYS = 30
EMPTY_SUBJECT_WINDOW_DAYS = 2  # "RE:" with nothing after it: the same people, the same days
SUBJECT_OPEN_MAX = 8  # open threads kept per subject: the scan stays short on "hi" and "lunch"
TO_WEIGHT, CC_WEIGHT = 1.0, 0.5
MEETING_WEIGHT = 2.0
_NOT_MEETINGS = frozenset({"outOfOffice", "birthday", "focusTime", "workingLocation"})
_OOO_TITLE = re.compile(
    r"\b(ooo|out of (the )?office|vacation|holidays?|pto|annual leave|urlaub|cong[ée]s?)\b", re.I
)
_DAY = 86400

I64 = NDArray[np.int64]
Bools = NDArray[np.bool_]


def marker_class(markers: str) -> tuple[bool, int]:
    """``(not a touch, flags)`` of a stored markers string (memoised: few distinct strings)."""
    got = _MARKER_CLASSES.get(markers)
    if got is None:
        keys = markers.split()
        bulk = any(not_contact(k) for k in keys)
        flags = 0
        for k in keys:
            flags |= _FLAG_MARKERS.get(k, 0)
        got = (bulk, flags)
        if len(_MARKER_CLASSES) < 4096:
            _MARKER_CLASSES[markers] = got
    return got


_MARKER_CLASSES: dict[str, tuple[bool, int]] = {}


@dataclass(frozen=True, slots=True)
class Meeting:
    """A meeting that is contact: held (not in the future), not declined, small enough."""

    event_id: int
    start: int
    end: int
    title: str | None
    people: dict[str, float]  # person key -> weight (attendees who did not decline)
    organiser: str | None  # person key, or "" when I organised it
    small: bool
    recurring: bool = False  # one occurrence of a series: organising it is not a fresh initiative


def person_of(d: Directory, address: str) -> str | None:
    """The person key of ``address`` when it is a person (not me, a list, a robot...)."""
    if address in d.self_addresses:
        return None
    key = d.key_of(address)
    return key if d.kind_of(key) == "person" else None


def weights(direct: Bools, k: I64) -> NDArray[np.float64]:
    """The weight of touches to people: To (or my To) 1, Cc/Bcc a half, over ``k``, the number
    of people sharing each touch."""
    w: NDArray[np.float64] = np.where(direct, TO_WEIGHT, CC_WEIGHT)
    return w / k


@dataclass(frozen=True, eq=False)
class Touches:
    """The mail that touches people, one entry per message, oldest first (by date, then id).

    A touch's people come in two tables of ``(touch, person)`` rows, sorted by touch:

    * ``inc_*``: the people it touches. Mail I sent touches the people in To (``inc_direct``) and
      in Cc/Bcc; mail I received touches its sender, directly when I was in To.
    * ``oth_*``: the other people on a mail I received (they share it; it does not touch them).

    Not touches: list, bulk and automatic mail (markers, or a list address among the recipients,
    with or without list headers), mail to more than ``max_recipients``, and broadcasts: mail
    whose To and Cc show nobody but its sender ("undisclosed recipients", Bcc), or mail I sent
    with nobody in To or Cc. Mail filed in my Sent folders is mine whatever its From says (an
    assistant's).

    ``k`` is the number of people sharing a touch (the weight is split between them); ``thread``
    is the index of the touch that started the thread; persons are indexes into ``persons``.
    """

    persons: list[str]
    source: MessageSource  # for the subjects of the few touches that show one
    message: I64  # the message id of each touch
    date: I64
    out: Bools
    k: I64
    thread: I64
    flags: I64  # F_* bits of each touch (sent folder, reply, forward, FYI, thanks)
    coverage: Coverage  # when the mailbox shows my own mail and my incoming mail
    sender_domain: I64  # index into ``domains`` of the sender's domain (-1 for mail I sent)
    domains: list[str]
    inc_touch: I64
    inc_person: I64
    inc_direct: Bools
    oth_touch: I64
    oth_person: I64

    def __len__(self) -> int:
        return len(self.date)

    def subjects(self, touches: Sequence[int]) -> list[str | None]:
        """The subjects of these touches (read from the source on demand)."""
        ids = self.message[np.asarray(touches, dtype=np.int64)].tolist()
        got = self.source.subjects(sorted(set(ids)))
        return [got.get(i) for i in ids]

    def together(self, keys: Collection[str]) -> set[tuple[str, str]]:
        """Pairs (sorted) of ``keys`` that were on one mail shared by several people."""
        index = {p: i for i, p in enumerate(self.persons)}
        wanted = np.array(sorted({index[k] for k in keys if k in index}), dtype=np.int64)
        if len(wanted) < 2:
            return set()
        touch = np.concatenate((self.inc_touch, self.oth_touch))
        person = np.concatenate((self.inc_person, self.oth_person))
        keep = (self.k[touch] > 1) & np.isin(person, wanted)
        touch, person = touch[keep], person[keep]
        order = np.lexsort((person, touch))
        touch, person = touch[order], person[order]
        out: set[tuple[str, str]] = set()
        bounds = np.flatnonzero(np.diff(touch)) + 1
        for group in np.split(person, bounds):
            if len(group) > 1:
                names = sorted({self.persons[p] for p in group.tolist()})
                out.update(itertools.combinations(names, 2))
        return out


def find_touches(
    source: MessageSource,
    d: Directory,
    max_recipients: int,
    now: int,
    ahead: Ahead | None = None,
) -> Touches:
    """The touches among the messages of ``source`` dated up to ``now``, threaded.

    ``ahead``: the messages as :func:`read_messages` read them ahead (up to the same ``now``),
    while identity was being worked out; read here when not given. Taken, not kept: a million
    messages' columns are freed once classified."""
    columns = ahead.take() if ahead is not None and ahead.now == now else None
    if columns is None:
        columns = read_messages(source, now)
    index: dict[str, int] = {}
    domain_ids: dict[str, int] = {}
    addr_person, is_self, is_list, addr_domain = _addresses(source.emails, d, index, domain_ids)
    m, packed, coverage = columns.messages, columns.recipients, columns.coverage(is_self)
    del columns  # the seen messages' columns: freed before the classification's arrays come
    c = _classify(m, packed, addr_person, is_self, is_list, len(index), max_recipients)
    del packed
    thread = _threads(m, c)
    sender = m.sender[c.rows]
    return Touches(
        persons=list(index),
        source=source,
        message=m.id[c.rows],
        date=m.date[c.rows],
        out=c.out,
        k=c.k,
        thread=thread,
        flags=m.flags[c.rows] | np.where(_unthreaded(m)[c.rows], F_UNTHREADED, 0),
        coverage=coverage,
        sender_domain=np.where(c.out, -1, addr_domain[sender]),
        domains=list(domain_ids),
        inc_touch=c.inc_touch,
        inc_person=c.inc_person,
        inc_direct=c.inc_direct,
        oth_touch=c.oth_touch,
        oth_person=c.oth_person,
    )


def _addresses(
    emails: Sequence[str], d: Directory, persons: dict[str, int], domains: dict[str, int]
) -> tuple[I64, Bools, Bools, I64]:
    """Per address (one pass): its person (numbered in ``persons``; -1: not a person, or me),
    whether it is mine, whether it is a list's, and its domain (numbered in ``domains``)."""
    mine = d.self_addresses
    key_of, kind_of = d.key_of, d.kind_of
    person: list[int] = []
    is_self: list[bool] = []
    is_list: list[bool] = []
    domain: list[int] = []
    for e in emails:
        domain.append(domains.setdefault(e.rpartition("@")[2], len(domains)))
        me = e in mine
        is_self.append(me)
        if not e:
            person.append(-1)
            is_list.append(False)
            continue
        key = key_of(e)
        kind = kind_of(key)
        is_list.append(kind == "list")
        person.append(persons.setdefault(key, len(persons)) if kind == "person" and not me else -1)
    return (
        np.array(person, dtype=np.int64),
        np.array(is_self, dtype=np.bool_),
        np.array(is_list, dtype=np.bool_),
        np.array(domain, dtype=np.int64),
    )


# -- reading --------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class _Messages:
    """The messages that may be touches (dated up to now, with a sender, not list, bulk or
    automatic mail), as columns; message keys are hashed, as threading only compares them."""

    id: I64
    date: I64
    sender: I64
    msgid: I64
    irt: I64
    ref_first: I64
    ref_last: I64  # 0 when it is the first one
    hint: I64
    subject_key: I64  # 0: no subject
    flags: I64  # F_* bits


@dataclass(frozen=True, eq=False)
class MessageColumns:
    """The messages up to ``now`` as the engine reads them, before it knows who is who (so the
    daemon can read them while identity is being worked out): the possible touches, every seen
    message's date, sender and Sent-folder flag (for :class:`Coverage`), and the recipients,
    packed (:func:`keepwarm.digests.queries.pack_recipient`)."""

    now: int
    messages: _Messages
    seen_date: I64
    seen_sender: I64
    seen_filed_sent: Bools
    recipients: I64

    def coverage(self, is_self: Bools) -> Coverage:
        """When the mailbox shows my own mail (from my addresses or filed as sent) and mail in."""
        mine = is_self[self.seen_sender] | self.seen_filed_sent
        return Coverage.of(self.seen_date[mine], self.seen_date[~mine])


@dataclass(frozen=True, eq=False)
class EveryMessage:
    """Every message dated up to ``until`` (list and bulk mail and mail without a sender
    included), as columns, for whoever counts them all (identity, in the daemon): ids, dates,
    senders (-1: none), List-Id present, distinct recipients, and the markers, as an index into
    ``markers`` (-1: none). ``recipients`` are the To/Cc/Bcc rows of all messages, packed with
    ``stride`` (:func:`keepwarm.digests.queries.pack_recipient`)."""

    until: int
    stride: int
    id: I64
    date: I64
    sender: I64
    listed: Bools
    n_recipients: I64
    marks: I64
    markers: list[str]
    recipients: I64


class Ahead:
    """Messages read ahead (:func:`read_messages`), handed over once: whoever takes them holds
    the only reference, so a million messages' columns do not outlive their classification.
    ``every``: every message up to a later moment as well, when asked for (identity)."""

    __slots__ = ("_columns", "_every", "now")

    def __init__(self, columns: MessageColumns, every: EveryMessage | None = None) -> None:
        self._columns: MessageColumns | None = columns
        self._every = every
        self.now = columns.now

    def take(self) -> MessageColumns | None:
        columns, self._columns = self._columns, None
        return columns

    def take_every(self) -> EveryMessage | None:
        every, self._every = self._every, None
        return every


def read_messages(source: MessageSource, now: int) -> MessageColumns:
    """Read the messages of ``source`` dated up to ``now`` (epoch seconds) into columns."""
    return read_all(source, now)[0]


def read_all(
    source: MessageSource, now: int, until: int | None = None
) -> tuple[MessageColumns, EveryMessage | None]:
    """:func:`read_messages`, and with ``until`` (not before ``now``) every message up to then
    too (:class:`EveryMessage`), from the same read."""
    if until is not None and until < now:
        raise ValueError("until is before now")
    names: dict[str, int] = {}
    parts: list[list[I64]] = []
    seen_parts: list[tuple[I64, I64, Bools]] = []
    every_parts: list[list[I64]] = []
    for chunk in source.chunks(until if until is not None else now):
        cols, seen, rest = _read_chunk(chunk, now, until, names)
        parts.append(cols)
        seen_parts.append(seen)
        if rest is not None:
            every_parts.append(rest)
    if not parts:
        parts.append([_EMPTY] * 10)
    a = [np.concatenate(col) for col in zip(*parts, strict=True)]
    del parts
    seen_date = np.concatenate([_EMPTY, *(part[0] for part in seen_parts)])
    seen_sender = np.concatenate([_EMPTY, *(part[1] for part in seen_parts)])
    filed = np.concatenate([np.zeros(0, dtype=np.bool_), *(part[2] for part in seen_parts)])
    del seen_parts
    recipients = _recipients(source)
    columns = MessageColumns(
        now=now,
        messages=_Messages(*a),
        seen_date=seen_date,
        seen_sender=seen_sender,
        seen_filed_sent=filed,
        recipients=recipients,
    )
    if until is None:
        return columns, None
    return columns, _every(source, until, every_parts, names, recipients)


def read_every(source: MessageSource, until: int) -> EveryMessage:
    """Every message of ``source`` up to ``until`` (:class:`EveryMessage`), without the
    engine's columns."""
    names: dict[str, int] = {}
    parts = [_read_chunk(chunk, None, until, names)[2] for chunk in source.chunks(until)]
    return _every(source, until, [p for p in parts if p is not None], names, _recipients(source))


_EMPTY = np.zeros(0, dtype=np.int64)


def _recipients(source: MessageSource) -> I64:
    packed = [np.asarray(chunk, dtype=np.int64).reshape(-1) for chunk in source.recipients()]
    return np.concatenate([_EMPTY, *packed])


def _every(
    source: MessageSource, until: int, parts: list[list[I64]], names: dict[str, int], packed: I64
) -> EveryMessage:
    e = [np.concatenate([_EMPTY, *col]) for col in zip(*parts, strict=True)] or [_EMPTY] * 6
    return EveryMessage(
        until, len(source.emails), e[0], e[1], e[2], e[3] != 0, e[4], e[5], list(names), packed
    )


def _read_chunk(
    chunk: MessageChunk, now: int | None, until: int | None, names: dict[str, int]
) -> tuple[list[I64], tuple[I64, I64, Bools], list[I64] | None]:
    """One chunk: the columns of its possible touches and the date, sender and Sent-folder flag
    of each of its messages seen up to ``now`` (none without ``now``); with ``until``, the
    columns of :class:`EveryMessage` up to then (markers numbered in ``names``)."""
    ids, date, sender, listed, n_recipients, *keys = (
        np.asarray(c, dtype=np.int64) for c in chunk.columns
    )
    flags = np.zeros(len(date), dtype=np.int64)
    bulk = listed != 0
    marks = np.full(len(date), -1, dtype=np.int64)
    if len(chunk.marked):
        got = [marker_class(mk) for mk in chunk.markers]  # memoised: few distinct strings
        at = rows_of(ids, np.asarray(chunk.marked, dtype=np.int64))
        bulk[at] |= np.array([b for b, _f in got], np.bool_)
        flags[at] = np.array([f for _b, f in got], dtype=np.int64)
        if until is not None:
            marks[at] = [names.setdefault(mk, len(names)) for mk in chunk.markers]
    every = None
    if until is not None:
        upto = date <= until
        every = [
            c if upto.all() else c[upto] for c in (ids, date, sender, listed, n_recipients, marks)
        ]
    if now is None:
        return [], (_EMPTY, _EMPTY, np.zeros(0, dtype=np.bool_)), every
    seen = (date <= now) & (sender >= 0)
    keep = seen & ~bulk
    msgid, irt, ref_first, ref_last, hint, subject = keys
    cols = [ids, date, sender, msgid, irt, ref_first, ref_last, hint, subject, flags]
    if not keep.all():
        rows = np.flatnonzero(keep)
        cols = [col[rows] for col in cols]
    return cols, (date[seen], sender[seen], (flags[seen] & F_SENT_FOLDER) != 0), every


def rows_of(ids: I64, wanted: I64) -> I64:
    """Where each of ``wanted`` is in ``ids`` (distinct message ids), -1 where it is not: a table
    over the range of ids when it is compact (the store's ids seldom skip), else a search."""
    if not len(ids):
        return np.full(len(wanted), -1, dtype=np.int64)
    low, high = int(ids.min()), int(ids.max())
    if high - low < 4 * len(ids) + 1024:
        table = np.full(high - low + 1, -1, dtype=np.int64)
        table[ids - low] = np.arange(len(ids))
        inside = (wanted >= low) & (wanted <= high)
        found: I64 = np.where(inside, table[np.clip(wanted - low, 0, high - low)], -1)
        return found
    order = np.argsort(ids)
    pos = order[np.minimum(np.searchsorted(ids, wanted, sorter=order), len(ids) - 1)]
    searched: I64 = np.where(ids[pos] == wanted, pos, -1)
    return searched


# -- classification -------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class _Classified:
    """The touches among the messages: ``rows`` (message rows, oldest first) and their people."""

    rows: I64
    out: Bools
    k: I64
    inc_touch: I64
    inc_person: I64
    inc_direct: Bools
    oth_touch: I64
    oth_person: I64


def run_starts(sorted_values: NDArray[Any]) -> Bools:
    """True where a run of equal values starts (in a sorted array, or any grouped one)."""
    starts = np.ones(len(sorted_values), dtype=np.bool_)
    starts[1:] = sorted_values[1:] != sorted_values[:-1]
    return starts


def _classify(
    m: _Messages,
    packed: I64,
    addr_person: I64,
    is_self: Bools,
    is_list: Bools,
    n_persons: int,
    max_recipients: int,
) -> _Classified:
    n = len(m.id)
    stride = len(addr_person)
    msg = packed // (4 * stride)
    pos = rows_of(m.id, msg)  # message id -> row (-1: a message that is not a possible touch)
    del msg
    found = pos >= 0
    row, packed = pos[found], packed[found]
    del pos, found
    addr = packed % stride
    role = ((packed // stride) % 4).astype(np.int8)
    del packed

    # a mail to more than max_recipients distinct addresses is a broadcast, not a touch
    # (distinct addresses are counted only where the rows are more than that: the others fit)
    too_big = np.bincount(row, minlength=n) > max_recipients
    crowded = too_big[row]
    pairs = np.sort(row[crowded] * stride + addr[crowded])
    too_big[too_big] = False
    too_big |= np.bincount(pairs[run_starts(pairs)] // stride, minlength=n) > max_recipients
    del pairs, crowded
    listed = np.bincount(row[is_list[addr]], minlength=n) > 0  # a post to a list address
    out = is_self[m.sender] | ((m.flags & F_SENT_FOLDER) != 0)
    visible = role != ROLE_BCC
    me_in_to = np.bincount(row[(role == ROLE_TO) & is_self[addr]], minlength=n) > 0
    # a broadcast shows nobody but its sender in To and Cc ("undisclosed recipients", Bcc)
    addressed = np.bincount(row[visible & (addr != m.sender[row])], minlength=n) > 0
    sender_person = np.where(out, -1, addr_person[m.sender])

    # each person once per message, direct when in To
    person = addr_person[addr]
    on = (person >= 0) & ~is_self[addr]
    width = max(n_persons, 1)
    # (message, person, 0 when in To else 1), sorted: each pair's first entry says if it is direct
    key = (row[on] * width + person[on]) * 2 + (role[on] != ROLE_TO)
    seen_rows = row[on & visible]
    del row, role, addr, person, on
    key.sort()
    firsts = run_starts(key // 2)
    pair_direct = key[firsts] % 2 == 0
    pair_row, pair_person = np.divmod(key[firsts] // 2, width)
    del key, firsts

    mine = out[pair_row]
    k_out = np.bincount(pair_row[mine], minlength=n)
    k_seen = np.bincount(seen_rows, minlength=n)  # people in To/Cc
    other = ~mine & (pair_person != sender_person[pair_row])
    k_in = 1 + np.bincount(pair_row[other], minlength=n)
    touch = (
        ~too_big
        & ~listed
        & np.where(out, (k_out > 0) & (k_seen > 0), (sender_person >= 0) & addressed)
    )

    rows = np.flatnonzero(touch)
    rows = rows[date_order(m.date[rows], m.id[rows])]
    touch_of = np.full(n, -1, dtype=np.int64)
    touch_of[rows] = np.arange(len(rows))

    sent = mine & touch[pair_row]
    received = np.flatnonzero(touch & ~out)  # in message order: sorted by touch below
    inc_touch = np.concatenate((touch_of[pair_row[sent]], touch_of[received]))
    inc_person = np.concatenate((pair_person[sent], sender_person[received]))
    inc_direct = np.concatenate((pair_direct[sent], me_in_to[received]))
    by_touch = sort_order(((inc_touch, len(rows)),))  # each touch's people in order
    others = other & touch[pair_row]
    oth_touch = touch_of[pair_row[others]]
    oth_order = sort_order(((oth_touch, len(rows)),))
    return _Classified(
        rows=rows,
        out=out[rows],
        k=np.where(out, k_out, k_in)[rows],
        inc_touch=inc_touch[by_touch],
        inc_person=inc_person[by_touch],
        inc_direct=inc_direct[by_touch],
        oth_touch=oth_touch[oth_order],
        oth_person=pair_person[others][oth_order],
    )


def sort_order(columns: Sequence[tuple[I64, int]], *, stable: bool = True) -> I64:
    """The order ``np.lexsort`` gives rows sorted by ``columns`` (the first is the primary key;
    each comes with a bound above its values, which are >= 0): ties keep the rows' order, or,
    not ``stable``, come in any order (for callers that do not depend on it).

    The columns and the row number make one integer key whose values are sorted (several times
    faster than an argsort, which is itself several times faster than lexsort on a million rows);
    the row number is read back from the key's low bits. A key too wide to hold the row number
    in 63 bits is argsorted alone when the order of ties does not matter (and it fits), else
    the rows are lexsorted."""
    n = len(columns[0][0])
    size = 1
    for _, bound in columns:
        size *= max(bound, 1)
    bits = max(n - 1, 0).bit_length()  # row numbers are below 1 << bits
    with_rows = size << bits < 1 << 63
    if not with_rows and (stable or size >= 1 << 63):
        return np.lexsort(tuple(col for col, _ in reversed(columns)))
    key = np.zeros(n, dtype=np.int64)
    for col, bound in columns:
        key *= bound
        key += col
    if not with_rows:
        order: I64 = np.argsort(key)
        return order
    key <<= bits
    key |= np.arange(n, dtype=np.int64)
    key.sort()
    key &= (1 << bits) - 1
    return key


def group_order(keys: I64, bits: int | None = None) -> tuple[I64, I64]:
    """An order of the rows that brings equal ``keys`` (64-bit hashes) together, rows in order
    within each group (the groups come in no particular order), and the keys in that order.

    The key's low bits and the row number make one integer whose values are sorted (as in
    :func:`sort_order`; a stable argsort of the whole keys takes several times as long). Keys
    that differ only in their other bits are then told apart: the runs they share, rare, are
    sorted again by the whole key. ``bits``: how many of the key's bits go in (tests)."""
    n = len(keys)
    row_bits = max(n - 1, 0).bit_length()
    low = 63 - row_bits if bits is None else min(bits, 63 - row_bits)
    packed = keys & ((1 << low) - 1)
    packed <<= row_bits
    packed |= np.arange(n, dtype=np.int64)
    packed.sort()
    order = packed & ((1 << row_bits) - 1)
    packed >>= row_bits  # the low bits of each row's key, in order
    key = keys[order]
    mixed = (packed[1:] == packed[:-1]) & (key[1:] != key[:-1])
    if mixed.any():
        run = np.cumsum(run_starts(packed)) - 1
        bad = np.zeros(int(run[-1]) + 1, dtype=np.bool_)
        bad[run[1:][mixed]] = True
        at = np.flatnonzero(bad[run])  # the rows of the runs holding several keys
        order[at] = order[at][np.lexsort((order[at], key[at], run[at]))]
        key[at] = keys[order[at]]
    return order, key


def date_order(date: I64, ids: I64) -> I64:
    """The order of messages by date, then id (ids are distinct): ``np.lexsort((ids, date))``,
    as :func:`sort_order` makes it."""
    n = len(date)
    if not n:
        return np.zeros(0, dtype=np.int64)
    low = int(date.min())
    by_date = (date - low, int(date.max()) - low + 1)
    if n > 1 and not np.all(ids[1:] > ids[:-1]):
        rank = np.empty(n, dtype=np.int64)
        rank[np.argsort(ids)] = np.arange(n)
        return sort_order((by_date, (rank, n)), stable=False)
    return sort_order((by_date,))  # ties keep the rows' order: the ids'


def _unthreaded(m: _Messages) -> Bools:
    """Messages with nothing to thread them by: no subject, no thread id, no reply headers."""
    blank = (m.flags & F_NO_SUBJECT) != 0
    none: Bools = blank & (m.hint == 0) & (m.irt == 0) & (m.ref_first == 0)
    return none


# -- threading ------------------------------------------------------------------------------------
def _threads(m: _Messages, c: _Classified) -> I64:
    """Each touch's thread: the index of its oldest touch.

    Touches sharing a provider thread id are one thread; so are touches sharing a Message-ID,
    In-Reply-To or the first or last References entry (a reply seen before its parent included);
    then the subject rule (:func:`_subject_edges`) joins touches without a thread id.
    """
    rows = c.rows
    hint = m.hint[rows]
    sources = [
        _key_edges((hint,)),
        _key_edges((m.msgid[rows], m.ref_first[rows], m.ref_last[rows], m.irt[rows])),
        _subject_edges(m.date[rows], m.subject_key[rows], hint == 0, c),
    ]
    a = np.concatenate([e[0] for e in sources])
    b = np.concatenate([e[1] for e in sources])
    return _components(len(rows), a, b)


def _key_edges(columns: tuple[I64, ...]) -> tuple[I64, I64]:
    """Edges joining the touches that carry one key (in any of ``columns``, one entry per
    touch): each to the next one that carries it (a chain joins them as well as a star)."""
    touch = np.concatenate([np.flatnonzero(col) for col in columns])
    order, key = group_order(np.concatenate([col[col != 0] for col in columns]))
    touch = touch[order]
    del order
    joins = np.flatnonzero((key[1:] == key[:-1]) & (touch[1:] != touch[:-1]))
    return touch[joins], touch[joins + 1]


def _subject_edges(date: I64, subject: I64, eligible: Bools, c: _Classified) -> tuple[I64, I64]:
    """The subject rule: a touch without a thread id joins an open thread with the same normalized
    subject whose last touch is at most the window old and that shares a person with it.

    Each subject is its own sequence, run in date order, and a gap longer than the window closes
    every open thread: each *stretch* of a subject (touches at most the window apart) is
    independent. A touch none of whose people is on another touch of its stretch neither joins
    nor is joined: it is left out of the run, touch by touch, unless it may push another thread
    out of the few kept open (a stretch of more than :data:`SUBJECT_OPEN_MAX` touches).
    """
    none = np.zeros(0, np.int64), np.zeros(0, np.int64)
    cand = np.flatnonzero(eligible)
    if not len(cand):
        return none
    by_subject, subj = group_order(subject[cand])
    order = cand[by_subject]  # by subject, then date (as cand)
    del by_subject
    span = np.where(subj != 0, SUBJECT_WINDOW_DAYS, EMPTY_SUBJECT_WINDOW_DAYS) * _DAY
    day = date[order]
    close = (subj[1:] == subj[:-1]) & (day[1:] - day[:-1] <= span[1:])
    del subj, day
    stretch = np.cumsum(np.append(True, ~close))  # the stretch of each touch in ``order``
    paired = np.append(close, False) | np.append(False, close)  # not alone in its stretch
    del close
    order, stretch, span = order[paired], stretch[paired], span[paired]
    del paired
    if not len(order):
        return none

    # the people on each touch
    touch = np.concatenate((c.inc_touch, c.oth_touch))
    person = np.concatenate((c.inc_person, c.oth_person))
    person = person[sort_order(((touch, len(date)),))]
    per_touch = np.bincount(touch, minlength=len(date))
    del touch
    counts = per_touch[order]
    lo = (np.cumsum(per_touch) - per_touch)[order]  # where each touch's people start
    del per_touch
    entry = np.repeat(lo - (np.cumsum(counts) - counts), counts)
    people = person[entry + np.arange(len(entry))]  # the people of order[0], order[1]...
    del person, entry, lo
    row = np.repeat(np.arange(len(order)), counts)  # each entry's touch in ``order``

    # the touches with a person who is on another touch of their stretch (each touch has each
    # person once), and the stretches too long to leave the others out
    part = stretch[row]
    by = sort_order(
        ((part, int(stretch[-1]) + 1), (people, int(people.max(initial=0)) + 1)), stable=False
    )
    part, who = part[by], people[by]
    same = (part[1:] == part[:-1]) & (who[1:] == who[:-1])
    del part, who
    shared_entry = np.zeros(len(row), dtype=np.bool_)
    shared_entry[by[1:][same]] = True
    shared_entry[by[:-1][same]] = True
    del by, same
    shared = np.bincount(row[shared_entry], minlength=len(order)) > 0
    del shared_entry
    sizes = np.bincount(stretch)
    any_shared = np.bincount(stretch[shared], minlength=len(sizes)) > 0
    keep = shared | ((sizes > SUBJECT_OPEN_MAX) & any_shared)[stretch]
    del sizes, any_shared, shared
    if not keep.any():
        return none
    members = people[keep[row]].tolist()  # the people of the touches kept, in order
    del people, row
    todo, counts, stretch, span = order[keep], counts[keep], stretch[keep], span[keep]
    ends = np.cumsum(counts)
    return _run_subjects(todo, date[todo], stretch, span, ends - counts, ends, members)


def _run_subjects(
    todo: I64, day: I64, stretch: I64, span: I64, lo: I64, hi: I64, people: list[int]
) -> tuple[I64, I64]:
    """The subject rule run touch by touch (``todo``, by stretch then date): the edges from the
    first touch of the thread each joins to the touch. ``people[lo[i]:hi[i]]``: the people of
    ``todo[i]``."""
    edges_a: list[int] = []
    edges_b: list[int] = []
    current = -1
    threads: list[list[Any]] = []  # open threads of the current stretch: [first, last, people]
    for i, when, part, window, a, b in _rows(todo, day, stretch, span, lo, hi):
        members = {people[a]} if b - a == 1 else set(people[a:b])
        if part != current:
            current, threads = part, [[i, when, members]]
            continue
        since = when - window
        # Dates only grow, so an expired thread is never joined again; dropping the expired ones
        # at the front changes nothing else, as the cap below evicts from the front too.
        while threads and threads[0][1] < since:
            del threads[0]
        for t in threads:
            if t[1] >= since and not t[2].isdisjoint(members):
                edges_a.append(t[0])
                edges_b.append(i)
                t[2].update(members)
                t[1] = when
                break
        else:
            threads.append([i, when, members])
            if len(threads) > SUBJECT_OPEN_MAX:
                threads.pop(0)
    return np.array(edges_a, dtype=np.int64), np.array(edges_b, dtype=np.int64)


def _rows(*columns: NDArray[Any], size: int = 1 << 14) -> Iterator[tuple[Any, ...]]:
    """The rows of equal-length arrays as tuples of Python values, a slice at a time (a
    million-row ``tolist()`` at once would hold a million Python ints)."""
    for start in range(0, len(columns[0]), size):
        yield from zip(*(col[start : start + size].tolist() for col in columns), strict=True)


def _components(n: int, a: I64, b: I64) -> I64:
    """Connected components of ``n`` nodes joined by edges ``a[i] - b[i]``: each node's smallest
    member (hooking roots onto the smaller root, then halving paths until every node points at
    its root: only the nodes not yet pointing at a root are followed, fewer at each step)."""
    parent = np.arange(n, dtype=np.int64)
    while len(a):
        ra, rb = parent[a], parent[b]
        live = ra != rb
        a, b, ra, rb = a[live], b[live], ra[live], rb[live]
        if not len(a):
            break
        np.minimum.at(parent, np.maximum(ra, rb), np.minimum(ra, rb))
        nodes = np.flatnonzero(parent != np.arange(n))
        while len(nodes):
            up = parent[nodes]
            grand = parent[up]
            moved = grand != up
            nodes = nodes[moved]
            parent[nodes] = grand[moved]
    return parent


# -- calendar -------------------------------------------------------------------------------------
def classify_event(
    e: EventRecord, d: Directory, max_attendees: int, now: int
) -> tuple[Meeting | None, bool]:
    """``(meeting, held)``. ``meeting`` is None when the event is not a meeting with people."""
    if _not_a_meeting(e):
        return None, False
    others, total = _others(e, d)
    org_key = _organizer_key(e, d)
    mine = e.organizer in d.self_addresses
    if org_key is not None and not mine and not any(a.email == e.organizer for a in e.attendees):
        others.setdefault(org_key, "accepted")  # an organizer who is not among the attendees
        total += 1
    if not others:
        return None, False
    small = total <= max_attendees and not e.attendees_omitted
    k = len(others)
    people = dict.fromkeys(others, MEETING_WEIGHT / k if small else 0.0)
    meeting = Meeting(e.id, e.start, e.end, e.title, people, org_key, small, e.recurring)
    return meeting, e.start <= now


def _not_a_meeting(e: EventRecord) -> bool:
    """Cancelled, declined, an invitation I never answered, all day, or no meeting by type."""
    if e.status == "cancelled" or e.my_response in ("declined", "needsAction") or e.all_day:
        return True
    return e.event_type in _NOT_MEETINGS


def _others(e: EventRecord, d: Directory) -> tuple[dict[str, str], int]:
    """The people among the attendees (not me, not rooms) who did not decline, with their
    response, and how many attend, me included."""
    others: dict[str, str] = {}
    total = 1  # me
    for a in e.attendees:
        if a.resource or a.is_self or a.email in d.self_addresses:
            continue
        total += 1
        key = person_of(d, a.email)
        if key is not None and a.response != "declined":
            others[key] = a.response
    return others, total


def _organizer_key(e: EventRecord, d: Directory) -> str | None:
    """The organizer's person key: "" when it is me, None when none or not a person."""
    if e.organizer is None:
        return None
    return "" if e.organizer in d.self_addresses else person_of(d, e.organizer)


def out_of_office(e: EventRecord, d: Directory) -> bool:
    """The user's own absence: an outOfOffice event, or an all-day OOO/vacation they organised."""
    if e.status == "cancelled":
        return False
    mine = e.organizer is None or e.organizer in d.self_addresses
    if e.event_type == "outOfOffice":
        return mine or any(a.is_self for a in e.attendees)
    if not e.all_day or not e.title or not _OOO_TITLE.search(e.title):
        return False
    others = [a for a in e.attendees if not a.is_self and a.email not in d.self_addresses]
    return e.organizer in d.self_addresses or (e.organizer is None and not others)
