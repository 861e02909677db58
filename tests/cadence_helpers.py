"""Hand-built histories for engine tests."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from keepwarm.connectors.headers import normalize_subject, subject_markers
from keepwarm.digests.cadence import (
    Directory,
    EngineSettings,
    NetworkReport,
    PersonInfo,
    PersonKind,
    analyze,
)
from keepwarm.digests.queries import Attendee, EventRecord, History, MessageRecord

ME = "me@example.com"
NOW = datetime(2024, 6, 3, 12, 0, tzinfo=UTC)  # a Monday


def ago(days: float, now: datetime = NOW) -> datetime:
    return now - timedelta(days=days)


class H:
    """A history under construction.

    ``covered`` (the default) adds what a complete mailbox shows: a note to myself and a newsletter
    in the inbox every day for 600 days before :data:`NOW` (neither is a touch), so that the
    engine sees my mail flowing both ways (digests/cadence/coverage.py). Tests of gaps in the
    data pass ``covered=False`` and add their own.
    """

    def __init__(self, covered: bool = True) -> None:
        self.messages: list[MessageRecord] = []
        self.events: list[EventRecord] = []
        self._next = 1
        self.covered = covered

    def background(self, start: datetime, end: datetime) -> None:
        """My daily note to myself and a daily newsletter, from ``start`` to ``end``."""
        day = start
        while day <= end:
            self.mail(day, ME, [ME], subject="note to self")
            self.mail(day, "news@lists.example.org", [ME], subject="news", list_id="news")
            day += timedelta(days=1)

    def _id(self) -> int:
        self._next += 1
        return self._next

    def mail(
        self,
        when: datetime,
        sender: str,
        to: Iterable[str] = (),
        cc: Iterable[str] = (),
        subject: str | None = "hello",
        markers: Iterable[str] = (),
        **kw: Any,
    ) -> MessageRecord:
        norm = normalize_subject(subject) if subject else None
        markers = (*markers, *subject_markers(subject))  # what a connector would add
        m = MessageRecord(
            id=self._id(),
            date=int(when.timestamp()),
            sender=sender,
            to=tuple(sorted(to)),
            cc=tuple(sorted(cc)),
            subject=subject,
            norm_subject=norm,
            markers=frozenset(markers),
            **kw,
        )
        self.messages.append(m)
        return m

    def exchange(
        self, other: str, when: datetime, subject: str = "catch up", *, me_first: bool = True
    ) -> None:
        """A two-way exchange: one message each way, an hour apart, in one thread (by subject)."""
        if me_first:
            self.mail(when, ME, [other], subject=subject)
            self.mail(when + timedelta(hours=1), other, [ME], subject="Re: " + subject)
        else:
            self.mail(when, other, [ME], subject=subject)
            self.mail(when + timedelta(hours=1), ME, [other], subject="Re: " + subject)

    def meeting(
        self,
        when: datetime,
        attendees: Mapping[str, str],
        organizer: str = ME,
        *,
        title: str = "sync",
        my_response: str = "accepted",
        hours: float = 1.0,
        **kw: Any,
    ) -> EventRecord:
        att = [Attendee(ME, response=my_response, organizer=organizer == ME, is_self=True)]
        att += [Attendee(a, response=r, organizer=organizer == a) for a, r in attendees.items()]
        e = EventRecord(
            id=self._id(),
            start=int(when.timestamp()),
            end=int((when + timedelta(hours=hours)).timestamp()),
            organizer=organizer,
            my_response=my_response,
            attendees=tuple(att),
            title=title,
            **kw,
        )
        self.events.append(e)
        return e

    def history(self) -> History:
        if self.covered:
            self.covered = False
            self.background(NOW - timedelta(days=600), NOW + timedelta(days=400))
        return History(tuple(self.messages), tuple(self.events), {})


def directory(
    kinds: Mapping[str, PersonKind] | None = None,
    aliases: Mapping[str, Iterable[str]] | None = None,
    names: Mapping[str, str] | None = None,
) -> Directory:
    """Every address is its own person unless listed; ``aliases`` maps a key to its addresses."""
    people: dict[str, PersonInfo] = {}
    person_of: dict[str, str] = {}
    for key, addrs in (aliases or {}).items():
        people[key] = PersonInfo(key, (names or {}).get(key, ""), tuple(addrs))
        for a in addrs:
            person_of[a] = key
    for addr, kind in (kinds or {}).items():
        people[addr] = PersonInfo(addr, "", (addr,), kind)
        person_of[addr] = addr
    for key, name in (names or {}).items():
        if key not in people:
            people[key] = PersonInfo(key, name, (key,))
    return Directory(people, person_of, frozenset({ME}))


def run(
    h: H | History,
    now: datetime = NOW,
    d: Directory | None = None,
    **settings: Any,
) -> NetworkReport:
    hist = h.history() if isinstance(h, H) else h
    return analyze(hist, d or directory(), replace(EngineSettings(), **settings), now)


def signals(report: NetworkReport, kind: str, key: str | None = None) -> list[Any]:
    return [s for s in report.signals if s.kind == kind and (key is None or s.person_key == key)]
