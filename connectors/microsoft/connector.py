"""The Microsoft 365 connector: mail (per-folder delta), calendar (calendarView delta), then
contacts (per-folder contacts delta) when the account asks for them.

The cursor is JSON ``{"v": 1, "mail": {...}, "cal": {...}, "contacts": {...}}`` (see
:mod:`.mail`, :mod:`.calendar` and :mod:`.contacts`); every batch carries the whole state as it
stands after that page.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from keepwarm.connectors.base import Batch, Progress
from keepwarm.connectors.microsoft.calendar import CalendarSync
from keepwarm.connectors.microsoft.contacts import ContactsSync
from keepwarm.connectors.microsoft.graph import GraphClient
from keepwarm.connectors.microsoft.mail import PAGE_SIZE, MailSync

log = logging.getLogger(__name__)

CURSOR_VERSION = 1
LOG_EVERY = 5000  # progress line in the daemon log every this many records


@dataclass
class Options:
    mail: bool = True
    calendar: bool = True
    contacts: bool = False  # Outlook contacts (Contacts.Read), only when the user adds it
    backfill: timedelta = timedelta(days=3 * 365)
    window_past: timedelta = timedelta(days=730)
    window_future: timedelta = timedelta(days=14)
    keep_subjects: bool = True
    me: tuple[str, ...] = ()
    page_size: int = PAGE_SIZE


def load_cursor(cursor: str | None) -> dict[str, Any]:
    fresh = {"v": CURSOR_VERSION, "mail": {}, "cal": {}, "contacts": {}}
    if not cursor:
        return fresh
    try:
        state = json.loads(cursor)
    except ValueError:
        log.warning("unreadable Microsoft cursor; starting a full sync")
        return fresh
    if not isinstance(state, dict) or state.get("v") != CURSOR_VERSION:
        return fresh
    state.setdefault("mail", {})
    state.setdefault("cal", {})
    state.setdefault("contacts", {})
    return state


class MicrosoftConnector:
    """Outlook mail and calendar metadata for one account through Microsoft Graph."""

    kind = "microsoft"

    def __init__(
        self,
        account: str,
        client: GraphClient,
        options: Options,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.account = account
        self.client = client
        self.options = options
        self.now = now
        self._logged = 0

    def sync(self, cursor: str | None) -> Iterator[Batch]:
        try:
            yield from self._sync(cursor)
        finally:
            self.client.close()  # its connections, whether the sync ended, failed or was dropped

    def _sync(self, cursor: str | None) -> Iterator[Batch]:
        state = load_cursor(cursor)
        now = self.now()
        done = 0
        started = time.monotonic()
        if self.options.mail:
            mail = MailSync(
                self.client,
                account=self.account,
                keep_subjects=self.options.keep_subjects,
                cutoff=now - self.options.backfill,
                page_size=self.options.page_size,
            )
            total: int | None = None
            for page in mail.run(state["mail"]):
                if total is None:
                    total = mail.total or None
                done += page.seen
                self._log_progress(done, total, started, "mail")
                yield Batch(
                    messages=page.messages,
                    deletions=page.deletions,
                    cursor=json.dumps(state, separators=(",", ":")),
                    progress=Progress(done, max(total, done) if total else None, "mail"),
                    skipped=page.skipped,
                    notices=page.notices,
                )
        if self.options.calendar:
            cal = CalendarSync(
                self.client,
                account=self.account,
                me=self.options.me,
                keep_titles=self.options.keep_subjects,
                window_past=self.options.window_past,
                window_future=self.options.window_future,
                now=now,
            )
            for cpage in cal.run(state["cal"]):
                done += cpage.seen
                yield Batch(
                    events=cpage.events,
                    deletions=cpage.deletions,
                    cursor=json.dumps(state, separators=(",", ":")),
                    progress=Progress(done, None, "calendar"),
                    skipped=cpage.skipped,
                )
        if self.options.contacts:
            contacts = ContactsSync(self.client, account=self.account)
            for kpage in contacts.run(state["contacts"]):
                done += kpage.seen
                yield Batch(
                    contacts=kpage.contacts,
                    deletions=kpage.deletions,
                    cursor=json.dumps(state, separators=(",", ":")),
                    progress=Progress(done, None, "contacts"),
                    skipped=kpage.skipped,
                )
        log.debug(
            "account %s: sync pass done, %d items, %d Graph requests so far",
            self.account,
            done,
            self.client.requests,
        )

    def _log_progress(self, done: int, total: int | None, started: float, phase: str) -> None:
        if done // LOG_EVERY == self._logged // LOG_EVERY:
            return
        self._logged = done
        rate = done / max(time.monotonic() - started, 1e-6)
        of = f" of ~{total:,}" if total else ""
        log.info("account %s: %s %d%s items, %.0f/s", self.account, phase, done, of, rate)
