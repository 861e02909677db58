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
from typing import Any

from keepwarm.digests.cadence.model import Directory
from keepwarm.digests.queries import EventRecord, MessageRow

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


def _marker_class_of(markers: str) -> tuple[bool, bool]:
    """(bulk, automatic) for a space-separated marker string; memoised (few distinct ones)."""
    got = _MARKER_CLASSES.get(markers)
    if got is None:
        keys = markers.split()
        bulk = any(k in BULK_MARKERS or k.startswith("category:") for k in keys)
        auto = any(k in AUTO_MARKERS or k.startswith("auto-submitted:") for k in keys)
        got = (bulk, auto)
        if len(_MARKER_CLASSES) < 4096:
            _MARKER_CLASSES[markers] = got
    return got


_MARKER_CLASSES: dict[str, tuple[bool, bool]] = {}


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


class Unsorted(Exception):
    """The rows were not in strictly increasing (date, id) order."""


def fold_messages(
    rows: Iterable[MessageRow],
    people: People,
    max_recipients: int,
    now: int,
    *,
    strict: bool = True,
) -> list[Mail]:
    """The touches among ``rows`` dated up to ``now``, oldest first, each with its thread id.

    One pass over rows sorted by (date, id) without repeats: classification (the rules in the
    module docstring) and threading (:class:`_Threads`) fused, since this loop runs once per
    message of the whole history. With ``strict``, rows out of order raise :class:`Unsorted`.
    """
    me = people.d.self_addresses
    key_of = people
    cache = people._cache
    single = people.single
    threads = _Threads()
    join = threads.join
    out: list[Mail] = []
    parent = threads.parent
    prev_date, prev_id = -(2**62), -(2**62)
    for row in rows:
        mid, date, sender, to, cc, bcc, msgid, irt, refs, subj, nsubj, hint, lid, marks = row
        if strict:
            if date < prev_date or (date == prev_date and mid <= prev_id):
                raise Unsorted
            prev_date, prev_id = date, mid
        if date > now or sender is None or lid:
            continue
        if marks:
            bulk, auto = _marker_class_of(marks)
            if bulk or auto:
                continue
        if len(to) + len(cc) + len(bcc) > max_recipients and len({*to, *cc, *bcc}) > max_recipients:
            continue
        if sender in me:
            direct = _keys(to, key_of)
            indirect = _keys(cc + bcc, key_of, direct) if (cc or bcc) else ()
            k = len(direct) + len(indirect)
            if not k:
                continue
            mail = Mail(date, True, None, direct, indirect, (), k, subj, None)
            members = direct + indirect
        else:
            s = cache[sender] if sender in cache else key_of(sender)
            if s is None:
                continue
            mine = single(s)
            others: tuple[str, ...]
            if len(to) == 1 and not cc and not bcc:
                o = cache[to[0]] if to[0] in cache else key_of(to[0])
                others = () if o is None or o == s else single(o)
            else:
                others = _keys(to + cc + bcc, key_of, mine)
            if me.isdisjoint(to):
                mail = Mail(date, False, s, (), mine, others, 1 + len(others), subj, sender)
            else:
                mail = Mail(date, False, s, mine, (), others, 1 + len(others), subj, sender)
            members = mine + others if others else mine
        i = len(out)
        out.append(mail)
        parent.append(i)
        if hint:
            join(i, hint)
        if msgid:
            join(i, hash(msgid))
        if refs:  # the thread root is enough to join, the parent pins the branch
            ids = refs.split()
            if ids:
                join(i, hash(ids[0]))
                if ids[-1] != ids[0]:
                    join(i, hash(ids[-1]))
        if irt:
            join(i, hash(irt))
        if not hint:
            threads.subject(i, date, nsubj or "", members)
    find = threads.find
    for i, mail in enumerate(out):
        mail.thread = find(i)
    return out


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
