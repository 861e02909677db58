"""CalDAV calendars (``kind = "caldav"``): Fastmail, iCloud, Nextcloud, mailbox.org, Radicale...

Each calendar member (one ``.ics`` resource: an event, or a series with its exceptions) is read
like a local .ics file, through the shared VEVENT mapping (:mod:`keepwarm.connectors.ical`): the
occurrences within the window become events with provider ids ``HREF#UID#START``.

Incremental sync, per calendar:

1. One PROPFIND of the calendar home lists every calendar with its ``DAV:sync-token`` (or
   ``CS:getctag``). A calendar whose token did not change is not asked anything else, so a sync
   with no change costs one request for the whole account.
2. Otherwise the ``sync-collection`` REPORT from the stored token lists the changed and removed
   members. A token the server no longer knows means a full listing of that calendar (members
   that are not in it are gone); a server without the report is compared by ETag.
3. Changed members are fetched by ``calendar-multiget``, 100 at a time; each batch carries the
   cursor, so a sync that stops midway resumes after the last stored batch and fetches only
   what it does not have yet.

When the day changes the window moves: members that repeat, or that start after the window,
are read again (once a day). An event removed on the server is removed (it did not take place);
a calendar removed from the server stays in your history, with a notice; a calendar left out of
``calendars = [...]`` is forgotten.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

from keepwarm.connectors.base import Batch, Deletion, DeletionReason
from keepwarm.connectors.dav.session import CALDAV, DavSession, DavSettings
from keepwarm.connectors.dav.state import CollectionSync, DavCursor, Member
from keepwarm.connectors.ical import (
    EventOptions,
    Window,
    events_of,
    later,
    recurs,
    replaced,
    window_around,
)
from keepwarm.connectors.local.common import Skips

log = logging.getLogger(__name__)

KIND = "caldav"
DEFAULT_BATCH = 500


@dataclass(frozen=True)
class CalDavSettings:
    zone: ZoneInfo | str = "UTC"
    me: tuple[str, ...] = ()
    window_past: timedelta = timedelta(days=730)
    window_future: timedelta = timedelta(days=14)
    keep_titles: bool = True
    batch_size: int = DEFAULT_BATCH


class CalDavConnector:
    """Every chosen calendar of one CalDAV account, as a :class:`Connector` of events."""

    kind = KIND

    def __init__(
        self,
        account: str,
        settings: DavSettings,
        options: CalDavSettings | None = None,
        *,
        now: Any = None,
    ) -> None:
        self.account = account
        self.options = options or CalDavSettings()
        self.session = DavSession(settings, CALDAV)
        self.opts = EventOptions.make(
            account, self.options.zone, self.options.me, self.options.keep_titles
        )
        self.now = now

    def sync(self, cursor: str | None) -> Iterator[Batch]:
        window = window_around(self.now, self.options.window_past, self.options.window_future)
        state = DavCursor.load(KIND, cursor)
        reader = _EventReader(self, window, state.day != window.day)
        yield from CollectionSync(
            self.account, self.session, state, reader, self.options.batch_size, window.day
        ).run()


class _EventReader:
    """How a calendar member becomes records, for :class:`CollectionSync`."""

    noun = "event"
    keeps_history = True

    def __init__(self, conn: CalDavConnector, window: Window, new_day: bool) -> None:
        self.conn = conn
        self.window = window
        self.new_day = new_day

    def reread(self, member: Member) -> bool:
        """Read this unchanged member again? Once a day, when its occurrences move with the window."""
        return self.new_day and member.moves

    def read(
        self, href: str, etag: str, data: str, old: Member | None, skips: Skips, batch: Batch
    ) -> Member:
        events = events_of(data, href, self.window, self.conn.opts, skips)
        new_ids = {e.provider_id for e in events}
        kept: set[str] = set()
        if old is not None:
            gone, kept = replaced(old.ids, new_ids, self.window)
            batch.deletions += [
                Deletion(self.conn.account, pid, "event", reason="replaced") for pid in gone
            ]
        batch.events += events
        moves = recurs(data) or later(data, self.window, self.conn.opts)
        return Member(etag, sorted(new_ids | kept), moves)

    def forget(self, member: Member, batch: Batch, reason: DeletionReason) -> None:
        """A member removed at the source (its meetings did not take place), or a calendar gone
        from the server (kept in the history) or left out by the config (forgotten)."""
        batch.deletions += [
            Deletion(self.conn.account, pid, "event", reason=reason) for pid in member.ids
        ]


__all__ = ["KIND", "CalDavConnector", "CalDavSettings"]
