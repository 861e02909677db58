"""The entry point: :func:`analyze` turns a history into a :class:`NetworkReport`.

Pure: no I/O, no clock. Everything is computed as of ``now``; records dated after ``now`` are
ignored, except meetings later today (for preparation).
"""

from __future__ import annotations

import fnmatch
from bisect import bisect_right
from collections.abc import Iterable
from datetime import UTC, datetime, time, timedelta
from statistics import median
from typing import Any
from zoneinfo import ZoneInfo

from keepwarm.core import gc_paused
from keepwarm.core.memory import large_blocks_from_the_system, release_freed_memory
from keepwarm.digests.cadence import signals as sig
from keepwarm.digests.cadence.ledger import (
    DAY,
    Clock,
    Ledger,
    add_meeting,
    fold_touches,
    latest_subjects,
)
from keepwarm.digests.cadence.model import (
    Directory,
    EngineSettings,
    MeetingReport,
    NetworkReport,
    NetworkWarning,
    PersonReport,
    Stage,
    TierSpec,
    TierUsage,
)
from keepwarm.digests.cadence.rhythm import Days, Decay, all_rhythms, all_strengths
from keepwarm.digests.cadence.state import Context, Person
from keepwarm.digests.cadence.touches import (
    Ahead,
    Meeting,
    classify_event,
    find_touches,
    out_of_office,
    read_all,
)
from keepwarm.digests.queries import EventRecord, History, message_source

DRIFT_DAYS = 30
GROWING_LOOKBACK = 90  # contact in the last quarter is compared with the quarter before
YOUNG_MAX_AGE = 183  # a relationship first met within about six months is young ...
YOUNG_MAX_EARLIER_DAYS = 6  # ... and so is one with barely any contact before the last quarter


def analyze(
    history: History,
    directory: Directory,
    settings: EngineSettings,
    now: datetime,
    ahead: Ahead | None = None,
) -> NetworkReport:
    """Everything the engine knows as of ``now`` (an aware datetime). ``ahead``: the messages
    of ``history`` as :func:`read_ahead` read them (read here when not given)."""
    if now.tzinfo is None:
        raise ValueError("analyze needs an aware datetime for now")
    large_blocks_from_the_system()
    with gc_paused():
        return _analyze(history, directory, settings, now, ahead)


def read_ahead(history: History, now: datetime, until: int | None = None) -> Ahead:
    """The messages of ``history`` up to ``now``, read before the directory is known (identity
    counts them first); with ``until`` (epoch seconds, not before ``now``), every message up to
    then as well (:class:`~keepwarm.digests.cadence.touches.EveryMessage`)."""
    large_blocks_from_the_system()
    with gc_paused():
        source = message_source(history.messages)
        ahead = Ahead(*read_all(source, int(now.timestamp()), until))
    release_freed_memory()  # the chunks' rows, freed: the heap keeps them otherwise
    return ahead


