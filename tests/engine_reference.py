"""The engine's message path written plainly: one Python object per message, folded message by
message and conversation by conversation. Slow, but each rule reads as it is documented; tests
compare the columnar path (:mod:`keepwarm.digests.cadence.touches` and
``ledger.fold_touches``) against it, ledger by ledger.

It reads :class:`~keepwarm.digests.queries.MessageRecord` objects and fills the engine's own
:class:`~keepwarm.digests.cadence.ledger.Ledger`; the rules are those of the module docstrings
of ``touches.py``, ``ledger.py`` and ``coverage.py``. Each person's strength and rhythm are
worked out one person at a time too (``rhythm.py`` works out everyone at once).
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from statistics import median
from typing import Any

from keepwarm.digests.cadence import touches
from keepwarm.digests.cadence.coverage import Coverage
from keepwarm.digests.cadence.ledger import (
    ANSWER_WINDOW,
    DIRECT_K,
    INFORMS_MIN,
    SENT_SEEN_BEFORE,
    Clock,
    Ledger,
    Owed,
)
from keepwarm.digests.cadence.model import Directory
from keepwarm.digests.cadence.rhythm import (
    EPISODE_GAP_DAYS,
    FULL_GAPS,
    LENGTH_FULL_DAYS,
    MIN_GAP_DAYS,
    RECENT_GAPS,
    Decay,
    Rhythm,
    prior_cadence,
)
from keepwarm.digests.cadence.subjects import over
from keepwarm.digests.cadence.touches import (
    CC_WEIGHT,
    F_FORWARD,
    F_NOT_ASKING,
    F_QUESTION,
    F_REPLY,
    F_SENT_FOLDER,
    F_UNTHREADED,
    TO_WEIGHT,
    marker_class,
)
from keepwarm.digests.queries import MessageRecord

SUBJECT_WINDOW_DAYS = 30
EMPTY_SUBJECT_WINDOW_DAYS = 2
DAY = 86400


@dataclass(slots=True)
class Mail:
    """A message that is a touch with at least one person.

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
    flags: int
    message: int
    index: int = -1
    thread: int = -1

    def weight(self, person: str) -> float:
        return (TO_WEIGHT if person in self.direct else CC_WEIGHT) / self.k

    def direct_k(self, person: str) -> bool:
        """Addressed To them (or, theirs, to me) and shared by at most DIRECT_K people."""
        return person in self.direct and self.k <= DIRECT_K


class People:
    """Address -> person key (memoised)."""

    def __init__(self, d: Directory) -> None:
        self.d = d
        self._cache: dict[str, str | None] = {}

    def __call__(self, address: str) -> str | None:
        if address not in self._cache:
            self._cache[address] = touches.person_of(self.d, address)
        return self._cache[address]

    def is_list(self, address: str) -> bool:
        return self.d.kind_of(self.d.key_of(address)) == "list"


def _keys(addresses: Iterable[str], people: People, skip: Iterable[str] = ()) -> tuple[str, ...]:
    out: list[str] = []
    for a in addresses:
        key = people(a)
        if key is not None and key not in out and key not in skip:
            out.append(key)
    return tuple(out)


