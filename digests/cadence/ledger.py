"""Per-person ledgers: contact days, give-and-take and open loops, from touches and threads.

A *contact day* is a local day with two-way contact with the person: a message in a thread where
both of you wrote to each other, or a small meeting they did not decline. Counting days rather than
messages is the better tie-strength signal (Ureña-Carrion et al. 2020) and makes the engine
insensitive to bursts and duplicates.

Mail is folded per *conversation*: the messages of one thread that touch one person, in date
order. The conversation is two-way when it has a message each way; a message's answer is the next
message of the conversation in the other direction. :func:`fold_touches` computes this for every
conversation at once with array operations (a million messages in about a second) and then builds
one :class:`Ledger` per person; meetings are added one by one (:func:`add_meeting`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice
from zoneinfo import ZoneInfo

import numpy as np
from numpy.typing import NDArray

from keepwarm.digests.cadence.coverage import distinct
from keepwarm.digests.cadence.subjects import over
from keepwarm.digests.cadence.touches import (
    F_FORWARD,
    F_NOT_ASKING,
    F_QUESTION,
    F_REPLY,
    Meeting,
    Touches,
    run_starts,
    sort_order,
    weights,
)

DAY = 86400
DIRECT_K = 3  # a mail shared by at most this many people, addressed To them, is "direct"
SENT_SEEN_BEFORE = 14 * DAY  # my mail seen this soon before a message shows my answers are seen
ANSWER_WINDOW = 14 * DAY  # their new thread this soon after my mail to them answers it
SUBJECTS_KEPT = 8

I64 = NDArray[np.int64]
Bools = NDArray[np.bool_]


@dataclass(slots=True)
class Owed:
    """An open loop: a message waiting for an answer."""

    date: int
    subject: str | None
    thread: int
    message: int = 0  # the store id of the message waiting for an answer
    waiting: int = 1  # their messages in a row without an answer (2+: they followed up)
    shared: int = 1  # people the message was addressed to (1: me alone)
    asks: bool = False  # its subject asks something ("Can you ...", "... ?")


@dataclass(slots=True)
class Ledger:
    """Everything the engine accumulates about one person."""

    key: str
    days: dict[int, float] = field(default_factory=dict)  # two-way contact day -> weight
    one_way_days: dict[int, float] = field(default_factory=dict)
    first_contact: int | None = None  # epoch of the first and last two-way touch
    last_contact: int | None = None
    first_seen: int | None = None
    last_seen: int | None = None
    msgs_in: int = 0  # all time
    msgs_out: int = 0
    # reciprocity window
    w_in: int = 0
    w_out: int = 0
    w_in_answered: int = 0
    w_out_answered: int = 0
    my_latencies: list[int] = field(default_factory=list)
    their_latencies: list[int] = field(default_factory=list)
    threads_by_me: int = 0
    threads_by_them: int = 0
    meetings_by_me: int = 0
    meetings_by_them: int = 0
    owed_by_me: list[Owed] = field(default_factory=list)
    owed_to_me: list[Owed] = field(default_factory=list)
    subjects: list[tuple[int, str]] = field(default_factory=list)  # latest (date, subject)
    domains_in: dict[str, list[int]] = field(
        default_factory=dict
    )  # sender domain -> [first, last, n]
    last_mail: int | None = None  # last message either way (any thread)
    asked_me: int = 0  # their direct messages to me where my own mail is visible ...
    i_answered: int = 0  # ... and how many of those I answered
    i_asked: int = 0  # my direct messages to them where my incoming mail is visible ...
    they_answered: int = 0  # ... and how many of those they answered
    meetings: int = 0  # held small meetings, all time

    @property
    def initiated_by_me(self) -> int:
        """Threads and meetings I started in the reciprocity window."""
        return self.threads_by_me + self.meetings_by_me

    @property
    def initiated_by_them(self) -> int:
        return self.threads_by_them + self.meetings_by_them

    def seen(self, when: int) -> None:
        if self.first_seen is None or when < self.first_seen:
            self.first_seen = when
        if self.last_seen is None or when > self.last_seen:
            self.last_seen = when

    def contact(self, when: int, subject: str | None) -> None:
        """A two-way touch at ``when``; keeps the few latest distinct subjects."""
        if self.first_contact is None or when < self.first_contact:
            self.first_contact = when
        if self.last_contact is None or when > self.last_contact:
            self.last_contact = when
        if subject:
            self.subjects.append((when, subject))
            if len(self.subjects) > 2 * SUBJECTS_KEPT:
                self.subjects = latest_subjects(self.subjects)

    def add_day(self, day: int, weight: float, two_way: bool) -> None:
        target = self.days if two_way else self.one_way_days
        if weight > target.get(day, 0.0) or day not in target:
            target[day] = weight


def latest_subjects(
    seen: list[tuple[int, str]], keep: int = SUBJECTS_KEPT
) -> list[tuple[int, str]]:
    """The ``keep`` most recent distinct subjects of ``(date, subject)`` pairs, newest first
    (ties by subject): the same whatever order the pairs came in."""
    latest: dict[str, int] = {}
    for when, subject in seen:
        if when > latest.get(subject, -(2**62)):
            latest[subject] = when
    return _newest(latest, keep)


def _newest(latest: dict[str, int], keep: int = SUBJECTS_KEPT) -> list[tuple[int, str]]:
    """The ``keep`` newest of subjects and their latest dates, as (date, subject), newest first
    (ties by subject)."""
    return [(-d, s) for d, s in sorted([(-d, s) for s, d in latest.items()])[:keep]]


_MIXED = 1 << 40  # a UTC day during which the zone's offset changes


@dataclass(frozen=True, slots=True)
class Clock:
    """Times the ledger needs, as epoch seconds and local day numbers.

    A local day number is ``(ts + offset) // DAY`` with the user's UTC offset *at ts*: with a
    ``zone`` the offset follows DST, so a message at 23:30 in winter stays on its day when ``now``
    is in summer. Without one (tests) ``offset`` holds everywhere.
    """

    now: int
    offset: int  # the user's UTC offset at ``now``, seconds
    window_start: int
    reply_grace: int
    reply_max_age: int
    outreach_wait: int
    zone: ZoneInfo | None = None
    _offsets: dict[int, int] = field(default_factory=dict, compare=False, repr=False)

    def _day_offset(self, utc_day: int, zone: ZoneInfo) -> int:
        """The offset during UTC day ``utc_day``, or :data:`_MIXED` when it changes that day."""
        got = self._offsets.get(utc_day)
        if got is None:
            first = _utcoffset(utc_day * DAY, zone)
            last = _utcoffset(utc_day * DAY + DAY - 1, zone)
            got = self._offsets[utc_day] = first if first == last else _MIXED
        return got

    def offset_at(self, ts: int) -> int:
        """The user's UTC offset in seconds at ``ts`` (cached per UTC day)."""
        zone = self.zone
        if zone is None:
            return self.offset
        got = self._day_offset(ts // DAY, zone)
        if got == _MIXED:
            return _utcoffset(ts, zone)
        return got

    def day(self, ts: int) -> int:
        return (ts + self.offset_at(ts)) // DAY

    def days(self, ts: I64) -> I64:
        """:meth:`day` of every timestamp in ``ts``."""
        zone = self.zone
        if zone is None:
            return (ts + self.offset) // DAY
        utc_days, of_day = distinct(ts // DAY)
        per_day = np.array([self._day_offset(u, zone) for u in utc_days.tolist()], dtype=np.int64)
        offsets = per_day[of_day]
        for i in np.flatnonzero(offsets == _MIXED).tolist():
            offsets[i] = _utcoffset(int(ts[i]), zone)
        out: I64 = (ts + offsets) // DAY
        return out

    def local(self, ts: int) -> datetime:
        """``ts`` as a naive local wall-clock datetime (for dates and times of day)."""
        return datetime.fromtimestamp(ts + self.offset_at(ts), UTC).replace(tzinfo=None)


def _utcoffset(ts: int, zone: ZoneInfo) -> int:
    off = datetime.fromtimestamp(ts, zone).utcoffset()
    return int(off.total_seconds()) if off is not None else 0


# -- mail -----------------------------------------------------------------------------------------
def fold_touches(touches: Touches, clock: Clock, away: Sequence[int] = ()) -> dict[str, Ledger]:
    """A ledger for every person the mail touches. ``away``: the local days (sorted) the user
    was out of office.

    Per conversation (a person's messages in one thread, oldest first):

    * every message: first and last seen, messages each way; a received one notes the sender's
      domain (job changes);
    * contact: every message of a two-way conversation, and, once both of us have written to the
      other directly (To, at most :data:`DIRECT_K` people), every direct message either way in
      any thread (real correspondents often never answer inside one thread). A contact message's
      local day is a contact day (its weight, the largest of the day) and its subject a recent
      subject; other mail: only my messages' days, as one-way days;
    * in the reciprocity window: messages each way, answered or not and how fast (the answer is
      the next message the other way), and who started the thread (when the conversation's first
      message is the thread's first; theirs only when addressed to me directly);
    * open loops: their last message(s) addressed to me directly and waiting for me past the
      grace period (a follow-up, or a thread they started), unless it asks nothing (a forward, an
      FYI, a thank-you); or a thread I started (not a reply or a forward) with someone I have a
      relationship with, nothing but my messages, unanswered past the wait. A reply I owe stays
      owed for ``reply_max_age`` of days I was there: days out of office after it came do not
      count.
    """
    t = touches
    c = _Conversations.of(t, clock)
    if c is None:
        return {}
    n_persons = len(t.persons)
    counts, my_lat, their_lat = _reciprocity(c, clock, n_persons)
    asked, answered, i_asked, they_answered = _answer_history(c, t)
    loops_by_me, loops_to_me = _open_loops(c, clock, t, away, (asked, answered))
    person, date, contact = c.person, c.date, c.contact
    contact_first, contact_last = _extremes(person, date, contact)
    # subjects first: their walk's arrays come and go before the days' dicts are built
    subjects = _recent_subjects(person, date, c.touch, contact, t)
    days = _max_by_day(person, c.day, c.weight, contact)
    one_way = _max_by_day(person, c.day, c.weight, c.out & ~contact)
    domains = _domains(person, date, t.sender_domain[c.touch], ~c.out, t.domains)

    p_first = np.flatnonzero(run_starts(person))
    p_of = person[p_first]
    p_n = np.diff(np.append(p_first, len(person)))
    p_out = np.add.reduceat(c.out.astype(np.int64), p_first)
    p_min = np.minimum.reduceat(date, p_first)
    p_max = np.maximum.reduceat(date, p_first)
    del c, person, date, contact
    ledgers: dict[str, Ledger] = {}
    rows = zip(
        p_of.tolist(), p_n.tolist(), p_out.tolist(), p_min.tolist(), p_max.tolist(), strict=True
    )
    w_in, w_out = counts["w_in"], counts["w_out"]
    w_in_answered, w_out_answered = counts["w_in_answered"], counts["w_out_answered"]
    by_me, by_them = counts["threads_by_me"], counts["threads_by_them"]
    asked_me, i_answered = asked.tolist(), answered.tolist()
    i_asked_them, they_answered_me = i_asked.tolist(), they_answered.tolist()
    for p, total, sent, lo, hi in rows:
        key = t.persons[p]
        ledgers[key] = Ledger(
            key,
            days=days.get(p, {}),
            one_way_days=one_way.get(p, {}),
            first_contact=contact_first.get(p),
            last_contact=contact_last.get(p),
            first_seen=lo,
            last_seen=hi,
            msgs_in=total - sent,
            msgs_out=sent,
            w_in=w_in[p],
            w_out=w_out[p],
            w_in_answered=w_in_answered[p],
            w_out_answered=w_out_answered[p],
            my_latencies=my_lat.get(p, []),
            their_latencies=their_lat.get(p, []),
            threads_by_me=by_me[p],
            threads_by_them=by_them[p],
            owed_by_me=loops_by_me.get(p, []),
            asked_me=asked_me[p],
            i_answered=i_answered[p],
            i_asked=i_asked_them[p],
            they_answered=they_answered_me[p],
            owed_to_me=loops_to_me.get(p, []),
            subjects=subjects.get(p, []),
            domains_in=domains.get(p, {}),
            last_mail=hi,
        )
    return ledgers


@dataclass(frozen=True, eq=False)
class _Conversations:
    """The mail's (person, message) rows sorted by person, thread and date: each run of one
    person and one thread is a conversation (``first`` and ``last`` rows of each)."""

    person: I64
    touch: I64
    thread: I64
    direct: Bools
    weight: NDArray[np.float64]
    date: I64
    out: Bools
    day: I64
    conv: I64  # the conversation of each row
    first: I64  # per conversation
    last: I64
    n_out: I64  # my messages in each conversation
    two_way_conv: Bools
    two_way: Bools  # per row: in a two-way conversation
    opens_thread: Bools  # the row's message is its thread's first
    flags: I64  # the message's F_* bits
    direct_k: Bools  # addressed To them (or to me) and shared by at most DIRECT_K people
    related: Bools  # per row: its person wrote to me directly and I to them (ever)
    contact: Bools  # per row: counts as contact (two-way conversation, or direct mail of a
    # relationship)

    @classmethod
    def of(cls, t: Touches, clock: Clock) -> _Conversations | None:
        # by person, thread and touch (the inc_* rows are sorted by touch: the row breaks ties)
        n_touches = len(t.date)
        order = sort_order(((t.inc_person, len(t.persons)), (t.thread[t.inc_touch], n_touches)))
        n = len(order)
        if not n:
            return None
        touch = t.inc_touch[order]
        person = t.inc_person[order]
        thread = t.thread[touch]
        date = t.date[touch]
        out = t.out[touch]
        starts = run_starts(person) | run_starts(thread)
        conv = np.cumsum(starts) - 1
        first = np.flatnonzero(starts)
        del starts
        last = np.append(first[1:], n) - 1
        size = last - first + 1
        n_out = np.add.reduceat(out.astype(np.int64), first)
        two_way_conv = (size > 1) & (n_out > 0) & (n_out < size)
        direct = t.inc_direct[order]
        k = t.k[touch]
        direct_k = direct & (k <= DIRECT_K)
        # once both sides wrote directly to each other, direct mail either way is contact
        n_persons = len(t.persons)
        flags = t.flags[touch]
        # my direct reply to them shows they wrote to me, even where their mail is not kept
        answered = out & ((flags & F_REPLY) != 0)
        wrote_in = np.bincount(person[direct_k & (~out | answered)], minlength=n_persons) > 0
        wrote_out = np.bincount(person[direct_k & out], minlength=n_persons) > 0
        related = (wrote_in & wrote_out)[person]
        two_way = two_way_conv[conv]
        return cls(
            person=person,
            touch=touch,
            thread=thread,
            direct=direct,
            weight=weights(direct, k),
            date=date,
            out=out,
            day=clock.days(date),
            conv=conv,
            first=first,
            last=last,
            n_out=n_out,
            two_way_conv=two_way_conv,
            two_way=two_way,
            opens_thread=touch == thread,
            flags=flags,
            direct_k=direct_k,
            related=related,
            contact=two_way | (related & direct_k),
        )


def _reciprocity(
    c: _Conversations, clock: Clock, n_persons: int
) -> tuple[dict[str, list[int]], dict[int, list[int]], dict[int, list[int]]]:
    """Counts by person in the window (messages each way, answered, threads started by whom)
    and the reply latencies each way."""
    out, date = c.out, c.date
    n = len(date)
    window = date >= clock.window_start
    # the answer to a message: the next row the other way (the start of the next run of rows
    # one way), or none (n)
    turns = run_starts(out)
    answer = np.append(np.flatnonzero(turns)[1:], n)[np.cumsum(turns) - 1]
    del turns
    answered = window & (answer <= c.last[c.conv])
    latency = date[np.minimum(answer, n - 1)] - date
    del answer
    # a thread's first message is the first of its conversations, as rows go by date; a "Re:" or
    # "Fw:" that opens a thread answers or passes on a message the mailbox does not hold
    started = c.opens_thread & window
    fresh = (c.flags & (F_REPLY | F_FORWARD)) == 0
    counts = {
        name: np.bincount(c.person[mask], minlength=n_persons).tolist()
        for name, mask in (
            ("w_in", window & ~out),
            ("w_out", window & out),
            ("w_in_answered", answered & ~out),
            ("w_out_answered", answered & out),
            ("threads_by_me", started & out & c.direct & fresh),
            ("threads_by_them", started & ~out & c.direct & fresh),
        )
    }
    mine, theirs = answered & ~out, answered & out
    return (
        counts,
        _grouped(c.person[mine], latency[mine]),
        _grouped(c.person[theirs], latency[theirs]),
    )


def _open_loops(
    c: _Conversations,
    clock: Clock,
    t: Touches,
    away: Sequence[int],
    history: tuple[I64, I64],
) -> tuple[dict[int, list[Owed]], dict[int, list[Owed]]]:
    """Open loops, judged on each conversation's last message: owed by me and owed to me.

    Each condition narrows the mask as soon as it is known, so only a few per-conversation
    arrays are alive at once (a million messages make hundreds of thousands of conversations)."""
    first, last = c.first, c.last
    size = last - first + 1
    last_out = np.maximum.reduceat(np.where(c.out, np.arange(len(c.out)), -1), first)
    trailing = np.where(last_out < first, size, last - last_out)  # their messages at the end
    mine_before = last_out >= first
    del last_out
    by_me = _owed_by_me(c, clock, t, away, history, trailing, mine_before)
    to_me = _owed_to_me(c, clock, t, size)
    return (
        _owed(c, last[by_me], trailing[by_me], t, clock),
        _owed(c, last[to_me], size[to_me], t, clock),
    )


def _owed_by_me(
    c: _Conversations,
    clock: Clock,
    t: Touches,
    away: Sequence[int],
    history: tuple[I64, I64],
    trailing: I64,
    mine_before: Bools,
) -> Bools:
    """The conversations whose last message waits for my answer.

    The first checks narrow the conversations to those still in question, and the others run
    on those only (most conversations end with my message, or mail not addressed to me)."""
    last, out = c.last, c.out
    age = clock.now - c.date[last]
    ok = (age >= clock.reply_grace) & ~out[last] & c.direct_k[last]
    convs = np.flatnonzero(ok)
    age, last = age[convs], last[convs]
    trailing, mine_before = trailing[convs], mine_before[convs]
    days_away = np.asarray(away, dtype=np.int64)
    since = len(days_away) - np.searchsorted(days_away, c.day[last], side="right")
    still = age - since * DAY <= clock.reply_max_age  # the time since it came, less days away
    del age, since
    # my own mail is visible around it: else my answer may be where keepwarm can't see
    still &= t.coverage.sent_since(c.date[last] - SENT_SEEN_BEFORE)
    flags = c.flags[last]
    still &= (flags & F_NOT_ASKING) == 0  # it asks something
    # they started something (not an answer to a message of mine missing from the mailbox), or
    # they wrote again after my last message and were not answered
    still &= np.where(mine_before, trailing >= 2, (flags & F_REPLY) == 0)
    question = (flags & F_QUESTION) != 0  # a question is no answer, nor just news
    del flags
    # nothing came in the thread after it: a thread that went on without me was dealt with
    thread_end = np.zeros(len(t.date), dtype=np.int64)
    np.maximum.at(thread_end, t.thread, t.date)
    still &= c.date[last] >= thread_end[c.thread[last]]
    del thread_end
    # they keep me informed rather than ask: INFORMS_MIN direct messages seen, none answered; or
    # INFORMS_MIN messages of theirs (in To or Cc) and never one of mine to them
    asked, answered = history
    n = len(t.persons)
    one_way = (np.bincount(c.person[~out], minlength=n) >= INFORMS_MIN) & (
        np.bincount(c.person[out], minlength=n) == 0
    )
    informs = ((asked >= INFORMS_MIN) & (answered == 0)) | one_way
    still &= ~informs[c.person[last]] | question | (mine_before & (trailing >= 2))  # they chase
    at = np.flatnonzero(still)  # the last check only for the conversations still waiting
    still[at] = _not_heard_from_me(c, convs[at], mine_before[at], question[at])
    ok[convs] = still
    return ok


def _not_heard_from_me(c: _Conversations, convs: I64, mine_before: Bools, question: Bools) -> Bools:
    """Of the conversations ``convs``, those whose last message I have not written after (in
    any thread): else they have heard from me; or my last message to them, shortly before,
    still had no answer in its own thread, and theirs (in a thread of its own) is most likely
    that answer. ``mine_before`` and ``question``: of each of ``convs``."""
    last = c.last[convs]
    mine_rows = np.flatnonzero(c.out)
    keys = c.person[mine_rows] * (1 << 40) + c.date[mine_rows]
    date = c.date[mine_rows]
    low = int(date.min()) if len(date) else 0
    by = (
        (c.person[mine_rows], int(c.person.max()) + 1),
        (date - low, int(date.max(initial=low)) - low + 1),
    )
    order = sort_order(by)  # by key, ties in row order
    del date, by
    mine_dates = np.append(-1, keys[order])  # -1: a floor below every key
    mine_open = np.append(False, (mine_rows == c.last[c.conv[mine_rows]])[order])
    del keys, order, mine_rows
    them = c.person[last] * (1 << 40)
    after = np.searchsorted(mine_dates, them + c.date[last], side="right")
    not_since = (after >= len(mine_dates)) | (
        mine_dates[np.minimum(after, len(mine_dates) - 1)] >= them + (1 << 40)
    )
    answers_me = mine_open[after - 1] & (
        mine_dates[after - 1] >= them + c.date[last] - ANSWER_WINDOW
    )
    not_since &= ~(answers_me & ~mine_before & ~question)  # in one conversation the order is known
    return not_since


def _owed_to_me(c: _Conversations, clock: Clock, t: Touches, size: I64) -> Bools:
    """The conversations I started whose answer I am still waiting for."""
    first, last, out = c.first, c.last, c.out
    age = clock.now - c.date[last]
    ok = (age >= clock.outreach_wait) & (age <= clock.reply_max_age)
    del age
    ok &= c.n_out == size  # my messages only
    convs = np.flatnonzero(ok)  # the other checks only for the conversations still in question
    first, last = first[convs], last[convs]
    started = (c.flags[first] & (F_NOT_ASKING | F_REPLY)) == 0  # not an answer or a forward
    still = c.opens_thread[first] & out[first] & c.direct_k[first] & started & c.related[first]
    del started
    # they have been in touch since (any thread): nothing to chase
    heads = np.flatnonzero(run_starts(c.person))  # rows come by person
    theirs_last = np.full(len(t.persons), -1, dtype=np.int64)
    theirs = np.maximum.reduceat(np.where(out, -1, c.date), heads)
    theirs_last[c.person[heads]] = np.maximum(theirs, -1)  # -1: none (as for the others)
    still &= theirs_last[c.person[last]] < c.date[last]
    # my incoming mail is visible before (else my "new" thread may answer a lost message)
    # and after it (else their answer may be where keepwarm can't see)
    still &= t.coverage.received_near(c.date[first], SENT_SEEN_BEFORE)
    still &= t.coverage.received_after(c.date[last] + clock.reply_grace)
    ok[convs] = still
    return ok


INFORMS_MIN = 2  # messages seen, none answered: a sender who keeps me informed


def _answer_history(c: _Conversations, t: Touches) -> tuple[I64, I64, I64, I64]:
    """Per person: their direct messages to me (not answers to mine) at times my own mail is
    visible and how many of those I answered; my direct messages to them (likewise) at times my
    incoming mail is visible and how many of those they answered (an answer: a later message the
    other way in the same conversation)."""
    n = len(t.persons)
    rows = np.arange(len(c.out))
    last_out = np.maximum.reduceat(np.where(c.out, rows, -1), c.first)
    last_in = np.maximum.reduceat(np.where(~c.out, rows, -1), c.first)
    # a message that answers the other's last one asks nothing: only openers count
    opener = np.append(True, c.out[1:] == c.out[:-1])  # the same way as the row before ...
    opener[c.first] = True  # ... or a conversation's first
    asking = opener & c.direct_k
    del opener
    # the coverage is looked up for these rows only
    received = np.flatnonzero(asking & ~c.out)
    received = received[t.coverage.sent_near(c.date[received], SENT_SEEN_BEFORE)]
    sent = np.flatnonzero(asking & c.out)
    sent = sent[t.coverage.received_near(c.date[sent], SENT_SEEN_BEFORE)]
    del asking
    return (
        np.bincount(c.person[received], minlength=n),
        np.bincount(c.person[received[last_out[c.conv[received]] > received]], minlength=n),
        np.bincount(c.person[sent], minlength=n),
        np.bincount(c.person[sent[last_in[c.conv[sent]] > sent]], minlength=n),
    )


def _grouped(person: I64, values: I64) -> dict[int, list[int]]:
    """``values`` as lists by person (``person`` sorted)."""
    every = values.tolist()
    return {p: every[lo:hi] for p, lo, hi in _runs(person)}


def _runs(values: I64) -> Iterator[tuple[int, int, int]]:
    """``(value, start, end)`` of each run of equal ``values`` (grouped)."""
    starts = np.flatnonzero(run_starts(values))
    bounds = [*starts.tolist(), len(values)]
    return zip(values[starts].tolist(), bounds, bounds[1:], strict=False)


def _extremes(person: I64, date: I64, mask: Bools) -> tuple[dict[int, int], dict[int, int]]:
    """The first and last ``date`` by person (``person`` sorted), among the rows in ``mask``."""
    p, d = person[mask], date[mask]
    if not len(p):
        return {}, {}
    heads = np.flatnonzero(run_starts(p))
    who = p[heads].tolist()
    lows = np.minimum.reduceat(d, heads).tolist()
    highs = np.maximum.reduceat(d, heads).tolist()
    return dict(zip(who, lows, strict=True)), dict(zip(who, highs, strict=True))


def _max_by_day(
    person: I64, day: I64, weight: NDArray[np.float64], mask: Bools
) -> dict[int, dict[int, float]]:
    """Per person, the heaviest weight of each day (days in order), among the rows in ``mask``."""
    rows = np.flatnonzero(mask)
    if not len(rows):
        return {}
    p, d = person[rows], day[rows]
    low = int(d.min())
    order = sort_order(((p, int(p.max()) + 1), (d - low, int(d.max()) - low + 1)), stable=False)
    del p, d  # the rows in their new order are gathered once: no second copy of each column
    rows = rows[order]
    del order
    p, d, w = person[rows], day[rows], weight[rows]
    del rows
    heads = np.flatnonzero(run_starts(p) | run_starts(d))  # each (person, day) once
    entries = zip(d[heads].tolist(), np.maximum.reduceat(w, heads).tolist(), strict=True)
    p = p[heads]
    starts = np.flatnonzero(run_starts(p))
    sizes = np.diff(np.append(starts, len(p))).tolist()
    # each person's days, taken in turn from the one iterator of them all
    return {who: dict(islice(entries, n)) for who, n in zip(p[starts].tolist(), sizes, strict=True)}


def _recent_subjects(
    person: I64, date: I64, touch: I64, mask: Bools, touches: Touches
) -> dict[int, list[tuple[int, str]]]:
    """Per person, :func:`latest_subjects` of the rows in ``mask``.

    Each person's rows are walked newest first, a few at a time (subjects are read on demand,
    for all the walks of a round at once), until the walk has enough distinct subjects that the
    older rows cannot beat: once the walk has :data:`SUBJECTS_KEPT` of them, only the rows as
    recent as the last of those are still read.
    """
    rows = np.flatnonzero(mask)
    if not len(rows):
        return {}
    top = int(date[rows].max())
    age = top - date[rows]
    # (the order of a person's rows of one date does not matter)
    by_age = ((person[rows], len(touches.persons)), (age, int(age.max()) + 1))
    rows = rows[sort_order(by_age, stable=False)]
    del by_age
    # rows, not lists: a walk reads a few rows per person, and a million Python ints would
    # cost more memory than everything else here
    age = top - date[rows]  # by person, then newest first: (walk, age) ascending
    starts = np.flatnonzero(run_starts(person[rows]))
    walk_of = np.cumsum(run_starts(person[rows])) - 1
    span = int(age.max()) + 1
    rank = walk_of * span + age  # ascending
    del walk_of
    lo, hi = starts.copy(), np.append(starts[1:], len(rows))
    who = person[rows[starts]].tolist()
    del starts
    latest: list[dict[str, int]] = [{} for _ in who]
    floors = np.full(len(who), -1, dtype=np.int64)  # the age of the walk's last needed subject
    walks = np.arange(len(who))
    step = SUBJECTS_KEPT
    while len(walks):
        # the next rows of each walk: ``step`` of them, or, once its floor is known, those
        # as recent as the floor (none left: the walk is done)
        floor = floors[walks]
        stop = np.minimum(hi[walks], lo[walks] + step)
        known = floor >= 0
        stop[known] = np.searchsorted(rank, walks[known] * span + floor[known], side="right")
        count = stop - lo[walks]
        going = count > 0
        walks, floor, stop, count = walks[going], floor[going], stop[going], count[going]
        if not len(walks):
            break
        at = np.repeat(lo[walks] - (np.cumsum(count) - count), count) + np.arange(count.sum())
        subjects = touches.subjects(touch[rows[at]].tolist())
        ages = age[at].tolist()
        pos = 0
        reached = floor.tolist()
        for j, (w, n) in enumerate(zip(walks.tolist(), count.tolist(), strict=True)):
            found, f = latest[w], reached[j]
            for i in range(pos, pos + n):
                if 0 <= f < ages[i]:
                    break  # older than the floor: the walk is done
                s = subjects[i]
                if s and s not in found:
                    found[s] = top - ages[i]
                    if f < 0 and len(found) >= SUBJECTS_KEPT:
                        f = ages[i]
            pos += n
            reached[j] = f
        floors[walks] = reached
        lo[walks] = stop
        walks = walks[stop < hi[walks]]
        step *= 2
    return {p: _newest(found) for p, found in zip(who, latest, strict=True) if found}


def _domains(
    person: I64, date: I64, domain: I64, mask: Bools, names: list[str]
) -> dict[int, dict[str, list[int]]]:
    """Per person and sender domain of the rows in ``mask``: [first date, last date, messages]."""
    rows = np.flatnonzero(mask)
    out: dict[int, dict[str, list[int]]] = {}
    if not len(rows):
        return out
    p, dom = person[rows], domain[rows]
    order = sort_order(((p, int(p.max()) + 1), (dom + 1, len(names) + 1)), stable=False)
    del p, dom  # gathered once, in the new order (as in _max_by_day)
    rows = rows[order]
    del order
    p, d, dom = person[rows], date[rows], domain[rows]
    del rows
    heads = np.flatnonzero(run_starts(p) | run_starts(dom))
    columns = (
        p[heads].tolist(),
        dom[heads].tolist(),
        np.minimum.reduceat(d, heads).tolist(),
        np.maximum.reduceat(d, heads).tolist(),
        np.diff(np.append(heads, len(p))).tolist(),
    )
    for who, domain, first, last, n in zip(*columns, strict=True):
        out.setdefault(who, {})[names[domain]] = [first, last, n]
    return out


def _owed(
    c: _Conversations, rows: I64, waiting: I64, touches: Touches, clock: Clock
) -> dict[int, list[Owed]]:
    """The open loops of ``rows``, but those about a day that is over (moot)."""
    out: dict[int, list[Owed]] = {}
    today = clock.local(clock.now).date()
    touch = c.touch[rows]
    subjects = touches.subjects(touch.tolist())
    columns = (
        rows.tolist(),
        subjects,
        touches.message[touch].tolist(),
        waiting.tolist(),
        touches.k[touch].tolist(),
        ((touches.flags[touch] & F_QUESTION) != 0).tolist(),
    )
    for r, subject, mid, n, k, question in zip(*columns, strict=True):
        if over(subject, clock.local(int(c.date[r])).date(), today):
            continue
        out.setdefault(int(c.person[r]), []).append(
            Owed(int(c.date[r]), subject, int(c.thread[r]), int(mid), int(n), int(k), question)
        )
    return out


# -- meetings -------------------------------------------------------------------------------------
def add_meeting(ledgers: dict[str, Ledger], mt: Meeting, clock: Clock) -> None:
    """A held meeting: a contact day with every attendee who did not decline (if small)."""
    if not mt.small:
        return
    day = clock.day(mt.start)
    for p, w in mt.people.items():
        led = ledgers.get(p)
        if led is None:
            led = ledgers[p] = Ledger(p)
        led.seen(mt.start)
        led.meetings += 1
        led.add_day(day, w, True)
        led.contact(mt.start, mt.title)
        if mt.start >= clock.window_start and not mt.recurring:
            if mt.organiser == "":
                led.meetings_by_me += 1
            elif mt.organiser == p:
                led.meetings_by_them += 1
