"""iCalendar files (.ics exports from Google Calendar, Outlook, Apple Calendar...).

A path is one .ics file or a folder of them (searched recursively). Every event occurrence
within the window (``window_past`` before ``now`` to ``window_future`` after it) becomes an
:class:`EventMeta`; recurring events are expanded with ``recurring-ical-events``. Events with an
organizer or attendees are kept (meetings), and birthday events (occasions) even without them.
Floating times and all-day dates are taken in the user's zone; times with a TZID use the file's
VTIMEZONE (or the IANA zone of that name). A broken series or time zone is skipped, counted.

Re-scans are by content hash: an unchanged file is not read again on the same day; a changed file
has its events replaced (events removed from it are deleted: they did not take place). A file that
is gone as a whole keeps its events in the history, with a notice for the user. When the day changes the
window has moved, so every file is expanded again (the store ignores what it already has).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import icalendar
import recurring_ical_events

from keepwarm.connectors.base import (
    Address,
    Attendee,
    Batch,
    Deletion,
    EventMeta,
    EventStatus,
    EventType,
    Progress,
    ResponseStatus,
    kept_notice,
)
from keepwarm.connectors.headers import clean_text, normalize_address
from keepwarm.connectors.local.common import (
    DEFAULT_BATCH,
    UNPARSEABLE_CALENDAR,
    UNREADABLE,
    Skips,
    decode_cursor,
    encode_cursor,
    pack,
    require_path,
    unpack,
)

log = logging.getLogger(__name__)

KIND = "ics"
NO_ATTENDEES = "without attendees"
BAD_EVENT = "unparseable event"
TOO_FREQUENT = "repeats more often than daily"
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


@dataclass
class Window:
    start: datetime
    end: datetime
    day: str


@dataclass
class FileResult:
    events: list[EventMeta] = field(default_factory=list)
    skips: Skips = field(default_factory=Skips)


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


def _parse_calendars(raw: bytes | str) -> list[Any] | None:
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
            if tzid and _parse_calendars(_wrap(block)) is not None:
                zones[tzid.group(1).strip()] = block
            continue
        uid = _UID.search(block)
        series.setdefault(uid.group(1).strip() if uid else f"#{i}", []).append(block)
    out: list[Any] = []
    for blocks in series.values():
        used = {t.strip('"') for b in blocks for t in _TZID_USE.findall(b)}
        wanted = [zones[t] for t in sorted(used) if t in zones]
        cals = _parse_calendars(_wrap(*wanted, *blocks))
        if cals is None and wanted:
            cals = _parse_calendars(_wrap(*blocks))
        if cals is None:
            skips.add(BAD_EVENT)
        else:
            out += cals
    return out


def _wrap(*blocks: str) -> str:
    return "BEGIN:VCALENDAR\r\nVERSION:2.0\r\n" + "\r\n".join(blocks) + "\r\nEND:VCALENDAR\r\n"


def _more_often_than_daily(ev: Any) -> bool:
    try:
        return _frequent(ev)
    except Exception:  # a broken rule: the expansion skips the series as unparseable
        return False


def _frequent(ev: Any) -> bool:
    """A series that repeats more than once a day is not a series of meetings, and expanding it
    (FREQ=MINUTELY with no end: a million occurrences a year) is what must never happen.

    Decided from the rule itself, before any expansion: a FREQ below DAILY whose step is under a
    day, several BYHOUR/BYMINUTE/BYSECOND values (several times on one day; BYSETPOS picks a few
    of them), or more RDATEs than a calendar of meetings has. With this bound a series has at
    most one occurrence a day, so its expansion is bounded by the window.
    """
    for rule in _list(ev.get("RRULE")):
        parts = {str(k).upper(): v for k, v in dict(rule).items()}
        freq = str((parts.get("FREQ") or ["DAILY"])[0]).upper()
        try:
            interval = max(1, int((parts.get("INTERVAL") or [1])[0]))
        except (TypeError, ValueError):
            interval = 1
        if freq in _SECONDS and _SECONDS[freq] * interval < 86400:
            return True
        per_day = 1
        for key in ("BYHOUR", "BYMINUTE", "BYSECOND"):
            per_day *= max(1, len(parts.get(key) or ()))
        if parts.get("BYSETPOS"):
            per_day = min(per_day, len(parts["BYSETPOS"]))
        if per_day > 1:
            return True
    rdates = [getattr(d, "dt", None) for r in _list(ev.get("RDATE")) for d in r.dts or ()]
    if len(rdates) > MAX_RDATES:
        return True
    instants = {_instant(d) for d in rdates}  # one instant written in two zones is one
    return len({i.date() if isinstance(i, datetime) else i for i in instants}) < len(instants)


def _instant(value: Any) -> Any:
    """An RDATE value as something comparable: aware times in UTC, a PERIOD as its start."""
    if isinstance(value, tuple) and value:
        value = value[0]
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC)
    return value


def _drop_frequent(cal: Any, skips: Skips) -> None:
    """Remove every series (all components of its UID) that repeats more often than daily."""
    doomed = {
        str(c.get("UID"))
        for c in cal.subcomponents
        if getattr(c, "name", "") == "VEVENT" and _more_often_than_daily(c)
    }
    if not doomed:
        return
    skips.add(TOO_FREQUENT, len(doomed))
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


class IcsConnector:
    """One .ics file, or a folder of them, as a :class:`Connector` of events."""

    kind = KIND

    def __init__(
        self,
        account: str,
        path: str | Path,
        *,
        zone: ZoneInfo | str = "UTC",
        self_addresses: Iterable[str] = (),
        window_past: timedelta = timedelta(days=730),
        window_future: timedelta = timedelta(days=14),
        now: datetime | None = None,
        batch_size: int = DEFAULT_BATCH,
        keep_titles: bool = True,
    ) -> None:
        self.account = account
        self.path = Path(path)
        self.zone = zone if isinstance(zone, ZoneInfo) else ZoneInfo(zone)
        self.me = {a for a in (normalize_address(x) for x in self_addresses) if a}
        self.window_past = window_past
        self.window_future = window_future
        self.now = now
        self.batch_size = max(1, batch_size)
        self.keep_titles = keep_titles

    # -- files --------------------------------------------------------------------------------
    def _files(self, root: Path) -> dict[str, str]:
        if root.is_file():
            return {root.name: str(root)}
        found: dict[str, str] = {}
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                if name.lower().endswith(".ics") and not name.startswith("."):
                    full = os.path.join(dirpath, name)
                    found[os.path.relpath(full, root).replace(os.sep, "/")] = full
        return found

    def _window(self) -> Window:
        now = (self.now or datetime.now(UTC)).astimezone(UTC)
        return Window(now - self.window_past, now + self.window_future, now.date().isoformat())

    # -- sync ---------------------------------------------------------------------------------
    def sync(self, cursor: str | None) -> Iterator[Batch]:
        data = decode_cursor(KIND, cursor) or {}
        old_files: dict[str, Any] = data.get("files") or {}
        if not isinstance(old_files, dict):
            old_files = {}
        root = require_path(self.path, KIND)
        window = self._window()
        same_day = data.get("day") == window.day
        files = self._files(root)
        state = dict(old_files)
        batch = Batch()
        skips = Skips()
        done = 0
        total = len(files) + len([r for r in old_files if r not in files])
        for rel in sorted(old_files):
            if rel not in files:  # the calendar file is gone: its meetings stay in the history
                gone = [
                    Deletion(self.account, pid, "event", reason="vanished")
                    for pid in self._ids(old_files[rel])
                ]
                batch.deletions += gone
                if gone:
                    batch.notices.append(
                        kept_notice(f"calendar file {rel} is gone", len(gone), "event")
                    )
                del state[rel]
                done += 1
        for rel, full in files.items():
            done += 1
            try:
                with open(full, "rb") as fh:
                    raw = fh.read(MAX_FILE + 1)
            except OSError as exc:
                log.info("ics: cannot read a calendar file (%s)", exc.strerror)
                skips.add(UNREADABLE)
                continue
            digest = hashlib.blake2b(raw, digest_size=16).hexdigest()
            old = old_files.get(rel)
            if same_day and isinstance(old, dict) and old.get("h") == digest:
                continue
            result = self._parse(rel, raw, window)
            for reason, n in result.skips.items():
                skips.add(reason, n)
            new_ids = {e.provider_id for e in result.events}
            kept = self._replace(old, new_ids, window, batch)
            batch.events += result.events
            state[rel] = {"h": digest, "ids": pack(sorted(new_ids | kept))}
            if len(batch) >= self.batch_size:
                yield self._close(batch, state, window, skips, done, total)
                batch = Batch()
        if len(batch) or skips or state != old_files or data.get("day") != window.day:
            yield self._close(batch, state, window, skips, done, total)

    def _ids(self, entry: Any) -> list[str]:
        if not isinstance(entry, dict):
            return []
        ids = unpack(entry.get("ids", pack([])))
        return [str(i) for i in ids] if isinstance(ids, list) else []

    def _replace(self, old: Any, new_ids: set[str], window: Window, batch: Batch) -> set[str]:
        """Delete the file's earlier events that are gone; keep those before the window."""
        kept: set[str] = set()
        for pid in self._ids(old):
            if pid in new_ids:
                continue
            try:
                start = int(pid.rsplit("#", 1)[1])
            except (IndexError, ValueError):
                start = 0
            if start and start < window.start.timestamp():
                kept.add(pid)  # history that merely left the window stays
            else:  # removed from the file: a meeting that did not take place
                batch.deletions.append(Deletion(self.account, pid, "event", reason="replaced"))
        return kept

    def _close(
        self,
        batch: Batch,
        state: dict[str, Any],
        window: Window,
        skips: Skips,
        done: int,
        total: int,
    ) -> Batch:
        batch.cursor = encode_cursor(KIND, {"day": window.day, "files": state})
        batch.progress = Progress(done, total, "reading")
        batch.skipped = skips.take()
        return batch

    # -- parsing ------------------------------------------------------------------------------
    def _parse(self, rel: str, raw: bytes, window: Window) -> FileResult:
        result = FileResult()
        if len(raw) > MAX_FILE:
            result.skips.add("calendar file too large")
            return result
        calendars = _parse_calendars(raw)
        if calendars is None:  # a broken VTIMEZONE or line: read the events one by one
            calendars = _salvage(raw, result.skips)
            if not calendars:
                result.skips.add(UNPARSEABLE_CALENDAR)
                return result
        seen: set[str] = set()
        for cal in calendars:
            self._parse_calendar(rel, cal, window, result, seen)
        return result

    def _parse_calendar(
        self, rel: str, cal: Any, window: Window, result: FileResult, seen: set[str]
    ) -> None:
        if getattr(cal, "name", "") != "VCALENDAR":
            wrapper = icalendar.Calendar()
            wrapper.add_component(cal)
            cal = wrapper
        name = str(cal.get("X-WR-CALNAME", ""))
        _drop_frequent(cal, result.skips)
        recurring: dict[str, bool] = {}  # UID -> yearly
        for c in cal.walk("VEVENT"):
            if c.get("RRULE") or c.get("RDATE") or c.get("RECURRENCE-ID"):
                uid = str(c.get("UID"))
                rules = " ".join(str(r.to_ical()) for r in _list(c.get("RRULE")))
                recurring[uid] = recurring.get(uid, False) or "YEARLY" in rules.upper()
        occurrences = self._expand(cal, window, result)
        for ev in occurrences:
            try:
                meta = self._event(rel, ev, name, recurring)
            except Exception as exc:  # one bad event does not spoil the file
                log.debug("ics: skipped an event (%s)", exc)
                result.skips.add(BAD_EVENT)
                continue
            if isinstance(meta, str):
                result.skips.add(meta)
            elif meta.provider_id not in seen:
                seen.add(meta.provider_id)
                result.events.append(meta)

    def _expand(self, cal: Any, window: Window, result: FileResult) -> list[Any]:
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
                result.skips.add(BAD_EVENT)
        return out

    def _event(
        self, rel: str, ev: Any, calendar_name: str, recurring: dict[str, bool]
    ) -> EventMeta | str:
        dtstart = ev.get("DTSTART")
        if dtstart is None:
            return BAD_EVENT
        raw_start = dtstart.dt
        all_day = not isinstance(raw_start, datetime)
        start = _to_utc(raw_start, self.zone)
        if ev.get("DTEND") is not None:
            end = _to_utc(ev.get("DTEND").dt, self.zone)
        elif ev.get("DURATION") is not None:
            end = start + ev.get("DURATION").dt
        else:
            end = start + (timedelta(days=1) if all_day else timedelta(0))
        end = max(end, start)
        uid_raw = ev.get("UID")
        uid = clean_text(str(uid_raw))[:300] if uid_raw else None
        organizer = _address(ev.get("ORGANIZER"))
        attendees = self._attendees(ev, organizer)
        birthday = _is_birthday(ev, calendar_name, all_day, recurring.get(str(uid_raw), False))
        if not attendees and organizer is None and not birthday:
            return NO_ATTENDEES
        my = next((a.response for a in attendees if a.is_self), None)
        if my is None:
            my = "accepted" if organizer is not None and organizer.email in self.me else "unknown"
        status = _STATUS.get(str(ev.get("STATUS", "")).upper(), "confirmed")
        key = (
            uid
            or "nouid-"
            + hashlib.blake2b(
                f"{ev.get('SUMMARY', '')}|{start.isoformat()}".encode(), digest_size=6
            ).hexdigest()
        )
        title = clean_text(str(ev.get("SUMMARY", "")))[:300] if self.keep_titles else ""
        return EventMeta(
            account=self.account,
            provider_id=f"{rel}#{key}#{int(start.timestamp())}",
            start=start,
            end=end,
            all_day=all_day,
            ical_uid=uid,
            organizer=organizer,
            attendees=attendees,
            my_response=my,
            status=status,
            recurring=uid in recurring if uid else False,
            event_type=self._event_type(ev, birthday),
            title=title or None,
        )

    def _event_type(self, ev: Any, birthday: bool) -> EventType:
        if birthday:
            return "birthday"
        busy = str(ev.get("X-MICROSOFT-CDO-BUSYSTATUS", "")).upper()
        return "outOfOffice" if busy == "OOF" else "default"

    def _attendees(self, ev: Any, organizer: Address | None) -> tuple[Attendee, ...]:
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
                optional=str(params.get("ROLE", "")).upper()
                in ("OPT-PARTICIPANT", "NON-PARTICIPANT"),
                resource=cutype in ("RESOURCE", "ROOM"),
                is_self=addr.email in self.me,
            )
        return tuple(out.values())