def fold_messages(
    records: Iterable[MessageRecord], people: People, max_recipients: int, now: int
) -> tuple[list[Mail], Coverage]:
    """The touches among ``records`` dated up to ``now``, oldest first, each with its thread id,
    and what the mailbox shows of my mail both ways."""
    import numpy as np

    me = people.d.self_addresses
    threads = _Threads()
    out: list[Mail] = []
    sent: list[int] = []
    received: list[int] = []
    unique = {m.id: m for m in records}
    for m in sorted(unique.values(), key=lambda m: (m.date, m.id)):
        date, sender, to, cc, bcc = m.date, m.sender, m.to, m.cc, m.bcc
        if date > now or sender is None:
            continue
        bulk, flags = marker_class(" ".join(sorted(m.markers))) if m.markers else (False, 0)
        mine = sender in me or bool(flags & F_SENT_FOLDER)
        (sent if mine else received).append(date)
        if m.list_id or bulk:
            continue
        if len({*to, *cc, *bcc}) > max_recipients:
            continue
        if any(people.is_list(a) for a in (*to, *cc, *bcc)):
            continue  # a post to a list, with or without list headers
        if "subject:none" in m.markers and not (m.thread_hint or m.in_reply_to or m.refs):
            flags |= F_UNTHREADED
        subj = m.subject
        if mine:
            direct = _keys(to, people)
            indirect = _keys(cc + bcc, people, direct)
            k = len(direct) + len(indirect)
            if not k or not _keys(to + cc, people):  # nobody in To or Cc: a broadcast
                continue
            mail = Mail(date, True, None, direct, indirect, (), k, subj, None, flags, m.id)
            members = direct + indirect
        else:
            s = people(sender)
            if s is None or not any(a != sender for a in to + cc):
                continue  # not a person, or nobody but the sender visible: a broadcast
            others = _keys(to + cc + bcc, people, (s,))
            me_in_to = not me.isdisjoint(to)
            d, ind = ((s,), ()) if me_in_to else ((), (s,))
            mail = Mail(date, False, s, d, ind, others, 1 + len(others), subj, sender, flags, m.id)
            members = (s, *others)
        i = len(out)
        mail.index = i
        out.append(mail)
        threads.parent.append(i)
        if m.thread_hint:
            threads.join(i, m.thread_hint)
        if m.message_id:
            threads.join(i, hash(m.message_id))
        if m.refs:
            threads.join(i, hash(m.refs[0]))
            if m.refs[-1] != m.refs[0]:
                threads.join(i, hash(m.refs[-1]))
        if m.in_reply_to:
            threads.join(i, hash(m.in_reply_to))
        if not m.thread_hint:
            threads.subject(i, date, m.norm_subject or "", members)
    for i, mail in enumerate(out):
        mail.thread = threads.find(i)
    coverage = Coverage.of(np.array(sent, dtype=np.int64), np.array(received, dtype=np.int64))
    return out, coverage


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

    Provider thread ids join first; then Message-ID, In-Reply-To and References; then the
    normalized subject with a shared person within :data:`SUBJECT_WINDOW_DAYS`. The root of a
    thread is its oldest message, so thread ids are stable under order.
    """

    def __init__(self) -> None:
        self.parent: list[int] = []
        self.by_key: dict[str | int, int] = {}
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
            if rb < ra:
                ra, rb = rb, ra
            self.parent[rb] = ra

    def join(self, i: int, key: str | int) -> None:
        j = self.by_key.setdefault(key, i)
        if j != i:
            self.union(i, j)

    def subject(self, i: int, date: int, subject: str, people: tuple[str, ...]) -> None:
        threads = self.open.get(subject)
        if threads is None:
            self.open[subject] = [[i, date, set(people)]]
            return
        window = (SUBJECT_WINDOW_DAYS if subject else EMPTY_SUBJECT_WINDOW_DAYS) * DAY
        since = date - window
        while threads and threads[0][1] < since:
            del threads[0]
        for t in threads:
            if t[1] >= since and not t[2].isdisjoint(people):
                self.union(i, t[0])
                t[2].update(people)
                t[1] = date
                return
        threads.append([i, date, set(people)])
        if len(threads) > 8:
            threads.pop(0)


# -- ledgers --------------------------------------------------------------------------------------
def add_mails(
    ledgers: dict[str, Ledger],
    mails: list[Mail],
    clock: Clock,
    coverage: Coverage,
    away: tuple[int, ...] = (),
) -> None:
    """Fold every mail into the ledgers of the people it touches, conversation by conversation
    (one person's messages in one thread). ``away``: my local days out of office."""
    convs: dict[tuple[str, int], list[Mail]] = {}
    for m in mails:
        for p in m.direct + m.indirect:
            convs.setdefault((p, m.thread), []).append(m)
    thread_end: dict[int, int] = {}
    for m in mails:
        thread_end[m.thread] = max(thread_end.get(m.thread, m.date), m.date)
    by_person: dict[str, list[list[Mail]]] = {}
    for (p, _t), seq in convs.items():
        by_person.setdefault(p, []).append(seq)
    for p, seqs in by_person.items():
        led = ledgers.setdefault(p, Ledger(p))
        related = _related(p, seqs)
        history = _answer_history(p, seqs, coverage)
        led.asked_me, led.i_answered, led.i_asked, led.they_answered = history
        mine = sorted((m.date, m is seq[-1]) for seq in seqs for m in seq if m.out)
        theirs_last = max((m.date for seq in seqs for m in seq if not m.out), default=-1)
        n_in = sum(1 for seq in seqs for m in seq if not m.out)
        one_way = n_in >= INFORMS_MIN and not mine
        for seq in seqs:
            _fold(led, p, seq, clock, related)
            _loops(led, p, seq, clock, away, coverage, related, history, mine, theirs_last,
                   thread_end, one_way)  # fmt: skip


def _related(p: str, seqs: list[list[Mail]]) -> bool:
    """Both of us wrote to the other directly (my direct "Re:" shows they wrote to me)."""
    rows = [m for seq in seqs for m in seq]
    wrote_out = any(m.out and m.direct_k(p) for m in rows)
    wrote_in = any(m.direct_k(p) and (not m.out or m.flags & F_REPLY) for m in rows)
    return wrote_out and wrote_in


def _opener(seq: list[Mail], i: int) -> bool:
    """The message does not answer the other's last one."""
    return i == 0 or seq[i - 1].out == seq[i].out


def _answer_history(
    p: str, seqs: list[list[Mail]], coverage: Coverage
) -> tuple[int, int, int, int]:
    import numpy as np

    asked = answered = i_asked = they_answered = 0
    for seq in seqs:
        for i, m in enumerate(seq):
            if not (_opener(seq, i) and m.direct_k(p)):
                continue
            when = np.array([m.date], dtype=np.int64)
            later = seq[i + 1 :]
            if m.out:
                if coverage.received_near(when, SENT_SEEN_BEFORE)[0]:
                    i_asked += 1
                    they_answered += any(not x.out for x in later)
            elif coverage.sent_near(when, SENT_SEEN_BEFORE)[0]:
                asked += 1
                answered += any(x.out for x in later)
    return asked, answered, i_asked, they_answered


def _fold(led: Ledger, p: str, seq: list[Mail], clock: Clock, related: bool) -> None:
    two_way = len(seq) > 1 and any(m.out for m in seq) and any(not m.out for m in seq)
    for i, m in enumerate(seq):
        date = m.date
        led.seen(date)
        if led.last_mail is None or date > led.last_mail:
            led.last_mail = date
        contact = two_way or (related and m.direct_k(p))
        if contact:
            led.add_day(clock.day(date), m.weight(p), True)
            led.contact(date, m.subject)
        elif m.out:
            led.add_day(clock.day(date), m.weight(p), False)
        if m.out:
            led.msgs_out += 1
        else:
            led.msgs_in += 1
            if m.address:
                _note_domain(led, m.address, date)
        if date < clock.window_start:
            continue
        if m.out:
            led.w_out += 1
        else:
            led.w_in += 1
        answer = next((x for x in seq[i + 1 :] if x.out != m.out), None)
        if answer is not None:
            if m.out:
                led.w_out_answered += 1
                led.their_latencies.append(answer.date - date)
            else:
                led.w_in_answered += 1
                led.my_latencies.append(answer.date - date)
        fresh = not m.flags & (F_REPLY | F_FORWARD)
        if i == 0 and m.thread == m.index and fresh and p in m.direct:
            if m.out:
                led.threads_by_me += 1
            else:
                led.threads_by_them += 1


def _loops(
    led: Ledger,
    p: str,
    seq: list[Mail],
    clock: Clock,
    away: tuple[int, ...],
    coverage: Coverage,
    related: bool,
    history: tuple[int, int, int, int],
    mine: list[tuple[int, bool]],
    theirs_last: int,
    thread_end: dict[int, int],
    one_way: bool,
) -> None:
    import numpy as np

    last, first = seq[-1], seq[0]
    age = clock.now - last.date
    today = clock.local(clock.now).date()
    trailing = 0
    for m in reversed(seq):
        if m.out:
            break
        trailing += 1
    mine_before = trailing < len(seq)
    waits = trailing >= 2 if mine_before else not last.flags & F_REPLY
    asked, answered, _, _ = history
    informs = (asked >= INFORMS_MIN and answered == 0) or one_way
    since_mine = [d for d, _open in mine if d > last.date]
    before_mine = [(d, is_open) for d, is_open in mine if d <= last.date]
    answers_me = (
        bool(before_mine)
        and before_mine[-1][1]  # my last message to them still had no answer in its thread
        and before_mine[-1][0] >= last.date - ANSWER_WINDOW
    )
    question = bool(last.flags & F_QUESTION)
    not_since = not since_mine and not (answers_me and not mine_before and not question)
    day = clock.day(last.date)
    present = age - sum(1 for d in away if d > day) * DAY
    when = np.array([last.date], dtype=np.int64)
    if (
        not last.out
        and last.direct_k(p)
        and not last.flags & F_NOT_ASKING
        and waits
        and last.date >= thread_end[last.thread]
        and not_since
        and (not informs or question or (mine_before and trailing >= 2))
        and age >= clock.reply_grace
        and present <= clock.reply_max_age
        and coverage.sent_since(when - SENT_SEEN_BEFORE)[0]
        and not over(last.subject, clock.local(last.date).date(), today)
    ):
        led.owed_by_me.append(
            Owed(last.date, last.subject, last.thread, last.message, trailing, last.k, question)
        )
    if (
        first.thread == first.index
        and first.out
        and first.direct_k(p)
        and not first.flags & (F_NOT_ASKING | F_REPLY)
        and related
        and all(m.out for m in seq)
        and theirs_last < last.date
        and clock.outreach_wait <= age <= clock.reply_max_age
        and coverage.received_near(np.array([first.date]), SENT_SEEN_BEFORE)[0]
        and coverage.received_after(when + clock.reply_grace)[0]
        and not over(last.subject, clock.local(last.date).date(), today)
    ):
        led.owed_to_me.append(
            Owed(
                last.date,
                last.subject,
                last.thread,
                last.message,
                len(seq),
                last.k,
                bool(last.flags & F_QUESTION),
            )
        )


def _note_domain(led: Ledger, address: str, date: int) -> None:
    domain = address.rpartition("@")[2]
    slot = led.domains_in.get(domain)
    if slot is None:
        led.domains_in[domain] = [date, date, 1]
    else:
        slot[0] = min(slot[0], date)
        slot[1] = max(slot[1], date)
        slot[2] += 1


# -- per person, one at a time (the engine works out everyone at once: rhythm.all_strengths,
# rhythm.all_rhythms; tests/test_cadence_properties.py checks they give these to the last bit)
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
    return _rhythm(cdays, episodes(cdays), today, ooo_days, cadences, pinned)


def _rhythm(
    cdays: tuple[int, ...],
    begun: list[int],
    today: int,
    ooo_days: tuple[int, ...],
    cadences: tuple[float, ...],
    pinned: float | None,
) -> Rhythm:
    """:func:`rhythm` from the contact days up to today and the days their episodes began."""
    gaps = [b - a for a, b in itertools.pairwise(begun[-RECENT_GAPS - 1 :])]  # the recent ones
    typical = float(median(gaps)) if gaps else None
    prior = prior_cadence(typical, cadences, pinned)
    w = min(1.0, len(gaps) / FULL_GAPS)
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