def _analyze(
    history: History,
    directory: Directory,
    settings: EngineSettings,
    now: datetime,
    ahead: Ahead | None,
) -> NetworkReport:
    zone = ZoneInfo(settings.timezone)
    clock = _clock(settings, now, zone)
    today = clock.day(clock.now)

    events = _unique_events(history.events)
    meetings, ooo_days, birthdays = _calendar(events, directory, settings, clock)
    source = message_source(history.messages)
    touches = find_touches(source, directory, settings.max_recipients, clock.now, ahead)
    release_freed_memory()  # the messages' columns and the classification's arrays
    ledgers = fold_touches(touches, clock, away=ooo_days)
    release_freed_memory()
    starts = [mt.start for mt in meetings] + ([int(touches.date[0])] if len(touches) else [])
    history_start = min(starts, default=None)
    my_orgs = frozenset(
        f for a in directory.self_addresses if (f := sig.org_family(a.rpartition("@")[2]))
    )
    ctx = Context(
        settings,
        directory,
        clock,
        today,
        zone,
        now.astimezone(UTC),
        history_start,
        touches.coverage,
        my_orgs,
        _my_surname(directory),
    )
    for mt in meetings:
        if mt.start <= clock.now:
            add_meeting(ledgers, mt, clock)

    people = _people(ledgers, settings, directory, today, ooo_days)
    _assign_tiers(people, settings.tiers, today, then=False)
    _assign_tiers(people, settings.tiers, today, then=True)
    _assign_stages(people, ctx)
    occasions = {k: sig.occasions(p, ctx, birthdays) for k, p in people.items()}  # once each
    reports = {k: _report(p, ctx, history, occasions[k]) for k, p in people.items()}
    order = sorted(people.values(), key=lambda p: (-p.strength, p.led.key))

    today_meetings = _meetings_on(meetings, clock, today, ctx)
    yesterday_meetings = _meetings_on(meetings, clock, today - 1, ctx)
    signals = sig.build(
        ctx, people, reports, touches, meetings, today_meetings, yesterday_meetings, occasions
    )
    return NetworkReport(
        now=ctx.now,
        people=tuple(reports[p.led.key] for p in order),
        tiers=_tier_usage(people, settings.tiers),
        acquaintances=sum(1 for p in people.values() if p.tier is None),
        warnings=_warnings(people, settings.tiers, reports),
        meetings_today=tuple(_meeting_report(m, ctx) for m in today_meetings),
        meetings_yesterday=tuple(_meeting_report(m, ctx) for m in yesterday_meetings),
        signals=tuple(signals),
    )


def _my_surname(d: Directory) -> str | None:
    """The surname in my configured name ("Greg Whalley", "Whalley, Greg")."""
    for info in d.people.values():
        if info.kind == "self" and info.name.strip():
            name = info.name.strip()
            words = (name.split(",")[0] if "," in name else name).split()
            last = words[0] if "," in name else words[-1]
            return last.casefold() if len(last) >= 3 else None
    return None


# -- input ----------------------------------------------------------------------------------------
def _clock(settings: EngineSettings, now: datetime, zone: ZoneInfo) -> Clock:
    ts = int(now.timestamp())
    offset = now.astimezone(zone).utcoffset() or timedelta(0)
    return Clock(
        now=ts,
        offset=int(offset.total_seconds()),
        window_start=ts - int(settings.reciprocity_window.total_seconds()),
        reply_grace=int(settings.reply_grace.total_seconds()),
        reply_max_age=int(settings.reply_max_age.total_seconds()),
        outreach_wait=int(settings.outreach_wait.total_seconds()),
        zone=zone,
    )


def _unique_events(events: Iterable[EventRecord]) -> list[EventRecord]:
    unique = {e.id: e for e in events}
    return sorted(unique.values(), key=lambda e: (e.start, e.id))


def _calendar(
    events: list[EventRecord], d: Directory, settings: EngineSettings, clock: Clock
) -> tuple[list[Meeting], tuple[int, ...], dict[str, str]]:
    """Meetings (held, or later today), the user's out-of-office days, birthdays from the calendar."""
    end_of_today = _end_of_day(clock)
    meetings: list[Meeting] = []
    ooo: set[int] = set()
    today = clock.day(clock.now)
    birthdays: dict[str, str] = {}
    for e in events:
        if e.start > end_of_today:
            continue
        if e.start <= clock.now and out_of_office(e, d):
            last = min(e.end - 1, clock.now)
            ooo.update(range(clock.day(e.start), min(clock.day(last), today) + 1))
            continue
        if e.event_type == "birthday" and e.start <= end_of_today:
            _calendar_birthday(e, d, birthdays, clock)
            continue
        mt, _held = classify_event(e, d, settings.max_attendees, clock.now)
        if mt is not None:
            meetings.append(mt)
    return meetings, tuple(sorted(ooo)), birthdays


