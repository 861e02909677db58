"""From raw records to touches: which messages and meetings count, how much, and threads.

Rules (see docs/how-it-works.md):

* list, bulk and automatic mail is not a touch; an auto-reply is never a reply;
* a mail to more than ``max_recipients`` people, or a meeting with more than ``max_attendees``,
  is not a touch; a declined or cancelled meeting is not contact;
* weights: a 1:1 mail in To counts 1, Cc/Bcc half of that, shared between the k human
  counterparts (1/k each); a small meeting counts 2/k (synchronous time beats a mail);
* threads: the provider's thread id, then In-Reply-To/References, then the normalized subject
  with overlapping participants within :data:`SUBJECT_WINDOW_DAYS` (Enron has no reply headers).
"""

from __future__ import annotations

import re
from array import array
from collections.abc import Iterable
from dataclasses import dataclass

from keepwarm.digests.cadence.model import Directory
from keepwarm.digests.queries import EventRecord, MessageRecord

BULK_MARKERS = frozenset(
    {
        "list-id",
        "list-unsubscribe",
        "list-post",
        "precedence:bulk",
        "precedence:list",
        "precedence:junk",
        "inference:other",
        "keepwarm-digest",
    }
)
AUTO_MARKERS = frozenset({"x-autoreply", "precedence:auto_reply", "return-path-null"})
SUBJECT_WINDOW_DAYS = 30
EMPTY_SUBJECT_WINDOW_DAYS = 2  # "RE:" with nothing after it: the same people, the same days
TO_WEIGHT, CC_WEIGHT = 1.0, 0.5
MEETING_WEIGHT = 2.0
_NOT_MEETINGS = frozenset({"outOfOffice", "birthday", "focusTime", "workingLocation"})
_OOO_TITLE = re.compile(
    r"\b(ooo|out of (the )?office|vacation|holidays?|pto|annual leave|urlaub|cong[ée]s?)\b", re.I
)


def _marker_class(markers: frozenset[str]) -> tuple[bool, bool]:
    """(bulk, automatic) for a set of markers; memoised, since few distinct sets occur."""
    got = _MARKER_CLASSES.get(markers)
    if got is None:
        bulk = any(k in BULK_MARKERS or k.startswith("category:") for k in markers)
        auto = any(k in AUTO_MARKERS or k.startswith("auto-submitted:") for k in markers)
        got = (bulk, auto)
        if len(_MARKER_CLASSES) < 4096:
            _MARKER_CLASSES[markers] = got
    return got


_MARKER_CLASSES: dict[frozenset[str], tuple[bool, bool]] = {}


def is_bulk(m: MessageRecord) -> bool:
    return bool(m.list_id) or _marker_class(m.markers)[0]


def is_auto(m: MessageRecord) -> bool:
    return _marker_class(m.markers)[1]


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

    @property
    def targets(self) -> tuple[str, ...]:
        return self.direct + self.indirect

    def weight(self, person: str) -> float:
        return (TO_WEIGHT if person in self.direct else CC_WEIGHT) / self.k

    @property
    def participants(self) -> frozenset[str]:
        return frozenset(self.direct + self.indirect + self.others)


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


class People:
    """Address -> person key (None for me, lists, robots, roles, excluded), memoised."""

    def __init__(self, d: Directory) -> None:
        self.d = d
        self._cache: dict[str, str | None] = {}
        self._single: dict[str, tuple[str]] = {}

    def single(self, key: str) -> tuple[str]:
        """A shared one-element tuple: a million incoming mails need only one per person."""
        got = self._single.get(key)
        if got is None:
            got = self._single[key] = (key,)
        return got

    def __call__(self, address: str) -> str | None:
        try:
            return self._cache[address]
        except KeyError:
            key = _person(self.d, address)
            self._cache[address] = key
            return key


def _person(d: Directory, address: str) -> str | None:
    """The person key of ``address`` when it is a person (not me, a list, a robot...)."""
    if address in d.self_addresses:
        return None
    key = d.key_of(address)
    return key if d.kind_of(key) == "person" else None


def classify_message(m: MessageRecord, d: Directory | People, max_recipients: int) -> Mail | None:
    """The touch this message is, or None (bulk, automatic, mass mail, nobody of interest)."""
    people = d if isinstance(d, People) else People(d)
    if m.sender is None or m.list_id:
        return None
    if m.markers:
        bulk, auto = _marker_class(m.markers)
        if bulk or auto:
            return None
    n = len(m.to) + len(m.cc) + len(m.bcc)
    if n > max_recipients and len({*m.to, *m.cc, *m.bcc}) > max_recipients:
        return None
    if m.sender in people.d.self_addresses:
        return _outgoing(m, people)
    return _incoming(m, people)


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


def _outgoing(m: MessageRecord, people: People) -> Mail | None:
    direct = _keys(m.to, people)
    indirect = _keys(m.cc + m.bcc, people, direct) if (m.cc or m.bcc) else ()
    k = len(direct) + len(indirect)
    if not k:
        return None
    return Mail(m.date, True, None, direct, indirect, (), k, m.subject, None)


