"""The engine's message path as it was before the columnar rewrite: one Python object per
message, folded message by message. Slow, but plain; tests compare the columnar path
(:mod:`keepwarm.digests.cadence.touches` and ``ledger.fold_touches``) against it.

Changes from the shipped version it was copied from (commit a11a430): it reads
:class:`~keepwarm.digests.queries.MessageRecord` objects and fills the engine's own
:class:`~keepwarm.digests.cadence.ledger.Ledger` (which counts initiatives instead of listing
them and keeps the latest distinct subjects).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from keepwarm.digests.cadence import touches
from keepwarm.digests.cadence.ledger import Clock, Ledger, Owed
from keepwarm.digests.cadence.model import Directory
from keepwarm.digests.cadence.touches import CC_WEIGHT, TO_WEIGHT, not_a_touch
from keepwarm.digests.queries import MessageRecord

SUBJECT_WINDOW_DAYS = 30
EMPTY_SUBJECT_WINDOW_DAYS = 2


@dataclass(slots=True)
class Mail:
    """A message that is a touch with at least one person (compact: a year is a million of them).

    Outgoing: ``direct`` are the people in To, ``indirect`` those in Cc/Bcc. Incoming: the sender
    is the only person touched; ``direct`` is ``(sender,)`` when I am in To, else ``indirect`` is;
    ``others`` are the other people on it. ``k`` is the number of people sharing the touch.
    """

    date: int
    out: bool
    sender: str | None  # person key of the sender (None when it is me)
    direct: tuple[str, ...]
    indirect: tuple[str, ...]
    others: tuple[str, ...]
    k: int
    subject: str | None
    address: str | None  # the sender's address (incoming), for job changes
    thread: int = -1

    def weight(self, person: str) -> float:
        return (TO_WEIGHT if person in self.direct else CC_WEIGHT) / self.k


class People:
    """Address -> person key (memoised), with one shared one-element tuple per person."""

    def __init__(self, d: Directory) -> None:
        self.d = d
        self._cache: dict[str, str | None] = {}
        self._single: dict[str, tuple[str]] = {}

    def single(self, key: str) -> tuple[str]:
        got = self._single.get(key)
        if got is None:
            got = self._single[key] = (key,)
        return got

    def __call__(self, address: str) -> str | None:
        if address not in self._cache:
            self._cache[address] = touches.person_of(self.d, address)
        return self._cache[address]


def _keys(addresses: tuple[str, ...], people: People, skip: Iterable[str] = ()) -> tuple[str, ...]:
    if len(addresses) == 1:  # the common case, without the list
        key = people(addresses[0])
        return () if key is None or key in skip else people.single(key)
    out: list[str] = []
    for a in addresses:
        key = people(a)
        if key is not None and key not in out and key not in skip:
            out.append(key)
    if len(out) == 1:
        return people.single(out[0])
    return tuple(out)


def fold_messages(
    records: Iterable[MessageRecord], people: People, max_recipients: int, now: int
) -> list[Mail]:
    """The touches among ``records`` dated up to ``now``, oldest first, each with its thread id."""
    me = people.d.self_addresses
    key_of = people
    threads = _Threads()
    join = threads.join
    out: list[Mail] = []
    unique = {m.id: m for m in records}
    for m in sorted(unique.values(), key=lambda m: (m.date, m.id)):
        date, sender, to, cc, bcc = m.date, m.sender, m.to, m.cc, m.bcc
        if date > now or sender is None or m.list_id:
            continue
        if m.markers and not_a_touch(" ".join(sorted(m.markers))):
            continue
        if len({*to, *cc, *bcc}) > max_recipients:
            continue
        subj, nsubj, hint = m.subject, m.norm_subject, m.thread_hint
        if sender in me:
            direct = _keys(to, key_of)
            indirect = _keys(cc + bcc, key_of, direct) if (cc or bcc) else ()
            k = len(direct) + len(indirect)
            if not k:
                continue
            mail = Mail(date, True, None, direct, indirect, (), k, subj, None)
            members = direct + indirect
        else:
            s = key_of(sender)
            if s is None:
                continue
            mine = people.single(s)
            others = _keys(to + cc + bcc, key_of, mine)
            if me.isdisjoint(to):
                mail = Mail(date, False, s, (), mine, others, 1 + len(others), subj, sender)
            else:
                mail = Mail(date, False, s, mine, (), others, 1 + len(others), subj, sender)
            members = mine + others if others else mine
        i = len(out)
        out.append(mail)
        threads.parent.append(i)
        if hint:
            join(i, hint)
        if m.message_id:
            join(i, hash(m.message_id))
        if m.refs:
            join(i, hash(m.refs[0]))
            if m.refs[-1] != m.refs[0]:
                join(i, hash(m.refs[-1]))
        if m.in_reply_to:
            join(i, hash(m.in_reply_to))
        if not hint:
            threads.subject(i, date, nsubj or "", members)
    for i, mail in enumerate(out):
        mail.thread = threads.find(i)
    return out


def together(mails: list[Mail], strong: Iterable[str]) -> set[tuple[str, str]]:
    """Pairs of ``strong`` people that were on one mail shared by several people."""
    keys = set(strong)
    pairs: set[tuple[str, str]] = set()
    for m in mails:
        if m.k > 1:
            members = sorted({k for k in m.direct + m.indirect + m.others if k in keys})
            pairs.update(itertools.combinations(members, 2))
    return pairs


# -- threading ------------------------------------------------------------------------------------
class _Threads:
    """Thread ids assigned online, message by message in date order (a union-find over indexes).

    Provider thread ids join first; then Message-ID, In-Reply-To and References (a reply seen
    before its parent is joined when the parent arrives); then the normalized subject with a
    shared person within :data:`SUBJECT_WINDOW_DAYS`. Message-IDs are kept as hashes to bound
    memory. The root of a thread is its oldest message, so thread ids are stable under order.
    """

    def __init__(self) -> None:
        self.parent: list[int] = []
        self.by_key: dict[str | int, int] = {}  # thread hint, or hash of a Message-ID -> index
        self.open: dict[str, list[list[Any]]] = {}  # subject -> [root, last date, members]

    def find(self, i: int) -> int:
        parent = self.parent
        root = i
        while parent[root] != root:
            root = parent[root]
        while parent[i] != root:
            parent[i], i = root, parent[i]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            if rb < ra:  # keep the older message as the root
                ra, rb = rb, ra
            self.parent[rb] = ra

    def join(self, i: int, key: str | int) -> None:
        """Message ``i`` carries ``key``: join the first message that carried it."""
        j = self.by_key.setdefault(key, i)
        if j != i:
            self.union(i, j)

    def subject(self, i: int, date: int, subject: str, people: tuple[str, ...]) -> None:
        threads = self.open.get(subject)
        if threads is None:
            self.open[subject] = [[i, date, set(people)]]
            return
        window = (SUBJECT_WINDOW_DAYS if subject else EMPTY_SUBJECT_WINDOW_DAYS) * 86400
        since = date - window
        # Dates only grow, so an expired thread is never joined again; dropping the expired ones
        # at the front changes nothing else, as the cap below evicts from the front too.
        while threads and threads[0][1] < since:
            del threads[0]
        for t in threads:
            if t[1] >= since and not t[2].isdisjoint(people):
                self.union(i, t[0])
                t[2].update(people)
                t[1] = date
                return
        threads.append([i, date, set(people)])
        if len(threads) > 8:  # keep the scan short on very common subjects ("hi", "lunch")
            threads.pop(0)


# -- ledgers --------------------------------------------------------------------------------------
def add_mails(
    ledgers: dict[str, Ledger], mails: list[Mail], clock: Clock, away: tuple[int, ...] = ()
) -> None:
    """``away``: the local days the user was out of office (they do not age a reply owed)."""
    """Fold every mail into the ledgers of the people it touches, thread by thread."""
    threads: dict[int, list[Mail]] = {}
    for m in mails:
        threads.setdefault(m.thread, []).append(m)
    for thread in threads.values():
        first = thread[0]
        if len(thread) == 1:  # most threads: one message, the same list for everyone on it
            for p in first.direct + first.indirect:
                led = ledgers.get(p)
                if led is None:
                    led = ledgers[p] = Ledger(p)
                _fold_single(led, p, first, clock, True, away)
            continue
        per_person: dict[str, list[Mail]] = {}
        for m in thread:
            for p in m.direct + m.indirect:
                per_person.setdefault(p, []).append(m)
        for p, seq in per_person.items():
            led = ledgers.get(p)
            if led is None:
                led = ledgers[p] = Ledger(p)
            if len(seq) == 1:
                _fold_single(led, p, seq[0], clock, seq[0] is first, away)
            else:
                _fold_thread(led, p, seq, first, clock, away)


def _initiator(first: Mail, p: str) -> bool | None:
    """True when I started the thread with ``p``, False when they did, None otherwise."""
    if first.out:
        return True if p in first.direct else None
    return False if first.sender == p else None


def _present_age(clock: Clock, date: int, away: tuple[int, ...]) -> int:
    """The time since ``date``, less the days out of office after its day."""
    day = clock.day(date)
    return clock.now - date - sum(1 for d in away if d > day) * 86400


def _fold_thread(
    led: Ledger, p: str, seq: list[Mail], first: Mail, clock: Clock, away: tuple[int, ...]
) -> None:
    two_way = len(seq) > 1 and any(m.out for m in seq) and any(not m.out for m in seq)
    for m in seq:
        date = m.date
        led.seen(date)
        if two_way or m.out:  # mail I never answered says nothing about a tie of mine
            led.add_day(clock.day(date), m.weight(p), two_way)
        if led.last_mail is None or date > led.last_mail:
            led.last_mail = date
        if m.out:
            led.msgs_out += 1
        else:
            led.msgs_in += 1
            if m.address:
                _note_domain(led, m.address, date)
        if two_way:
            if m is seq[0]:
                led.starts.add(clock.day(date))
            led.contact(date, m.subject)
    _reciprocity(led, p, seq, first, clock)
    _open_loops(led, p, seq, first, clock, away)


def _fold_single(
    led: Ledger, p: str, m: Mail, clock: Clock, starts: bool, away: tuple[int, ...]
) -> None:
    """:func:`_fold_thread` when the person is on one message of the thread (one way by
    definition), inlined: it runs for most of a million messages. ``starts``: the message is the
    thread's first. Kept equal to the general path by a property test."""
    date = m.date
    if led.first_seen is None or date < led.first_seen:
        led.first_seen = date
    if led.last_seen is None or date > led.last_seen:
        led.last_seen = date
    if led.last_mail is None or date > led.last_mail:
        led.last_mail = date
    direct = p in m.direct
    if m.out:
        led.msgs_out += 1
        day = clock.day(date)
        weight = (TO_WEIGHT if direct else CC_WEIGHT) / m.k
        target = led.one_way_days
        if weight > target.get(day, 0.0) or day not in target:
            target[day] = weight
    else:
        led.msgs_in += 1
        if m.address:
            _note_domain(led, m.address, date)
    if date >= clock.window_start:
        by = (True if direct else None) if m.out else (False if m.sender == p else None)
        if starts and by is not None:
            if by:
                led.threads_by_me += 1
            else:
                led.threads_by_them += 1
        if m.out:
            led.w_out += 1
        else:
            led.w_in += 1
    # open loops
    age = clock.now - date
    if m.out:
        if starts and direct and clock.outreach_wait <= age <= clock.reply_max_age:
            led.owed_to_me.append(Owed(date, m.subject, m.thread))
    elif (
        direct
        and clock.reply_grace <= age
        and _present_age(clock, date, away) <= clock.reply_max_age
    ):
        led.owed_by_me.append(Owed(date, m.subject, m.thread))