def _end_of_day(clock: Clock) -> int:
    """The epoch second where the user's local day of ``now`` ends (DST-aware)."""
    zone = clock.zone or UTC
    tomorrow = datetime.fromtimestamp(clock.now, zone).date() + timedelta(days=1)
    return int(datetime.combine(tomorrow, time.min, zone).timestamp())


def _calendar_birthday(e: EventRecord, d: Directory, out: dict[str, str], clock: Clock) -> None:
    local = clock.local(e.start)
    if e.all_day:
        local = datetime.fromtimestamp(e.start, UTC)
    md = local.strftime("%m-%d")
    addresses = [a.email for a in e.attendees] + ([e.organizer] if e.organizer else [])
    for a in addresses:
        if a in d.self_addresses:
            continue
        key = d.key_of(a)
        if d.kind_of(key) == "person":
            out[key] = md
            return
    title = (e.title or "").lower()
    if not title:
        return
    for key, info in d.people.items():
        if info.kind == "person" and " " in info.name.strip() and info.name.lower() in title:
            out[key] = md
            return


# -- people ---------------------------------------------------------------------------------------
def _pinned_tier(addresses: Iterable[str], tiers: tuple[TierSpec, ...]) -> int | None:
    addrs = [a.lower() for a in addresses]
    for i, t in enumerate(tiers):
        for pattern in t.members:
            if any(_matches(a, pattern.lower()) for a in addrs):
                return i
    return None


def _matches(address: str, pattern: str) -> bool:
    if pattern.startswith("@"):
        domain = address.rpartition("@")[2]
        want = pattern[1:]
        return domain == want or domain.endswith("." + want)
    if any(c in pattern for c in "*?["):
        return fnmatch.fnmatchcase(address, pattern)
    return address == pattern


def _people(
    ledgers: dict[str, Ledger],
    settings: EngineSettings,
    d: Directory,
    today: int,
    ooo_days: tuple[int, ...],
) -> dict[str, Person]:
    decay = Decay(max(settings.half_life.total_seconds() / DAY, 1.0))
    cadences = tuple(t.cadence.total_seconds() / DAY for t in settings.tiers)
    pins = any(t.members for t in settings.tiers)
    leds = [ledgers[key] for key in sorted(ledgers)]
    pinned: list[int | None] = [None] * len(leds)
    if pins:
        for i, led in enumerate(leds):
            info = d.people.get(led.key)
            addresses = info.addresses if info is not None else (led.key,)
            pinned[i] = _pinned_tier((*addresses, led.key), settings.tiers)
    # every person at once (numpy), the same figures as tests/engine_reference.py's rhythm() and
    # strengths() one by one
    days = Days([led.days for led in leds])
    pin_cadences = [cadences[p] if p is not None else None for p in pinned]
    rhythms = all_rhythms(days, today, ooo_days, cadences, pin_cadences)
    both = all_strengths(leds, today, today - DRIFT_DAYS, decay, days)
    return {
        led.key: Person(led=led, strength=now, strength_then=then, pinned=pin, rhythm=r)
        for led, (now, then), pin, r in zip(leds, both, pinned, rhythms, strict=True)
    }


def _assign_tiers(
    people: dict[str, Person], tiers: tuple[TierSpec, ...], today: int, *, then: bool
) -> None:
    """Pinned people first, then the strongest two-way ties fill each tier up to its size, each
    tier taking only ties with enough history for its cadence (:func:`holds_tier`): one exchange
    is not an inner-tier tie, however recent."""
    used = [0] * len(tiers)
    for p in people.values():
        if p.pinned is not None:
            used[p.pinned] += 1
        _set_tier(p, p.pinned, then)

    def score(p: Person) -> float:
        return p.strength_then if then else p.strength

    as_of = today - DRIFT_DAYS if then else today
    waiting = [p for p in people.values() if p.pinned is None and p.led.days and score(p) > 0.0]
    waiting.sort(key=lambda p: (-score(p), p.led.key))
    for n, t in enumerate(tiers):
        cadence = t.cadence.total_seconds() / DAY
        placed = _fill(waiting, max(0, t.size - used[n]), cadence, as_of)
        for p in placed:
            _set_tier(p, n, then)
        taken = {id(p) for p in placed}
        waiting = [p for p in waiting if id(p) not in taken]


