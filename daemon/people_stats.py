"""Per-person figures (first/last touch, messages each way, meetings) and one person's history.

The figures come from the same aggregates identity is built on (:func:`identity.load_activity`),
summed over each cluster's addresses, so listing every person costs no extra query.
:func:`person_record` is the JSON object of ``keepwarm people --json``; other parts (the cadence
engine) add their fields to that dict.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from keepwarm.core.vocabulary import is_auto
from keepwarm.daemon.config import Config
from keepwarm.daemon.identity import (
    FAR_FUTURE,
    Activity,
    AddressActivity,
    Identity,
    Person,
    load_activity,
    resolve_activity,
)
from keepwarm.daemon.store import Store, reads


@dataclass(frozen=True, slots=True)
class PersonStats:
    """What happened with one person up to ``as_of``.

    ``messages_in``: messages from them; ``messages_out``: messages from me with them as To, Cc
    or Bcc (our own digests never count). ``direct_*`` count only the ones that can be a touch
    (not list/bulk/automatic, at most ``engine.max_recipients`` recipients). ``meetings``: small
    meetings (at most ``engine.max_attendees``) not declined. The first and last touch span all
    of those messages and meetings. Times are UTC epoch seconds (``*_at``), as datetimes in the
    properties.
    """

    first_touch_at: int | None
    last_touch_at: int | None
    last_inbound_at: int | None
    last_outbound_at: int | None
    messages_in: int
    messages_out: int
    direct_in: int
    direct_out: int
    meetings: int

    @property
    def interactions(self) -> int:
        return self.messages_in + self.messages_out + self.meetings

    @property
    def first_touch(self) -> datetime | None:
        return _dt(self.first_touch_at)

    @property
    def last_touch(self) -> datetime | None:
        return _dt(self.last_touch_at)

    @property
    def last_inbound(self) -> datetime | None:
        return _dt(self.last_inbound_at)

    @property
    def last_outbound(self) -> datetime | None:
        return _dt(self.last_outbound_at)


def _dt(ts: int | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC)


def _min(values: Iterable[int | None]) -> int | None:
    vs = [v for v in values if v is not None]
    return min(vs) if vs else None


def _max(values: Iterable[int | None]) -> int | None:
    vs = [v for v in values if v is not None]
    return max(vs) if vs else None


def stats_for(acts: list[AddressActivity]) -> PersonStats:
    """Sum one cluster's address aggregates."""
    if len(acts) == 1:  # most clusters: one address's figures as they are
        a = acts[0]
        return PersonStats(
            _min((a.in_first, a.out_first, a.meet_first)),
            _max((a.in_last, a.out_last, a.meet_last)),
            a.in_last,
            a.out_last,
            a.sent,
            a.out,
            a.sent_direct,
            a.out_direct,
            a.meetings,
        )
    last_in = _max(a.in_last for a in acts)
    last_out = _max(a.out_last for a in acts)
    return PersonStats(
        _min(v for a in acts for v in (a.in_first, a.out_first, a.meet_first)),
        _max((last_in, last_out, _max(a.meet_last for a in acts))),
        last_in,
        last_out,
        sum(a.sent for a in acts),
        sum(a.out for a in acts),
        sum(a.sent_direct for a in acts),
        sum(a.out_direct for a in acts),
        sum(a.meetings for a in acts),
    )


class StatsByKey(Mapping[str, PersonStats]):
    """The stats of every cluster, by person key, each summed when first asked for (a screen
    shows a few of 20,000 clusters)."""

    def __init__(self, identity: Identity, activity: Activity) -> None:
        self._people = identity.people
        self._by_email = activity.by_email
        self._done: dict[str, PersonStats] = {}

    def __getitem__(self, key: str) -> PersonStats:
        got = self._done.get(key)
        if got is None:
            by_email = self._by_email
            acts = [by_email[e] for e in self._people[key].addresses if e in by_email]
            got = self._done[key] = stats_for(acts)
        return got

    def __iter__(self) -> Iterator[str]:
        return iter(self._people)

    def __len__(self) -> int:
        return len(self._people)


def person_stats(identity: Identity, activity: Activity) -> Mapping[str, PersonStats]:
    """Stats of every cluster, by person key (summed when asked for)."""
    return StatsByKey(identity, activity)


def iso(dt: datetime | None) -> str | None:
    """ISO 8601 UTC with a Z, seconds precision."""
    if dt is None:
        return None
    utc = dt.astimezone(UTC)
    if utc.year < 1000:  # strftime writes such a year without its leading zeros
        return utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    return utc.isoformat()[:19] + "Z"  # the same text, twice as fast


