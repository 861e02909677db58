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
TO_WEIGHT, CC_WEIGHT = 1.0, 0.5
MEETING_WEIGHT = 2.0
_NOT_MEETINGS = frozenset({"outOfOffice", "birthday", "focusTime", "workingLocation"})
_OOO_TITLE = re.compile(
    r"\b(ooo|out of (the )?office|vacation|holidays?|pto|annual leave|urlaub|cong[ée]s?)\b", re.I
)


def is_bulk(m: MessageRecord) -> bool:
    if m.list_id:
        return True
    return any(k in BULK_MARKERS or k.startswith("category:") for k in m.markers)


def is_auto(m: MessageRecord) -> bool:
    return any(k in AUTO_MARKERS or k.startswith("auto-submitted:") for k in m.markers)


@dataclass(slots=True)
class Mail:
    """A message that is a touch with at least one person. ``targets``: person key -> weight."""

    rec: MessageRecord
    out: bool  # sent by me
    sender: str | None  # person key of the sender (None when it is me)
    targets: dict[str, float]  # the people this message is a touch with, and how much
    direct: frozenset[str]  # out: people in To; in: {sender} when I am in To
    participants: frozenset[str]  # every person on the message (not me)
    thread: int = -1


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


def _person(d: Directory, address: str) -> str | None:
    """The person key of ``address`` when it is a person (not me, a list, a robot...)."""
    if address in d.self_addresses:
        return None
    key = d.key_of(address)
    return key if d.kind_of(key) == "person" else None


def classify_message(m: MessageRecord, d: Directory, max_recipients: int) -> Mail | None:
    """The touch this message is, or None (bulk, automatic, mass mail, nobody of interest)."""
    if m.sender is None or is_bulk(m) or is_auto(m):
        return None
    recipients = set(m.to) | set(m.cc) | set(m.bcc)
    if len(recipients) > max_recipients:
        return None
    if m.sender in d.self_addresses:
        return _outgoing(m, d)
    return _incoming(m, d)


def _outgoing(m: MessageRecord, d: Directory) -> Mail | None:
    roles: dict[str, float] = {}
    for addrs, w in ((m.bcc, CC_WEIGHT), (m.cc, CC_WEIGHT), (m.to, TO_WEIGHT)):
        for a in addrs:
            key = _person(d, a)
            if key is not None:
                roles[key] = max(roles.get(key, 0.0), w)
    if not roles:
        return None
    k = len(roles)
    direct = frozenset(p for a in m.to if (p := _person(d, a)) is not None)
    people = frozenset(roles)
    return Mail(m, True, None, {p: w / k for p, w in roles.items()}, direct, people)


def _incoming(m: MessageRecord, d: Directory) -> Mail | None:
    assert m.sender is not None
    sender = _person(d, m.sender)
    if sender is None:
        return None
    others = {p for a in (*m.to, *m.cc, *m.bcc) if (p := _person(d, a)) is not None and p != sender}
    to_me = any(a in d.self_addresses for a in m.to)
    w = TO_WEIGHT if to_me else CC_WEIGHT
    k = 1 + len(others)
    direct = frozenset({sender}) if to_me else frozenset()
    return Mail(m, False, sender, {sender: w / k}, direct, frozenset(others | {sender}))


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
        self.parent = list(range(n))

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


def assign_threads(mails: list[Mail]) -> None:
    """Set ``mail.thread`` for mails sorted by (date, id): the index of the thread's first mail."""
    uf = _UnionFind(len(mails))
    by_hint: dict[str, int] = {}
    by_mid: dict[str, int] = {}
    for i, m in enumerate(mails):
        if m.rec.message_id:
            by_mid.setdefault(m.rec.message_id, i)
    for i, m in enumerate(mails):
        r = m.rec
        if r.thread_hint:
            uf.union(i, by_hint.setdefault(r.thread_hint, i))
        for ref in _refs(r):
            j = by_mid.get(ref)
            if j is None:
                # the parent is not in this history: join siblings that quote the same ancestor
                j = by_mid.setdefault(ref, i)
            uf.union(i, j)
    _subject_threads(mails, uf)
    for i, m in enumerate(mails):
        m.thread = uf.find(i)


def _refs(r: MessageRecord) -> Iterable[str]:
    if r.refs:
        yield r.refs[0]  # the thread root is enough to join, the parent pins the branch
        if r.refs[-1] != r.refs[0]:
            yield r.refs[-1]
    if r.in_reply_to:
        yield r.in_reply_to


def _subject_threads(mails: list[Mail], uf: _UnionFind) -> None:
    """Join mails with the same normalized subject and a shared person, close in time."""
    window = SUBJECT_WINDOW_DAYS * 86400
    open_threads: dict[str, list[tuple[int, int, set[str]]]] = {}
    for i, m in enumerate(mails):
        subject = m.rec.norm_subject
        if not subject or m.rec.thread_hint:
            continue
        threads = open_threads.setdefault(subject, [])
        joined = False
        for n, (root, last, people) in enumerate(threads):
            if m.rec.date - last <= window and not people.isdisjoint(m.participants):
                uf.union(i, root)
                people |= m.participants
                threads[n] = (root, m.rec.date, people)
                joined = True
                break
        if not joined:
            threads.append((i, m.rec.date, set(m.participants)))
            if len(threads) > 8:  # keep the scan short on very common subjects ("hi", "lunch")
                threads.pop(0)