def _set_tier(p: Person, tier: int | None, then: bool) -> None:
    """``p``'s tier now, or ``DRIFT_DAYS`` ago (``then``)."""
    if then:
        p.tier_then = tier
    else:
        p.tier = tier


def _fill(waiting: list[Person], free: int, cadence_days: float, as_of: int) -> list[Person]:
    """The first ``free`` of ``waiting`` (strongest first) that hold a tier of this cadence."""
    placed: list[Person] = []
    for p in waiting:
        if len(placed) >= free:
            break
        if holds_tier(p, cadence_days, as_of):
            placed.append(p)
    return placed


CLOSE_CADENCE_DAYS = 31  # tiers this frequent need a history that shows the rhythm ...
CLOSE_MIN_DAYS = 4  # ... this many days of contact ...
CLOSE_MIN_SPAN = 28  # ... over at least four weeks


def holds_tier(p: Person, cadence_days: float, today: int) -> bool:
    """May ``p`` sit in a tier of this cadence? A close tier (every month or more often) needs
    contact on several days over weeks; an outer one, any two-way contact."""
    days = p.rhythm.contact_days  # sorted
    n = bisect_right(days, today)  # the days up to today
    if cadence_days > CLOSE_CADENCE_DAYS:
        return n > 0
    return n >= CLOSE_MIN_DAYS and days[n - 1] - days[0] >= CLOSE_MIN_SPAN


def _assign_stages(people: dict[str, Person], ctx: Context) -> None:
    settings = ctx.settings
    new_days = settings.new_window.total_seconds() / DAY
    growing: list[Person] = []
    # both quarters must be in view to compare them
    recent_from = ctx.today - GROWING_LOOKBACK
    in_view = ctx.covered((recent_from - GROWING_LOOKBACK) * DAY, ctx.clock.now, received=True)
    for p in people.values():
        p.stage = _stage(p, ctx, new_days)
        if p.stage == "established" and in_view and _is_growing(p, ctx):
            growing.append(p)
    growing.sort(key=lambda p: (-p.strength, p.led.key))
    for p in growing[: settings.max_growing]:
        p.stage = "growing"


