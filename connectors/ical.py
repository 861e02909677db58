"""iCalendar events as keepwarm records: the pure VEVENT-to-event mapping every calendar source
shares (local .ics files, CalDAV collections, published calendar URLs).

A source hands over the bytes of one calendar resource (a file, a CalDAV object, a downloaded
feed) and a provider-id prefix that names it; :func:`events_of` returns the occurrences within the
:class:`Window` as :class:`EventMeta`, and counts what it skipped. Recurring events are expanded
with ``recurring-ical-events``; a series that repeats more often than daily is skipped whole before
any expansion. Events with an organizer or attendees are kept (meetings), and birthday events
(occasions) even without them. Floating times and all-day dates are taken in the user's zone;
times with a TZID use the calendar's VTIMEZONE (or the IANA zone of that name). A broken series or
time zone is skipped, counted; a calendar that does not parse is read event by event.

Provider ids are ``PREFIX#UID#START`` (epoch seconds of the occurrence), so a source can tell
which of its resource's earlier occurrences left the window (kept: history) from those that
vanished from the resource (deleted): :func:`replaced`.
"""

from __future__ import annotations

import hashlib
import logging
import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import icalendar
import recurring_ical_events

from keepwarm.connectors.base import (
    Address,
    Attendee,
    EventMeta,
    EventStatus,
    EventType,
    ResponseStatus,
)
from keepwarm.connectors.headers import clean_text, normalize_address, not_a_person
from keepwarm.connectors.local.common import UNPARSEABLE_CALENDAR, Skips

log = logging.getLogger(__name__)

NO_ATTENDEES = "without attendees"
BAD_EVENT = "unparseable event"
TOO_FREQUENT = "repeats more often than daily"
TOO_LARGE = "calendar file too large"
PAST_CALENDAR = "a past calendar: older than window_past before its last event"
MAX_FILE = 64 * 1024 * 1024
MAX_RDATES = 5000  # extra dates of one series; more is not a series of meetings
_SECONDS = {"SECONDLY": 1, "MINUTELY": 60, "HOURLY": 3600}