_DATES: dict[int, str] = {}  # day number since the epoch -> "2026-05-31T"
_MINUTES: list[str] = []  # minute of the day -> "09:05:" (made on first use)
_SECONDS = [f"{s:02}Z" for s in range(60)]


def iso_at(ts: int | None) -> str | None:
    """:func:`iso` of an epoch second (``iso(datetime.fromtimestamp(ts, UTC))``), from the texts
    of its day (each worked out once), its minute of the day and its second: four times as fast
    (every record of ``keepwarm people --json`` has four)."""
    if ts is None:
        return None
    day, second = divmod(ts, 86400)
    date = _DATES.get(day)
    if date is None:
        text = iso(datetime.fromtimestamp(day * 86400, UTC)) or ""
        date = _DATES[day] = text[: -len("00:00:00Z")]
    if not _MINUTES:
        _MINUTES.extend(f"{m // 60:02}:{m % 60:02}:" for m in range(24 * 60))
    minute, second = divmod(second, 60)
    return date + _MINUTES[minute] + _SECONDS[second]


def person_record(person: Person, stats: PersonStats) -> dict[str, Any]:
    """The JSON object for one person (``keepwarm people --json``)."""
    return {
        "key": person.key,
        "name": person.name,
        "addresses": list(person.addresses),
        "kind": person.kind,
        "two_way": person.two_way,
        "first_touch": iso_at(stats.first_touch_at),
        "last_touch": iso_at(stats.last_touch_at),
        "last_inbound": iso_at(stats.last_inbound_at),
        "last_outbound": iso_at(stats.last_outbound_at),
        "messages_in": stats.messages_in,
        "messages_out": stats.messages_out,
        "direct_in": stats.direct_in,
        "direct_out": stats.direct_out,
        "meetings": stats.meetings,
        "reasons": list(person.reasons),
    }


# -- one person's history -------------------------------------------------------------------------
@dataclass(frozen=True)
class HistoryMessage:
    date: datetime
    direction: str  # "in" (from them) or "out" (from me)
    subject: str | None
    recipients: int
    mass: bool  # list/bulk/automatic or too many recipients: not a touch


@dataclass(frozen=True)
class HistoryMeeting:
    start: datetime
    title: str | None
    attendees: int
    response: str  # their response
    small: bool


def history(
    store: Store,
    person: Person,
    activity: Activity,
    *,
    max_recipients: int,
    max_attendees: int,
    limit: int = 20,
) -> tuple[list[HistoryMessage], list[HistoryMeeting]]:
    """The most recent messages each way and meetings with ``person``, up to ``activity.as_of``."""
    params: Mapping[str, Any] = {
        "ids": json.dumps(reads.address_ids(store.conn, person.addresses)),
        "self": json.dumps(sorted(activity.self_ids)),
        "as_of": int(activity.as_of.timestamp()) if activity.as_of else FAR_FUTURE,
        "limit": limit,
    }
    bulk = set(activity.bulk_markers)
    messages: list[HistoryMessage] = []
    for _id, date, subject, n, markers, list_id, inbound in reads.person_messages(
        store.conn, params
    ):
        words = set((markers or "").split())
        if "keepwarm-digest" in words:
            continue
        auto = any(is_auto(w) for w in words)
        mass = bool(list_id) or markers in bulk or auto or n > max_recipients
        messages.append(
            HistoryMessage(_dt(date) or datetime.min, "in" if inbound else "out", subject, n, mass)
        )
    meetings = [
        HistoryMeeting(_dt(s) or datetime.min, t, n, r, n <= max_attendees)
        for s, t, n, r in reads.person_meetings(store.conn, params)
    ]
    return messages, meetings


# -- the people view (identity + stats as of one moment) ------------------------------------------
@dataclass(frozen=True)
class PeopleView:
    """Identity plus per-person stats as of one moment: what the people commands show."""

    identity: Identity
    activity: Activity
    stats: Mapping[str, PersonStats]
    as_of: datetime | None


def load_view(
    store: Store, config: Config, as_of: datetime | None, activity: Activity | None = None
) -> PeopleView:
    """The people as of ``as_of``; ``activity``: identity's activity, when already loaded
    (:func:`keepwarm.daemon.network.identity_and_messages`)."""
    if activity is None:
        activity = load_activity(store, config, as_of)
    identity = resolve_activity(activity, config)
    return PeopleView(identity, activity, person_stats(identity, activity), as_of)