def _stage(p: Person, ctx: Context, new_days: float) -> Stage:
    """new, established, fading, dormant (growing is decided after, among the established).

    Only what the mailbox shows counts: a first contact is *new* only when my own mail was visible
    long before it (else the data merely begins there); a silence makes a tie *fading* or
    *dormant* only when my mail to others is visible through most of it (else it is a gap in
    the data, or a holiday).
    """
    today = ctx.today
    r = p.rhythm
    if not r.contact_days:
        first = p.led.first_seen
        recent = first is not None and (today - (first // DAY)) <= new_days
        return "new" if recent and ctx.seen_since(first or 0) else "dormant"
    quiet = _quiet_stage(p, ctx)
    if quiet is not None:
        return quiet
    first_contact = p.led.first_contact or 0
    if today - r.contact_days[0] <= new_days and ctx.seen_since(first_contact):
        return "new"
    return "established"


def _quiet_stage(p: Person, ctx: Context) -> Stage | None:
    """dormant or fading when the tie has been silent long enough (overdue, not even seen
    together lately, and my mail to others visible through the silence), else None."""
    settings, r = ctx.settings, p.rhythm
    ratio = r.overdue_ratio or 0.0
    last = p.led.last_contact or 0
    # seen together lately (a group thread, a copy) is not silence either
    seen = (ctx.clock.now - (p.led.last_seen or last)) / DAY / r.expected_gap
    silent = (
        ratio >= settings.fading_factor
        and seen >= settings.fading_factor
        and ctx.covered(last, ctx.clock.now)
    )
    if silent and ratio >= settings.dormant_factor:
        return "dormant"
    if silent and r.mature:
        return "fading"
    return None


def _is_growing(p: Person, ctx: Context) -> bool:
    """A young relationship whose contact is increasing: first met within about six months (or
    barely in touch before the last quarter), and more contact days in the last quarter than in
    the one before (the caller checks both quarters are visible in the mailbox). A
    long-standing strong tie is established however busy it is lately."""
    today = ctx.today
    days = p.rhythm.contact_days  # sorted
    if not days:
        return False
    recent_from = today - GROWING_LOOKBACK
    earlier = bisect_right(days, recent_from)
    if today - days[0] > YOUNG_MAX_AGE and earlier > YOUNG_MAX_EARLIER_DAYS:
        return False
    recent = len(days) - earlier
    before = earlier - bisect_right(days, recent_from - GROWING_LOOKBACK)
    return recent >= 3 and recent > before


# -- report ---------------------------------------------------------------------------------------
def _dt(ts: int | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC)


def _median_hours(values: list[int]) -> float | None:
    return round(median(values) / 3600, 1) if values else None


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 3) if whole else None


def _report(
    p: Person, ctx: Context, history: History, occasions: list[sig.Occasion]
) -> PersonReport:
    led, r = p.led, p.rhythm
    info = ctx.directory.people.get(led.key)
    addresses = info.addresses if info is not None else (led.key,)
    name = (info.name if info is not None else "") or _name(addresses, history) or led.key
    by_me, by_them = led.initiated_by_me, led.initiated_by_them
    seen = led.subjects
    # one subject is its own latest (most people); else the three latest distinct ones
    latest = seen if len(seen) < 2 else latest_subjects(seen, 3)
    w_in, w_out = led.w_in, led.w_out
    return _person_report(
        {
            "key": led.key,
            "name": name,
            "addresses": tuple(addresses),
            "tier": ctx.settings.tiers[p.tier].name if p.tier is not None else None,
            "pinned": p.pinned is not None,
            "strength": p.strength,
            "stage": p.stage,
            "two_way": bool(r.contact_days),
            "contact_days": len(r.contact_days),
            "typical_gap_days": r.typical_gap,
            "expected_gap_days": round(r.expected_gap, 2),
            "days_since_contact": r.days_since,
            "overdue_ratio": r.overdue_ratio,
            "last_contact": _dt(led.last_contact),
            "first_contact": _dt(led.first_contact),
            "initiated_by_me": by_me,
            "initiated_by_them": by_them,
            "messages_in": w_in,
            "messages_out": w_out,
            "answered_by_me": _share(led.w_in_answered, w_in),
            "answered_by_them": _share(led.w_out_answered, w_out),
            "my_reply_hours": _median_hours(led.my_latencies),
            "their_reply_hours": _median_hours(led.their_latencies),
            "meetings_by_me": led.meetings_by_me,
            "meetings_by_them": led.meetings_by_them,
            "replies_owed_by_me": len(led.owed_by_me),
            "replies_owed_to_me": len(led.owed_to_me),
            "balance": round((by_me - by_them) / (by_me + by_them), 3) if by_me + by_them else 0.0,
            "last_subjects": tuple([subj for _d, subj in latest]),
            "occasions": sig.occasion_names(occasions) if occasions else (),
        }
    )


def _person_report(values: dict[str, Any]) -> PersonReport:
    """``PersonReport(**values)`` without the frozen dataclass's ``__init__`` (a call of
    ``object.__setattr__`` per field, 30 fields, 18,000 people: 0.05 s on the 1M store): the
    same object, its fields set at once. ``values`` has every field, in order (a test checks
    what a new field would break)."""
    report: PersonReport = object.__new__(PersonReport)
    report.__dict__.update(values)
    return report


def _name(addresses: Iterable[str], history: History) -> str:
    for a in addresses:
        n = history.names.get(a)
        if n:
            return n
    return ""


def _meetings_on(meetings: list[Meeting], clock: Clock, day: int, ctx: Context) -> list[Meeting]:
    return [m for m in meetings if clock.day(m.start) == day]


def _meeting_report(m: Meeting, ctx: Context) -> MeetingReport:
    return MeetingReport(
        event_id=m.event_id,
        start=datetime.fromtimestamp(m.start, UTC),
        end=datetime.fromtimestamp(m.end, UTC),
        title=m.title,
        people=tuple(sorted(m.people)),
        organised_by_me=m.organiser == "",
    )


def _tier_usage(people: dict[str, Person], tiers: tuple[TierSpec, ...]) -> tuple[TierUsage, ...]:
    out: list[TierUsage] = []
    for n, t in enumerate(tiers):
        members = [p for p in people.values() if p.tier == n]
        fading = sum(1 for p in members if p.stage == "fading")
        dormant = sum(1 for p in members if p.stage == "dormant")
        out.append(
            TierUsage(
                name=t.name,
                size=t.size,
                cadence_days=t.cadence.total_seconds() / DAY,
                members=len(members),
                pinned=sum(1 for p in members if p.pinned is not None),
                warm=len(members) - fading - dormant,
                fading=fading,
                dormant=dormant,
            )
        )
    return tuple(out)


def _warnings(
    people: dict[str, Person], tiers: tuple[TierSpec, ...], reports: dict[str, PersonReport]
) -> tuple[NetworkWarning, ...]:
    return (
        *_capacity_warnings(people, tiers),
        *_pinned_warnings(people, tiers),
        *_drift_warnings(people, tiers, reports),
    )


def _capacity_warnings(
    people: dict[str, Person], tiers: tuple[TierSpec, ...]
) -> list[NetworkWarning]:
    """More active relationships than the tiers hold."""
    capacity = sum(t.size for t in tiers)
    active = [p for p in people.values() if p.rhythm.contact_days and p.stage != "dormant"]
    if len(active) <= capacity:
        return []
    return [
        NetworkWarning(
            "over_capacity",
            f"You keep {len(active)} active relationships, more than the {capacity} your tiers hold; "
            "the weakest are treated as acquaintances.",
            facts={"active": len(active), "capacity": capacity},
        )
    ]


def _pinned_warnings(
    people: dict[str, Person], tiers: tuple[TierSpec, ...]
) -> list[NetworkWarning]:
    """More people pinned to a tier than it holds."""
    out: list[NetworkWarning] = []
    for n, t in enumerate(tiers):
        pinned = sum(1 for p in people.values() if p.pinned == n)
        if pinned > t.size:
            out.append(
                NetworkWarning(
                    "tier_over_capacity",
                    f'You pinned {pinned} people to "{t.name}", which holds {t.size}.',
                    facts={"tier": t.name, "pinned": pinned, "size": t.size},
                )
            )
    return out


def _drift_warnings(
    people: dict[str, Person], tiers: tuple[TierSpec, ...], reports: dict[str, PersonReport]
) -> list[NetworkWarning]:
    """Close ties (the first two tiers, not pinned) that moved to a lower tier lately."""
    drifted = [
        p
        for p in people.values()
        if p.tier_then is not None
        and p.tier_then <= 1
        and (p.tier is None or p.tier > p.tier_then)
        and p.pinned is None
    ]
    out: list[NetworkWarning] = []
    for p in sorted(drifted, key=lambda p: (p.tier_then or 0, -p.strength, p.led.key)):
        old = tiers[p.tier_then or 0].name
        new = tiers[p.tier].name if p.tier is not None else "acquaintances"
        name = reports[p.led.key].name
        out.append(
            NetworkWarning(
                "drift",
                f"{name} moved from {old} to {new} over the last {DRIFT_DAYS} days.",
                person_key=p.led.key,
                facts={"from": old, "to": new, "days": DRIFT_DAYS},
            )
        )
    return out
