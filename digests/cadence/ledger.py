"""Per-person ledgers: contact days, give-and-take and open loops, from touches and threads.

A *contact day* is a local day with two-way contact with the person: a message in a thread where
both of you wrote to each other, or a small meeting they did not decline. Counting days rather than
messages is the better tie-strength signal (Ureña-Carrion et al. 2020) and makes the engine
insensitive to bursts and duplicates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from keepwarm.digests.cadence.touches import CC_WEIGHT, TO_WEIGHT, Mail, Meeting

DAY = 86400
ONE_WAY_FACTOR = 0.25  # a message nobody answered still says a little about a tie
SUBJECTS_KEPT = 8


@dataclass(slots=True)
class Owed:
    """An open loop: a message waiting for an answer."""

    date: int
    subject: str | None
    thread: int


@dataclass(slots=True)
class Ledger:
    """Everything the engine accumulates about one person."""

    key: str
    days: dict[int, float] = field(default_factory=dict)  # two-way contact day -> weight
    one_way_days: dict[int, float] = field(default_factory=dict)
    starts: set[int] = field(default_factory=set)  # days a two-way conversation began
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
    recent_initiators: list[tuple[int, bool]] = field(default_factory=list)  # (date, by me)
    owed_by_me: list[Owed] = field(default_factory=list)
    owed_to_me: list[Owed] = field(default_factory=list)
    subjects: list[tuple[int, str]] = field(default_factory=list)  # latest (date, subject)
    domains_in: dict[str, list[int]] = field(
        default_factory=dict
    )  # sender domain -> [first, last, n]
    last_mail: int | None = None  # last message either way (any thread)
    meetings: int = 0  # held small meetings, all time

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
    return sorted(((d, s) for s, d in latest.items()), key=lambda x: (-x[0], x[1]))[:keep]


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

    def offset_at(self, ts: int) -> int:
        """The user's UTC offset in seconds at ``ts`` (cached per UTC day)."""
        zone = self.zone
        if zone is None:
            return self.offset
        utc_day = ts // DAY
        got = self._offsets.get(utc_day)
        if got is None:
            first = _utcoffset(utc_day * DAY, zone)
            last = _utcoffset(utc_day * DAY + DAY - 1, zone)
            got = self._offsets[utc_day] = first if first == last else _MIXED
        if got == _MIXED:
            return _utcoffset(ts, zone)
        return got

    def day(self, ts: int) -> int:
        return (ts + self.offset_at(ts)) // DAY

    def local(self, ts: int) -> datetime:
        """``ts`` as a naive local wall-clock datetime (for dates and times of day)."""
        return datetime.fromtimestamp(ts + self.offset_at(ts), UTC).replace(tzinfo=None)


def _utcoffset(ts: int, zone: ZoneInfo) -> int:
    off = datetime.fromtimestamp(ts, zone).utcoffset()
    return int(off.total_seconds()) if off is not None else 0


def add_mails(ledgers: dict[str, Ledger], mails: list[Mail], clock: Clock) -> None:
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
                _fold_single(led, p, first, clock, True)
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
                _fold_single(led, p, seq[0], clock, seq[0] is first)
            else:
                _fold_thread(led, p, seq, first, clock)


def _initiator(first: Mail, p: str) -> bool | None:
    """True when I started the thread with ``p``, False when they did, None otherwise."""
    if first.out:
        return True if p in first.direct else None
    return False if first.sender == p else None


def _fold_thread(led: Ledger, p: str, seq: list[Mail], first: Mail, clock: Clock) -> None:
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
    _open_loops(led, p, seq, first, clock)


def _fold_single(led: Ledger, p: str, m: Mail, clock: Clock, starts: bool) -> None:
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
            led.recent_initiators.append((date, by))
        if m.out:
            led.w_out += 1
        else:
            led.w_in += 1
    # open loops
    age = clock.now - date
    if age > clock.reply_max_age:
        return
    if m.out:
        if starts and direct and clock.outreach_wait <= age:
            led.owed_to_me.append(Owed(date, m.subject, m.thread))
    elif direct and clock.reply_grace <= age:
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
        if by is not None:
            led.recent_initiators.append((first.date, by))
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


def _open_loops(led: Ledger, p: str, seq: list[Mail], first: Mail, clock: Clock) -> None:
    last = seq[-1]
    age = clock.now - last.date
    started_by_me = seq[0] is first and _initiator(first, p) is True
    if (
        not last.out
        and p in last.direct
        and _waits_for_me(seq)
        and clock.reply_grace <= age <= clock.reply_max_age
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
        led.starts.add(day)
        led.add_day(day, w, True)
        led.contact(mt.start, mt.title)
        if mt.start >= clock.window_start and not mt.recurring:
            if mt.organiser == "":
                led.meetings_by_me += 1
                led.recent_initiators.append((mt.start, True))
            elif mt.organiser == p:
                led.meetings_by_them += 1
                led.recent_initiators.append((mt.start, False))