def _incoming(m: MessageRecord, people: People) -> Mail | None:
    assert m.sender is not None
    sender = people(m.sender)
    if sender is None:
        return None
    others = _keys(m.to + m.cc + m.bcc, people, (sender,))
    me = people.d.self_addresses
    mine = people.single(sender)
    if any(a in me for a in m.to):
        return Mail(m.date, False, sender, mine, (), others, 1 + len(others), m.subject, m.sender)
    return Mail(m.date, False, sender, (), mine, others, 1 + len(others), m.subject, m.sender)


def classify_event(
    e: EventRecord, d: Directory, max_attendees: int, now: int
) -> tuple[Meeting | None, bool]:
    """``(meeting, held)``. ``meeting`` is None when the event is not a meeting with people."""
    if e.status == "cancelled" or e.my_response == "declined" or e.all_day:
        return None, False
    if e.event_type in _NOT_MEETINGS:
        return None, False
    others: dict[str, str] = {}
    total = 1  # me
    for a in e.attendees:
        if a.resource or a.is_self or a.email in d.self_addresses:
            continue
        total += 1
        key = _person(d, a.email)
        if key is not None and a.response != "declined":
            others[key] = a.response
    org_key: str | None = None
    if e.organizer is not None:
        if e.organizer in d.self_addresses:
            org_key = ""
        else:
            org_key = _person(d, e.organizer)
            if org_key is not None and not any(a.email == e.organizer for a in e.attendees):
                others.setdefault(org_key, "accepted")
                total += 1
    if not others:
        return None, False
    small = total <= max_attendees and not e.attendees_omitted
    k = len(others)
    people = dict.fromkeys(others, MEETING_WEIGHT / k if small else 0.0)
    meeting = Meeting(e.id, e.start, e.end, e.title, people, org_key, small, e.recurring)
    return meeting, e.start <= now


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


# -- threading ------------------------------------------------------------------------------------
class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = array("q", range(n))  # 8 bytes a message, no int objects

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
            # keep the older message as the root: thread ids are then stable under order
            if rb < ra:
                ra, rb = rb, ra
            self.parent[rb] = ra


@dataclass(slots=True)
class _OpenThread:
    """A subject thread that a later message may still join."""

    root: int
    last: int
    members: set[str]


class Threader:
    """Assigns thread ids online, message by message in date order.

    Provider thread ids join first; then In-Reply-To/References (a reply seen before its parent
    is joined when the parent arrives); then the normalized subject with a shared person within
    :data:`SUBJECT_WINDOW_DAYS`. Message-IDs are kept as hashes to bound memory.
    """

    def __init__(self) -> None:
        self.uf = _UnionFind(0)
        self.by_hint: dict[str, int] = {}
        self.by_mid: dict[int, int] = {}
        self.open: dict[str, list[_OpenThread]] = {}

    def add(self, m: MessageRecord, mail: Mail) -> int:
        """Register the mail as number ``i`` (the next index); returns ``i``."""
        uf = self.uf
        i = len(uf.parent)
        uf.parent.append(i)
        if m.thread_hint:
            uf.union(i, self.by_hint.setdefault(m.thread_hint, i))
        if m.message_id:
            h = hash(m.message_id)
            j = self.by_mid.setdefault(h, i)
            if j != i:
                uf.union(i, j)
        for ref in _refs(m):
            uf.union(i, self.by_mid.setdefault(hash(ref), i))
        if not m.thread_hint:
            people = mail.direct + mail.indirect + mail.others
            self._subject(i, m.date, m.norm_subject or "", people)
        return i

    def _subject(self, i: int, date: int, subject: str, people: tuple[str, ...]) -> None:
        threads = self.open.get(subject)
        if threads is None:
            self.open[subject] = [_OpenThread(i, date, set(people))]
            return
        window = (SUBJECT_WINDOW_DAYS if subject else EMPTY_SUBJECT_WINDOW_DAYS) * 86400
        since = date - window
        # Dates only grow, so an expired thread is never joined again; dropping the expired ones
        # at the front changes nothing else, as the cap below evicts from the front too.
        while threads and threads[0].last < since:
            del threads[0]
        for t in threads:
            if t.last >= since and not t.members.isdisjoint(people):
                self.uf.union(i, t.root)
                t.members.update(people)
                t.last = date
                return
        threads.append(_OpenThread(i, date, set(people)))
        if len(threads) > 8:  # keep the scan short on very common subjects ("hi", "lunch")
            threads.pop(0)

    def finish(self, mails: list[Mail]) -> None:
        find = self.uf.find
        for i, mail in enumerate(mails):
            mail.thread = find(i)


def _refs(r: MessageRecord) -> Iterable[str]:
    if r.refs:
        yield r.refs[0]  # the thread root is enough to join, the parent pins the branch
        if r.refs[-1] != r.refs[0]:
            yield r.refs[-1]
    if r.in_reply_to:
        yield r.in_reply_to