_PARTSTAT: dict[str, ResponseStatus] = {
    "ACCEPTED": "accepted",
    "DECLINED": "declined",
    "TENTATIVE": "tentative",
    "NEEDS-ACTION": "needsAction",
}
_STATUS: dict[str, EventStatus] = {"CANCELLED": "cancelled", "TENTATIVE": "tentative"}
_BIRTHDAY_WORDS = re.compile(
    r"birthday|b-?day\b|geburtstag|anniversaire|cumplea|compleanno|verjaardag|f[öo]delsedag|"
    r"f[øo]dselsdag|syntym[äa]p[äa]iv[äa]|urodziny|aniversário|день рождения",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Window:
    """The span of occurrences a source keeps around ``now``; ``day`` (UTC date) says when it
    was computed."""

    start: datetime
    end: datetime
    day: str
    now: datetime


def window_around(now: datetime | None, past: timedelta, future: timedelta) -> Window:
    now = (now or datetime.now(UTC)).astimezone(UTC)
    return Window(now - past, now + future, now.date().isoformat(), now)


@dataclass(frozen=True)
class EventOptions:
    """How events become records: the account, the user's zone and addresses, titles or not."""

    account: str
    zone: ZoneInfo
    me: frozenset[str]
    keep_titles: bool = True

    @classmethod
    def make(
        cls, account: str, zone: ZoneInfo | str, me: Iterable[str], keep_titles: bool = True
    ) -> EventOptions:
        return cls(
            account,
            zone if isinstance(zone, ZoneInfo) else ZoneInfo(zone),
            frozenset(a for a in (normalize_address(x) for x in me) if a),
            keep_titles,
        )


def _to_utc(value: Any, zone: ZoneInfo) -> datetime:
    """An iCalendar DATE or DATE-TIME as aware UTC: floating and dates in the user's zone."""
    if isinstance(value, datetime):
        if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
            value = value.replace(tzinfo=zone)
        utc: datetime = value.astimezone(UTC)
        return utc
    if isinstance(value, date):
        return datetime.combine(value, time(0), zone).astimezone(UTC)
    raise ValueError(f"not a date: {value!r}")


def _address(value: Any) -> Address | None:
    if value is None:
        return None
    email = normalize_address(str(value))
    if email is None:
        return None
    name = clean_text(str(getattr(value, "params", {}).get("CN", "") or ""))[:200]
    return Address(email, name.strip("\"'"))


def _list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _categories(ev: Any) -> str:
    out: list[str] = []
    for value in _list(ev.get("CATEGORIES")):
        cats = getattr(value, "cats", None)
        out += [str(c) for c in cats] if cats else [str(value)]
    return " ".join(out)


def _is_birthday(ev: Any, calendar_name: str, all_day: bool, yearly: bool) -> bool:
    """Google / Microsoft / Apple birthday markers, or a yearly all-day event named like one."""
    uid = str(ev.get("UID", "")).lower()
    if "birthday" in uid or "birthday" in calendar_name.lower():
        return True
    if "birthday" in _categories(ev).lower():
        return True
    for key, value in ev.property_items(recursive=False):
        if key.startswith("X-") and "birthday" in str(value).lower():
            return True
    summary = str(ev.get("SUMMARY", ""))
    return all_day and yearly and _BIRTHDAY_WORDS.search(summary) is not None


def parse_calendars(raw: bytes | str) -> list[Any] | None:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    if "BEGIN:VTIMEZONE" in text:
        usable = _drop_unusable_zones(text)
        raw = usable if usable != text else raw  # unchanged files parse from their own bytes
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return list(icalendar.Calendar.from_ical(raw, multiple=True))
    except Exception as exc:  # icalendar raises many types on malformed input
        log.info("ics: a calendar could not be parsed (%s)", type(exc).__name__)
        return None


_BLOCK = re.compile(r"^BEGIN:(VEVENT|VTIMEZONE)\r?$.*?^END:\1\r?$", re.MULTILINE | re.DOTALL)
_UID = re.compile(r"^UID[;:](.*)$", re.MULTILINE)
_TZID_DEF = re.compile(r"^TZID[;:](.*?)\r?$", re.MULTILINE)
_TZID_USE = re.compile(r";TZID=(\"[^\"]*\"|[^:;]*)")


def _salvage(raw: bytes, skips: Skips) -> list[Any]:
    """Calendars of the events that parse on their own, with the time zones they use that parse."""
    text = raw.decode("utf-8", "replace")
    zones: dict[str, str] = {}
    series: dict[str, list[str]] = {}
    for i, m in enumerate(_BLOCK.finditer(text)):
        block = m.group(0)
        if m.group(1) == "VTIMEZONE":
            tzid = _TZID_DEF.search(block)
            if tzid and parse_calendars(_wrap(block)) is not None:
                zones[tzid.group(1).strip()] = block
            continue
        uid = _UID.search(block)
        series.setdefault(uid.group(1).strip() if uid else f"#{i}", []).append(block)
    out: list[Any] = []
    for blocks in series.values():
        used = {t.strip('"') for b in blocks for t in _TZID_USE.findall(b)}
        wanted = [zones[t] for t in sorted(used) if t in zones]
        cals = parse_calendars(_wrap(*wanted, *blocks))
        if cals is None and wanted:
            cals = parse_calendars(_wrap(*blocks))
        if cals is None:
            skips.add(BAD_EVENT)
        else:
            out += cals
    return out


def _wrap(*blocks: str) -> str:
    return "BEGIN:VCALENDAR\r\nVERSION:2.0\r\n" + "\r\n".join(blocks) + "\r\nEND:VCALENDAR\r\n"


def _rule_parts(rule: Any) -> dict[str, Any]:
    return {str(k).upper(): v for k, v in dict(rule).items()}


def _interval(parts: dict[str, Any]) -> int:
    """The rule's INTERVAL; 0 for a value that is not a positive whole number (a rule that
    would never advance: expanding it never ends)."""
    try:
        value = int((parts.get("INTERVAL") or [1])[0])
    except (TypeError, ValueError):
        return 0
    return value if value >= 1 else 0


def _series_problem(ev: Any) -> str | None:
    """Why a series must not be expanded, decided from its rules before any expansion: a rule
    that never advances (INTERVAL=0) is broken; one that repeats more than once a day is not a
    series of meetings, and expanding it (FREQ=MINUTELY with no end: a million occurrences a
    year) is what must never happen. A FREQ below DAILY whose step is under a day, several
    BYHOUR/BYMINUTE/BYSECOND values (several times on one day; BYSETPOS picks a few of them),
    two extra dates on one day or more RDATEs than a calendar of meetings has: with these
    bounds a series has at most one occurrence a day, so its expansion is bounded by the window.
    """
    try:
        for rule in _list(ev.get("RRULE")):
            problem = _rule_problem(rule)
            if problem:
                return problem
        rdates = [getattr(d, "dt", None) for r in _list(ev.get("RDATE")) for d in r.dts or ()]
    except Exception:  # a broken property: the expansion skips the series as unparseable
        return None
    if len(rdates) > MAX_RDATES:
        return TOO_FREQUENT
    instants = {_instant(d) for d in rdates}  # one instant written in two zones is one
    days = {i.date() if isinstance(i, datetime) else i for i in instants}
    return TOO_FREQUENT if len(days) < len(instants) else None


def _rule_problem(rule: Any) -> str | None:
    """Why one RRULE must not be expanded (see :func:`_series_problem`); its errors propagate."""
    parts = _rule_parts(rule)
    interval = _interval(parts)
    if not interval:
        return BAD_EVENT
    freq = str((parts.get("FREQ") or ["DAILY"])[0]).upper()
    if freq in _SECONDS and _SECONDS[freq] * interval < 86400:
        return TOO_FREQUENT
    per_day = 1
    for key in ("BYHOUR", "BYMINUTE", "BYSECOND"):
        per_day *= max(1, len(parts.get(key) or ()))
    if parts.get("BYSETPOS"):
        per_day = min(per_day, len(parts["BYSETPOS"]))
    return TOO_FREQUENT if per_day > 1 else None


_ZONE_BLOCK = re.compile(r"^BEGIN:VTIMEZONE\r?$.*?^END:VTIMEZONE\r?$\r?\n?", re.M | re.S)
_RRULE_LINE = re.compile(r"^RRULE[;:]([^\r\n]*)", re.M | re.I)
_FOLD = re.compile(r"\r?\n[ \t]")


def _drop_unusable_zones(raw: str) -> str:
    """The calendar without VTIMEZONEs whose transition rules never advance (INTERVAL=0) or
    repeat more often than monthly (real ones are yearly). icalendar builds a zone while it
    parses, and an offset in such a zone expands its rule over centuries (FREQ=MINUTELY from
    1601: hundreds of millions of steps, gigabytes). Times in a dropped zone fall back to the
    IANA zone of that name, or are floating."""

    def keep(m: re.Match[str]) -> str:
        for rule in _RRULE_LINE.findall(_FOLD.sub("", m.group(0))):
            fields = dict(p.split("=", 1) for p in rule.strip().upper().split(";") if "=" in p)
            interval = fields.get("INTERVAL", "1")
            if fields.get("FREQ", "YEARLY") not in ("YEARLY", "MONTHLY"):
                return ""
            if not interval.isdigit() or int(interval) < 1:
                return ""
        return m.group(0)

    return _ZONE_BLOCK.sub(keep, raw)


def _instant(value: Any) -> Any:
    """An RDATE value as something comparable: aware times in UTC, a PERIOD as its start."""
    if isinstance(value, tuple) and value:
        value = value[0]
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC)
    return value