def _note_domain(led: Ledger, address: str, date: int) -> None:
    domain = address.rpartition("@")[2]
    slot = led.domains_in.get(domain)
    if slot is None:
        led.domains_in[domain] = [date, date, 1]
    else:
        slot[0] = min(slot[0], date)
        slot[1] = max(slot[1], date)
        slot[2] += 1


def _reciprocity(led: Ledger, p: str, seq: list[Mail], first: Mail, clock: Clock) -> None:
    if first.date >= clock.window_start and seq[0] is first:
        by = _initiator(first, p)
        if by is True:
            led.threads_by_me += 1
        elif by is False:
            led.threads_by_them += 1
    if len(seq) == 1:  # most threads: nothing answered, nothing to pair
        m = seq[0]
        if m.date >= clock.window_start:
            if m.out:
                led.w_out += 1
            else:
                led.w_in += 1
        return
    answers: list[Mail | None] = [None] * len(seq)
    next_out: Mail | None = None
    next_in: Mail | None = None
    for i in range(len(seq) - 1, -1, -1):
        m = seq[i]
        answers[i] = next_in if m.out else next_out
        if m.out:
            next_out = m
        else:
            next_in = m
    for i, m in enumerate(seq):
        if m.date < clock.window_start:
            continue
        answer = answers[i]
        if m.out:
            led.w_out += 1
            if answer is not None:
                led.w_out_answered += 1
                led.their_latencies.append(answer.date - m.date)
        else:
            led.w_in += 1
            if answer is not None:
                led.w_in_answered += 1
                led.my_latencies.append(answer.date - m.date)


def _open_loops(
    led: Ledger, p: str, seq: list[Mail], first: Mail, clock: Clock, away: tuple[int, ...]
) -> None:
    last = seq[-1]
    age = clock.now - last.date
    started_by_me = seq[0] is first and _initiator(first, p) is True
    if (
        not last.out
        and p in last.direct
        and _waits_for_me(seq)
        and clock.reply_grace <= age
        and _present_age(clock, last.date, away) <= clock.reply_max_age
    ):
        led.owed_by_me.append(Owed(last.date, last.subject, last.thread))
    if (
        started_by_me
        and all(m.out for m in seq)
        and clock.outreach_wait <= age <= clock.reply_max_age
    ):
        led.owed_to_me.append(Owed(last.date, last.subject, last.thread))


def _waits_for_me(seq: list[Mail]) -> bool:
    """Their trailing messages open a loop when they started the thread and I never answered,
    or when they wrote twice in a row (a follow-up). A single answer to my mail is the natural
    end of a conversation, not a question left hanging."""
    run = 0
    for m in reversed(seq):
        if m.out:
            break
        run += 1
    return run == len(seq) or run >= 2
