"""Google Calendar metadata (``calendar.readonly``): who met whom, when, and who accepted.

Full sync: the calendar list (holiday/contacts calendars skipped, or the configured ids), then
``events.list`` per calendar with ``singleEvents=true`` over ``[now - window_past, now +
window_future]``; the last page's ``nextSyncToken`` is kept per calendar. Incremental sync repeats
the query with ``syncToken`` (without the time bounds, which Google rejects alongside it). A 410
``fullSyncRequired`` starts a clean resync: the first batch resets the account's events.
The full sync is also redone when it is older than half the future window, so events that were
created long ago but only now come into the window are seen.

Mapping: attendees with their response (rooms flagged as resources, ``attendeesOmitted`` kept),
my response from the ``self`` attendee, the organizer, cancellations as :class:`Deletion`,
``birthday`` and ``outOfOffice`` kept as event types (the engine uses them), focus time and
working location dropped (they are not meetings), the description never read, titles only when
the user keeps subjects.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import Any, cast

from googleapiclient.errors import HttpError

from keepwarm.connectors.base import (
    Address,
    Attendee,
    Batch,
    Deletion,
    EventMeta,
    EventType,
    Progress,
    ResponseStatus,
    SourceError,
)
from keepwarm.connectors.google.client import GoogleClient
from keepwarm.connectors.headers import normalize_address, not_a_person

CURSOR_VERSION = 2  # 2: the cursor knows which calendars are the user's own
RESPONSES = {"accepted", "declined", "tentative", "needsAction"}
KEPT_TYPES: dict[str, EventType] = {
    "default": "default",
    "birthday": "birthday",
    "outOfOffice": "outOfOffice",
    "fromGmail": "other",
}
DROPPED_TYPES = {"focusTime": "focus time", "workingLocation": "working location"}
SKIP_SUFFIXES = ("#holiday@group.v.calendar.google.com", "#contacts@group.v.calendar.google.com")


@dataclass
class CalendarOptions:
    window_past: timedelta = timedelta(days=730)
    window_future: timedelta = timedelta(days=14)
    calendars: tuple[str, ...] = ()
    me: tuple[str, ...] = ()  # the user's configured addresses
    store_subjects: bool = True
    page_size: int = 250
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))


# -- pure mapping --------------------------------------------------------------------------------------
def _instant(t: dict[str, Any]) -> tuple[datetime, bool] | None:
    try:
        if "dateTime" in t:
            dt = datetime.fromisoformat(str(t["dateTime"]).replace("Z", "+00:00"))
            if dt.tzinfo is None:
                return None
            return dt.astimezone(UTC), False
        if "date" in t:
            d = date.fromisoformat(str(t["date"]))
            return datetime(d.year, d.month, d.day, tzinfo=UTC), True
    except (ValueError, TypeError):
        return None
    return None


def _response(value: Any) -> ResponseStatus:
    return cast(ResponseStatus, value) if value in RESPONSES else "unknown"


def _attendee(a: dict[str, Any], me: frozenset[str], trust_self: bool) -> Attendee | None:
    email = normalize_address(str(a.get("email") or ""))
    if email is None:
        return None
    return Attendee(
        email=email,
        name=str(a.get("displayName") or ""),
        response=_response(a.get("responseStatus")),
        organizer=bool(a.get("organizer")),
        optional=bool(a.get("optional")),
        resource=bool(a.get("resource")) or not_a_person(email, str(a.get("displayName") or "")),
        is_self=(trust_self and bool(a.get("self"))) or email in me,
    )


def _is_me(who: Any, me: frozenset[str]) -> bool:
    return isinstance(who, dict) and normalize_address(str(who.get("email") or "")) in me


def to_event(
    ev: dict[str, Any],
    *,
    account: str,
    calendar_id: str,
    store_subjects: bool,
    me: frozenset[str] = frozenset(),
    own: bool = True,
) -> EventMeta | Deletion | str:
    """A Calendar v3 event -> EventMeta, a Deletion (cancelled), or a skip reason.

    ``self`` marks the owner of the calendar this copy is on, so it stands for the user only on
    the user's ``own`` calendars; on anyone else's the user is found by the addresses in ``me``,
    and an event without the user is skipped (it is the other person's meeting).
    """
    pid = f"{calendar_id}/{ev.get('id')}"
    if ev.get("status") == "cancelled":
        return Deletion(account, pid, kind="event")
    etype = str(ev.get("eventType") or "default")
    if etype in DROPPED_TYPES:
        return DROPPED_TYPES[etype]
    start = _instant(ev.get("start") or {})
    end = _instant(ev.get("end") or {})
    if start is None or end is None:
        return "unreadable event time"
    raw = ev.get("attendees") or []
    attendees = tuple(a for a in (_attendee(x, me, own) for x in raw) if a)
    mine = _my_response(ev, attendees, me, own)
    if mine is None:
        return "another person's event"
    status = ev.get("status")
    return EventMeta(
        account=account,
        provider_id=pid,
        start=start[0],
        end=max(end[0], start[0]),
        all_day=start[1],
        ical_uid=ev.get("iCalUID"),
        organizer=_organizer(ev),
        attendees=attendees,
        attendees_omitted=bool(ev.get("attendeesOmitted")),
        my_response=mine,
        status="tentative" if status == "tentative" else "confirmed",
        recurring=bool(ev.get("recurringEventId")),
        event_type=KEPT_TYPES.get(etype, "other"),
        title=_title(ev, store_subjects),
    )


def _organizer(ev: dict[str, Any]) -> Address | None:
    org = ev.get("organizer") or {}
    org_email = normalize_address(str(org.get("email") or ""))
    return Address(org_email, str(org.get("displayName") or "")) if org_email else None


def _title(ev: dict[str, Any], store_subjects: bool) -> str | None:
    return str(ev["summary"])[:998] if store_subjects and ev.get("summary") else None


def _my_response(
    ev: dict[str, Any], attendees: tuple[Attendee, ...], me: frozenset[str], own: bool
) -> ResponseStatus | None:
    """My answer to an event; None when it is another person's event without me (on a calendar
    that is not mine)."""
    org = ev.get("organizer") or {}
    myself = next((a for a in attendees if a.is_self), None)
    if myself is not None:
        return myself.response
    if (own and org.get("self")) or _is_me(org, me) or _is_me(ev.get("creator"), me):
        return "accepted"  # my own event
    if own and not attendees:
        return "accepted"  # one on my calendar without guests
    if not own:
        return None
    return "unknown"


def own_calendar(entry: dict[str, Any], me: frozenset[str]) -> bool:
    """The user's own calendar: the primary one, or one they own that is not another person's
    (a person's calendar has that person's address as its id; secondary calendars have
    ``...@group.calendar.google.com`` ids)."""
    if entry.get("primary"):
        return True
    cid = str(entry.get("id") or "").lower()
    personal = "@" in cid and not cid.endswith("calendar.google.com") and cid not in me
    return entry.get("accessRole") == "owner" and not personal


def wanted_calendar(
    entry: dict[str, Any], chosen: tuple[str, ...], me: frozenset[str] = frozenset()
) -> bool:
    """Configured ``chosen`` ids (``primary`` for the primary calendar), else the user's own."""
    cid = str(entry.get("id") or "")
    if chosen:
        return cid in chosen or (bool(entry.get("primary")) and "primary" in chosen)
    if entry.get("deleted") or cid.endswith(SKIP_SUFFIXES):
        return False
    return own_calendar(entry, me)


