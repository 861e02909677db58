"""Outlook calendar over ``/me/calendarView/delta`` on the primary calendar, within a window.

State (in the connector cursor)::

    {"link": nextLink | deltaLink | null, "start": ISO, "end": ISO}

The window ``[now - window_past, now + window_future]`` is fixed into the delta tokens by Graph,
which refuses windows longer than 1825 days: a longer one is clamped (the past shortened) with a
warning.
When the future edge has come within a day of ``now + window_future``, the current round is first
drained (so deletions are seen) and a new round over the moved window starts; events already
stored are matched by id and add nothing.

Recurring series: the delta sends each *occurrence* with only ``id``, ``type``,
``seriesMasterId``, ``start`` and ``end`` (microsoft-graph-docs issues 7632, 22197); organizer,
attendees, my response, ``showAs`` and the title are the series master's. A master in the delta
(its start/end are its first occurrence's, so it is not stored itself) is kept by id and
``changeKey``; a master not in the delta (a series that began before the window, an incremental
round) is fetched with ``$batch``, once per sync. An occurrence takes every field it lacks from its
master, so an exception's own attendees and times win; an occurrence whose master is gone (404) is
skipped. Bodies that the delta sends anyway (no ``$select`` is possible)
are dropped from each item before anything else looks at it. ``@removed`` also covers events
outside the window that changed, so a removed id is deleted only once Graph confirms (404) that
the event is gone.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from keepwarm.connectors.base import Deletion, EventMeta, TransientError
from keepwarm.connectors.microsoft.graph import DeltaExpired, GraphClient, quote_id
from keepwarm.connectors.microsoft.records import event_from_graph, strip_event_body

log = logging.getLogger(__name__)

PAGE_SIZE = 200
MAX_RESTARTS = 2
WINDOW_SLACK = timedelta(days=1)
MAX_WINDOW = timedelta(days=1825)  # Graph: "Maximum number of days: 1825" (docs issue 6284)
# What an occurrence may take from its series master (never a body).
MASTER_FIELDS = (
    "id,type,changeKey,subject,organizer,isOrganizer,attendees,responseStatus,showAs,isAllDay,"
    "isCancelled,iCalUId"
)
NOT_INHERITED = frozenset(
    {"id", "type", "seriesMasterId", "start", "end", "changeKey", "@odata.type", "@odata.etag"}
)
SERIES_GONE = "recurring series deleted"


@dataclass
class CalendarPage:
    events: list[EventMeta] = field(default_factory=list)
    deletions: list[Deletion] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)
    seen: int = 0


def _bare_occurrence(item: dict[str, Any]) -> str | None:
    """The series master's id of an occurrence that lacks what the master holds, else None."""
    master = item.get("seriesMasterId")
    if master and ("organizer" not in item or "attendees" not in item):
        return str(master)
    return None


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class CalendarSync:
    def __init__(
        self,
        client: GraphClient,
        *,
        account: str,
        me: Iterable[str],
        keep_titles: bool,
        window_past: timedelta,
        window_future: timedelta,
        now: datetime,
        page_size: int = PAGE_SIZE,
    ) -> None:
        self.client = client
        self.account = account
        self.me = tuple(me)
        self.keep_titles = keep_titles
        self.window_future = min(window_future, MAX_WINDOW)
        self.window_past = min(window_past, MAX_WINDOW - self.window_future)
        if self.window_past < window_past:
            log.warning(
                "account %s: window_past %d days + window_future %d days is more than Microsoft "
                "Graph's 1825-day calendar limit; reading the last %d days instead",
                account,
                window_past.days,
                window_future.days,
                self.window_past.days,
            )
        self.now = now
        self.page_size = page_size
        self.masters: dict[str, dict[str, Any] | None] = {}  # None: the series is gone

    @property
    def headers(self) -> dict[str, str]:
        return {
            "Prefer": f'odata.maxpagesize={self.page_size}, outlook.timezone="UTC", '
            'IdType="ImmutableId"'
        }

    def _new_window(self, state: dict[str, Any]) -> None:
        state["start"] = _iso(self.now - self.window_past)
        state["end"] = _iso(self.now + self.window_future)
        state["link"] = None

    def _stale(self, state: dict[str, Any]) -> bool:
        try:
            end = datetime.fromisoformat(str(state["end"]).replace("Z", "+00:00"))
        except (KeyError, ValueError):
            return True
        return end < self.now + self.window_future - WINDOW_SLACK

    def _initial_url(self, state: dict[str, Any]) -> str:
        q = urlencode({"startDateTime": state["start"], "endDateTime": state["end"]})
        return f"me/calendarView/delta?{q}"

    def run(self, state: dict[str, Any]) -> Iterator[CalendarPage]:
        if not state.get("start") or not state.get("end"):
            self._new_window(state)
        yield from self._round(state)
        if self._stale(state):
            log.info("account %s: moving the calendar window forward", self.account)
            self._new_window(state)
            yield from self._round(state)

    def _round(self, state: dict[str, Any]) -> Iterator[CalendarPage]:
        link = state.get("link") or self._initial_url(state)
        restarts = 0
        while True:
            try:
                data = self.client.get(link, headers=self.headers)
            except DeltaExpired:
                restarts += 1
                if restarts > MAX_RESTARTS:
                    raise TransientError(
                        "Microsoft Graph keeps expiring the calendar sync state; will retry later"
                    ) from None
                log.info("account %s: calendar delta state expired; resyncing", self.account)
                self._new_window(state)
                link = self._initial_url(state)
                continue
            page = self._page(data.get("value") or [])
            nxt, delta = data.get("@odata.nextLink"), data.get("@odata.deltaLink")
            state["link"] = str(nxt or delta or "") or None
            yield page
            if not nxt:
                return
            link = str(nxt)

    def _page(self, items: list[Any]) -> CalendarPage:
        page = CalendarPage()
        removed: list[str] = []
        kept: list[dict[str, Any]] = []
        for item in items:
            if not isinstance(item, dict) or not item.get("id"):
                continue
            strip_event_body(item)
            page.seen += 1
            if "@removed" in item:
                removed.append(str(item["id"]))
            elif str(item.get("type") or "").lower() == "seriesmaster":
                self._remember(item)
            else:
                kept.append(item)
        self._fetch_masters({m for i in kept if (m := _bare_occurrence(i))})
        for item in kept:
            rec = self._event(item)
            if isinstance(rec, str):
                page.skipped[rec] = page.skipped.get(rec, 0) + 1
                continue
            page.events.append(rec)
        if removed:
            self._resolve_removed(page, removed)
        return page

    def _event(self, item: dict[str, Any]) -> EventMeta | str:
        """The record of one event (an occurrence inherits what its series master says), or why
        it is skipped."""
        master_id = _bare_occurrence(item)
        if master_id:
            master = self.masters.get(master_id)
            if master is None:
                return SERIES_GONE
            item = {**{k: v for k, v in master.items() if k not in NOT_INHERITED}, **item}
        return event_from_graph(item, account=self.account, me=self.me, keep_title=self.keep_titles)

    def _remember(self, master: dict[str, Any]) -> None:
        """Keep a series master (a newer ``changeKey`` replaces an older one)."""
        mid = str(master["id"])
        known = self.masters.get(mid)
        if known is None or known.get("changeKey") != master.get("changeKey"):
            self.masters[mid] = strip_event_body(dict(master))

    def _fetch_masters(self, wanted: set[str]) -> None:
        """Fetch the series masters not seen yet (in this sync), 20 per ``$batch``."""
        todo = sorted(m for m in wanted if m not in self.masters)
        if not todo:
            return
        urls = {m: f"/me/events/{quote_id(m)}?$select={MASTER_FIELDS}" for m in todo}
        found = self.client.batch_get(urls, self.headers)
        for mid, (status, body) in found.items():
            if status == 200:
                self._remember({**body, "id": mid})
            elif status in (404, 410):
                self.masters[mid] = None
            else:
                raise TransientError(
                    f"Microsoft Graph could not give a recurring meeting's details (HTTP {status}); "
                    "will retry later"
                )

    def _resolve_removed(self, page: CalendarPage, removed: list[str]) -> None:
        """Graph also reports events *outside* the window as removed when they change: only an
        event that no longer exists is deleted, so meetings that fell out of the window stay."""
        urls = {eid: f"/me/events/{quote_id(eid)}?$select=id" for eid in dict.fromkeys(removed)}
        found = self.client.batch_get(urls, {"Prefer": 'IdType="ImmutableId"'})
        for eid, (status, _body) in found.items():
            if status in (404, 410):
                page.deletions.append(Deletion(self.account, eid, "event"))
            elif status != 200:
                raise TransientError(
                    f"Microsoft Graph could not say whether an event still exists (HTTP {status}); "
                    "will retry later"
                )