def _drop_unexpandable(cal: Any, skips: Skips) -> None:
    """Remove every series (all components of its UID) that must not be expanded."""
    doomed: dict[str, str] = {}
    for c in cal.subcomponents:
        if getattr(c, "name", "") == "VEVENT":
            problem = _series_problem(c)
            if problem:
                doomed.setdefault(str(c.get("UID")), problem)
    if not doomed:
        return
    for problem in doomed.values():
        skips.add(problem)
    cal.subcomponents[:] = [
        c
        for c in cal.subcomponents
        if getattr(c, "name", "") != "VEVENT" or str(c.get("UID")) not in doomed
    ]


def _between(cal: Any, window: Window) -> list[Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # icalendar warns about guessed TZIDs and the like
        query = recurring_ical_events.of(cal, skip_bad_series=True)
        return list(query.between(window.start, window.end))


def events_of(
    raw: bytes | str,
    prefix: str,
    window: Window,
    opts: EventOptions,
    skips: Skips,
    *,
    history: bool = False,
) -> list[EventMeta]:
    """The occurrences in ``window`` of one calendar resource (an .ics file, a CalDAV object),
    with provider ids ``PREFIX#UID#START``; what cannot be used is counted in ``skips``.

    With ``history`` (a file, not a live calendar), a calendar whose events all lie before the
    window (a historical export) is read around its own latest event instead: an archive of
    2001 imports its meetings rather than nothing, and what is older still is counted."""
    if len(raw) > MAX_FILE:
        skips.add(TOO_LARGE)
        return []
    calendars = parse_calendars(raw)
    if calendars is None:  # a broken VTIMEZONE or line: read the events one by one
        calendars = _salvage(raw if isinstance(raw, bytes) else raw.encode("utf-8"), skips)
        if not calendars:
            skips.add(UNPARSEABLE_CALENDAR)
            return []
    seen: set[str] = set()
    out: list[EventMeta] = []
    if history:
        window = _history_window(calendars, window, opts, skips)
    for cal in calendars:
        _calendar_events(prefix, cal, window, opts, skips, seen, out)
    return out


def _history_window(
    calendars: list[Any], window: Window, opts: EventOptions, skips: Skips
) -> Window:
    starts: list[datetime] = []
    for cal in calendars:
        for c in cal.walk("VEVENT"):
            start = c.get("DTSTART")
            if start is None or c.get("RRULE"):
                continue
            try:
                starts.append(_to_utc(_list(start)[0].dt, opts.zone))
            except (AttributeError, IndexError, TypeError, ValueError):
                continue
    if not starts or max(starts) >= window.start:
        return window
    latest = max(starts)
    span = window.now - window.start
    moved = Window(latest - span, latest + (window.end - window.now), window.day, latest)
    older = sum(1 for t in starts if t < moved.start)
    if older:
        skips.add(PAST_CALENDAR, older)
    return moved


def recurs(raw: bytes | str) -> bool:
    """Does the resource hold a series (its occurrences in the window change as days pass)?"""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    return re.search(r"^(RRULE|RDATE)[;:]", text, re.MULTILINE) is not None


def replaced(
    old_ids: Iterable[str], new_ids: set[str], window: Window
) -> tuple[list[str], set[str]]:
    """A resource read again: ``(ids to delete, ids to keep)`` of its earlier occurrences that
    are not in ``new_ids``. Those that started before the window merely left it (history stays);
    the others vanished from the resource."""
    return split_at(old_ids, new_ids, window.start)


def split_at(ids: Iterable[str], keep: set[str], when: datetime) -> tuple[list[str], set[str]]:
    """``(ids to delete, ids to keep)`` of ``ids`` not in ``keep``: the occurrences that started
    before ``when`` stay (by the start in each ``PREFIX#UID#START`` id); the others go."""
    deleted: list[str] = []
    kept: set[str] = set()
    cut = when.timestamp()
    for pid in ids:
        if pid in keep:
            continue
        try:
            start = int(pid.rsplit("#", 1)[1])
        except (IndexError, ValueError):
            start = 0
        if start and start < cut:
            kept.add(pid)
        else:
            deleted.append(pid)
    return deleted, kept


def later(raw: bytes | str, window: Window, opts: EventOptions) -> bool:
    """Does an event of the resource start after the window (it enters the window later)?"""
    for cal in parse_calendars(raw) or ():
        for ev in cal.walk("VEVENT"):
            dtstart = ev.get("DTSTART")
            if dtstart is None:
                continue
            try:
                if _to_utc(dtstart.dt, opts.zone) > window.end:
                    return True
            except (TypeError, ValueError):
                continue
    return False


def _calendar_events(
    prefix: str,
    cal: Any,
    window: Window,
    opts: EventOptions,
    skips: Skips,
    seen: set[str],
    out: list[EventMeta],
) -> None:
    if getattr(cal, "name", "") != "VCALENDAR":
        wrapper = icalendar.Calendar()
        wrapper.add_component(cal)
        cal = wrapper
    name = str(cal.get("X-WR-CALNAME", ""))
    _drop_unexpandable(cal, skips)
    recurring: dict[str, bool] = {}  # UID -> yearly
    for c in cal.walk("VEVENT"):
        if c.get("RRULE") or c.get("RDATE") or c.get("RECURRENCE-ID"):
            uid = str(c.get("UID"))
            rules = " ".join(str(r.to_ical()) for r in _list(c.get("RRULE")))
            recurring[uid] = recurring.get(uid, False) or "YEARLY" in rules.upper()
    for ev in _expand(cal, window, skips):
        try:
            meta = _event(prefix, ev, name, recurring, opts)
        except Exception as exc:  # one bad event does not spoil the calendar
            log.debug("ics: skipped an event (%s)", exc)
            skips.add(BAD_EVENT)
            continue
        if isinstance(meta, str):
            skips.add(meta)
        elif meta.provider_id not in seen:
            seen.add(meta.provider_id)
            out.append(meta)


def _expand(cal: Any, window: Window, skips: Skips) -> list[Any]:
    """Occurrences in the window; a broken series (bad RRULE, VTIMEZONE, dates) is skipped."""
    try:
        return list(_between(cal, window))
    except Exception:  # third-party parsers raise many types: retry series by series
        pass
    zones = [c for c in cal.subcomponents if getattr(c, "name", "") == "VTIMEZONE"]
    series: dict[str, list[Any]] = {}
    for i, ev in enumerate(c for c in cal.subcomponents if getattr(c, "name", "") == "VEVENT"):
        series.setdefault(str(ev.get("UID") or f"#{i}"), []).append(ev)
    out: list[Any] = []
    for events in series.values():
        one = icalendar.Calendar()
        for comp in [*zones, *events]:
            one.add_component(comp)
        try:
            out += _between(one, window)
        except Exception as exc:
            log.info("ics: a recurring series could not be expanded (%s)", type(exc).__name__)
            skips.add(BAD_EVENT)
    return out


def _event(
    prefix: str, ev: Any, calendar_name: str, recurring: dict[str, bool], opts: EventOptions
) -> EventMeta | str:
    dtstart = ev.get("DTSTART")
    if dtstart is None:
        return BAD_EVENT
    raw_start = dtstart.dt
    all_day = not isinstance(raw_start, datetime)
    start = _to_utc(raw_start, opts.zone)
    end = _end(ev, start, all_day, opts)
    uid_raw = ev.get("UID")
    uid = clean_text(str(uid_raw))[:300] if uid_raw else None
    organizer = _address(ev.get("ORGANIZER"))
    attendees = _attendees(ev, organizer, opts)
    birthday = _is_birthday(ev, calendar_name, all_day, recurring.get(str(uid_raw), False))
    if not attendees and organizer is None and not birthday:
        return NO_ATTENDEES
    my = _my_response(attendees, organizer, opts)
    status = _STATUS.get(str(ev.get("STATUS", "")).upper(), "confirmed")
    key = (
        uid
        or "nouid-"
        + hashlib.blake2b(
            f"{ev.get('SUMMARY', '')}|{start.isoformat()}".encode(), digest_size=6
        ).hexdigest()
    )
    title = clean_text(str(ev.get("SUMMARY", "")))[:300] if opts.keep_titles else ""
    return EventMeta(
        account=opts.account,
        provider_id=f"{prefix}#{key}#{int(start.timestamp())}",
        start=start,
        end=end,
        all_day=all_day,
        ical_uid=uid,
        organizer=organizer,
        attendees=attendees,
        my_response=my,
        status=status,
        recurring=uid in recurring if uid else False,
        event_type=_event_type(ev, birthday),
        title=title or None,
    )


def _end(ev: Any, start: datetime, all_day: bool, opts: EventOptions) -> datetime:
    """DTEND, else DTSTART + DURATION, else a day (all-day) or nothing; never before the start."""
    if ev.get("DTEND") is not None:
        end = _to_utc(ev.get("DTEND").dt, opts.zone)
    elif ev.get("DURATION") is not None:
        end = start + ev.get("DURATION").dt
    else:
        end = start + (timedelta(days=1) if all_day else timedelta(0))
    return max(end, start)


def _my_response(
    attendees: tuple[Attendee, ...], organizer: Address | None, opts: EventOptions
) -> ResponseStatus:
    """My answer as an attendee; accepted when I organise it and am not listed; else unknown."""
    my = next((a.response for a in attendees if a.is_self), None)
    if my is None:
        my = "accepted" if organizer is not None and organizer.email in opts.me else "unknown"
    return my


def _event_type(ev: Any, birthday: bool) -> EventType:
    if birthday:
        return "birthday"
    busy = str(ev.get("X-MICROSOFT-CDO-BUSYSTATUS", "")).upper()
    return "outOfOffice" if busy == "OOF" else "default"


def _attendees(ev: Any, organizer: Address | None, opts: EventOptions) -> tuple[Attendee, ...]:
    out: dict[str, Attendee] = {}
    for value in _list(ev.get("ATTENDEE")):
        addr = _address(value)
        if addr is None or addr.email in out:
            continue
        params = getattr(value, "params", {})
        cutype = str(params.get("CUTYPE", "")).upper()
        out[addr.email] = Attendee(
            email=addr.email,
            name=addr.name,
            response=_PARTSTAT.get(str(params.get("PARTSTAT", "")).upper(), "unknown"),
            organizer=organizer is not None and organizer.email == addr.email,
            optional=str(params.get("ROLE", "")).upper() in ("OPT-PARTICIPANT", "NON-PARTICIPANT"),
            resource=cutype in ("RESOURCE", "ROOM", "GROUP") or not_a_person(addr.email, addr.name),
            is_self=addr.email in opts.me,
        )
    return tuple(out.values())