def _rfc3339(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- the connector -------------------------------------------------------------------------------------
class GoogleCalendarConnector:
    """Google Calendar metadata for one account (``kind = "gcal"``)."""

    kind = "gcal"

    def __init__(self, account: str, client: GoogleClient, options: CalendarOptions) -> None:
        self.account = account
        self.client = client
        self.options = options
        self._events: Any = None

    @property
    def api(self) -> Any:
        return self.client.service("calendar", "v3")

    @property
    def events(self) -> Any:
        if self._events is None:
            self._events = self.api.events()
        return self._events

    def sync(self, cursor: str | None) -> Iterator[Batch]:
        state = self._load(cursor)
        try:
            refresh_after = max(self.options.window_future / 2, timedelta(days=1)).total_seconds()
            stale = (
                state is not None
                and state.get("mode") == "incr"
                and (
                    self.options.now().timestamp() - float(state.get("full_at", 0)) > refresh_after
                )
            )
            if state is not None and state.get("mode") == "upgrade":
                # A version-1 cursor may have read colleagues' calendars as the user's own:
                # read again from scratch, forgetting what those copies said.
                yield from self._full(None, reset=True)
            elif state is None or stale:  # a periodic refresh upserts; only a 410 resets
                yield from self._full(None, reset=False)
            elif state["mode"] == "full":
                yield from self._full(state, reset=False)
            else:
                yield from self._incremental(state)
        finally:
            self.client.close()

    @staticmethod
    def _load(cursor: str | None) -> dict[str, Any] | None:
        if not cursor:
            return None
        try:
            state = json.loads(cursor)
        except ValueError:
            return None
        if isinstance(state, dict) and state.get("v") == 1:
            return {"mode": "upgrade"}
        ok = isinstance(state, dict) and state.get("v") == CURSOR_VERSION
        return state if ok and state.get("mode") in ("full", "incr") else None

    @staticmethod
    def _dump(state: dict[str, Any]) -> str:
        return json.dumps({"v": CURSOR_VERSION, **state}, separators=(",", ":"), sort_keys=True)

    def _me(self, state: dict[str, Any]) -> frozenset[str]:
        """The user's addresses: the configured ones and the primary calendar's id."""
        found = (normalize_address(a) for a in (*self.options.me, state.get("primary") or ""))
        return frozenset(a for a in found if a)

    def _calendars(self) -> tuple[list[str], list[str], str | None]:
        """``(ids to sync, those of them that are not the user's own, the primary's id)``."""
        entries = self._calendar_list()
        primary = next((str(e["id"]) for e in entries if e.get("primary")), None)
        me = self._me({"primary": primary})
        chosen = [e for e in entries if wanted_calendar(e, self.options.calendars, me)]
        if self.options.calendars and not chosen:
            raise SourceError(
                "none of the configured calendars was found; check the `calendars` ids in your config"
            )
        foreign = [str(e["id"]) for e in chosen if not own_calendar(e, me)]
        return [str(e["id"]) for e in chosen], foreign, primary

    def _calendar_list(self) -> list[dict[str, Any]]:
        """Every entry of the user's calendar list (all its pages)."""
        entries: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            page: dict[str, Any] = {"pageToken": token} if token else {}
            resp = self.client.execute(
                partial(self.api.calendarList().list, maxResults=250, **page),
                1,
                "listing calendars",
            )
            entries += [e for e in resp.get("items") or [] if isinstance(e, dict) and e.get("id")]
            token = resp.get("nextPageToken")
            if not token:
                return entries

    def _full(self, state: dict[str, Any] | None, *, reset: bool) -> Iterator[Batch]:
        if state is None:
            now = self.options.now()
            pending, foreign, primary = self._calendars()
            state = {
                "mode": "full",
                "pending": pending,
                "foreign": foreign,
                "primary": primary,
                "page": None,
                "tokens": {},
                "full_at": now.timestamp(),
                "time_min": _rfc3339(now - self.options.window_past),
                "time_max": _rfc3339(now + self.options.window_future),
                "done": 0,
            }
        st = dict(state)
        first = True
        while st["pending"]:
            cal = st["pending"][0]
            args = {"timeMin": st["time_min"], "timeMax": st["time_max"]}
            resp = self._list(cal, st.get("page"), args)
            batch, skipped = self._map(resp, cal, st, full=True)
            st["done"] = int(st["done"]) + len(resp.get("items") or [])
            if resp.get("nextPageToken"):
                st["page"] = resp["nextPageToken"]
            else:
                st["tokens"] = {**st["tokens"], cal: resp.get("nextSyncToken")}
                st["pending"], st["page"] = st["pending"][1:], None
            cur = st if st["pending"] else _incr(st, st["tokens"])
            batch.cursor = self._dump(cur)
            batch.progress = Progress(int(st["done"]), None, "calendar")
            batch.skipped = dict(skipped)
            batch.reset = reset and first
            first = False
            yield batch
        if first:  # no calendar at all: still record the cursor
            yield Batch(cursor=self._dump(_incr(st, {})), reset=reset)

    def _incremental(self, state: dict[str, Any]) -> Iterator[Batch]:
        tokens: dict[str, str | None] = dict(state.get("tokens") or {})
        for cal in list(tokens):
            page: str | None = None
            while True:
                try:
                    resp = self._list(cal, page, {"syncToken": tokens[cal]} if tokens[cal] else {})
                except _Gone:
                    yield from self._full(None, reset=True)
                    return
                batch, skipped = self._map(resp, cal, state, full=False)
                page = resp.get("nextPageToken")
                if not page:
                    tokens[cal] = resp.get("nextSyncToken")
                batch.cursor = self._dump(_incr(state, tokens))
                batch.skipped = dict(skipped)
                yield batch
                if not page:
                    break

    def _list(self, cal: str, page: str | None, args: dict[str, Any]) -> Any:
        kwargs = {
            "calendarId": cal,
            "singleEvents": True,
            "maxResults": self.options.page_size,
            **args,
        }
        if page:
            kwargs["pageToken"] = page
        try:
            return self.client.execute(
                partial(self.events.list, **kwargs),
                1,
                "listing calendar events",
                expect=(404, 410),
            )
        except HttpError as exc:
            if int(exc.resp.status) == 410:
                raise _Gone() from None
            raise SourceError(
                f'calendar "{cal}" is gone or no longer shared with you; remove it from `calendars`'
            ) from None

    def _map(
        self, resp: dict[str, Any], cal: str, state: dict[str, Any], *, full: bool
    ) -> tuple[Batch, Counter[str]]:
        batch = Batch()
        skipped: Counter[str] = Counter()
        horizon = self.options.now() - self.options.window_past
        me, own = self._me(state), cal not in (state.get("foreign") or ())
        for ev in resp.get("items") or []:
            rec = to_event(
                ev,
                account=self.account,
                calendar_id=cal,
                store_subjects=self.options.store_subjects,
                me=me,
                own=own,
            )
            if isinstance(rec, Deletion):
                batch.deletions.append(rec)
            elif isinstance(rec, str):
                skipped[rec] += 1
                if not full:  # e.g. an event that became focus time: forget the old version
                    batch.deletions.append(Deletion(self.account, f"{cal}/{ev.get('id')}", "event"))
            elif rec.end >= horizon:
                batch.events.append(rec)
        return batch, skipped


def _incr(state: dict[str, Any], tokens: dict[str, Any]) -> dict[str, Any]:
    """The incremental cursor state: sync tokens plus what the mapping needs to know."""
    return {
        "mode": "incr",
        "tokens": tokens,
        "full_at": state.get("full_at", 0),
        "foreign": state.get("foreign") or [],
        "primary": state.get("primary"),
    }


class _Gone(Exception):
    """The sync token expired (HTTP 410)."""
