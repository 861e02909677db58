"""Outlook calendar over ``/me/calendarView/delta`` on the primary calendar, within a window.

State (in the connector cursor)::

    {"link": nextLink | deltaLink | null, "start": ISO, "end": ISO}

The window ``[now - window_past, now + window_future]`` is fixed into the delta tokens by Graph.
When the future edge has come within a day of ``now + window_future``, the current round is first
drained (so deletions are seen) and a new round over the moved window starts; events already
stored are matched by id and add nothing. Graph's calendarView returns occurrences and exceptions
(``type`` occurrence/exception, marked recurring); a ``seriesMaster`` carries no occurrence time
of its own here and is skipped. Bodies that the delta sends anyway (no ``$select`` is possible)
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


@dataclass
class CalendarPage:
    events: list[EventMeta] = field(default_factory=list)
    deletions: list[Deletion] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)
    seen: int = 0


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
        self.window_past = window_past
        self.window_future = window_future
        self.now = now
        self.page_size = page_size

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
        for item in items:
            if not isinstance(item, dict) or not item.get("id"):
                continue
            strip_event_body(item)
            page.seen += 1
            if "@removed" in item:
                removed.append(str(item["id"]))
                continue
            if str(item.get("type") or "").lower() == "seriesmaster":
                continue
            rec = event_from_graph(
                item, account=self.account, me=self.me, keep_title=self.keep_titles
            )
            if isinstance(rec, str):
                page.skipped[rec] = page.skipped.get(rec, 0) + 1
                continue
            page.events.append(rec)
        if removed:
            self._resolve_removed(page, removed)
        return page

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
