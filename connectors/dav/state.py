"""The incremental sync of DAV collections, shared by CalDAV (events) and CardDAV (contacts).

The cursor remembers the collections' home, and per collection its token (the sync-collection
token, or nothing when the collection is compared by ETag), the state the home listed for it
(its ``DAV:sync-token`` or ``CS:getctag``), and per member its ETag and the ids of the records
made from it. A *reader* (the calendar or contacts connector) turns a member's data into records.

Every yielded batch carries the whole cursor. Within a collection the token is advanced only with
the collection's last batch, while the members read so far are remembered at once: a sync cut
short asks the server the same question again and fetches only the members it does not have.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from keepwarm.connectors.base import Batch, DeletionReason, Progress, kept_notice
from keepwarm.connectors.dav.session import (
    Changes,
    Collection,
    DavSession,
    Gone,
    NoSyncReport,
    TokenInvalid,
)
from keepwarm.connectors.local.common import Skips, decode_cursor, encode_cursor, pack, unpack

log = logging.getLogger(__name__)


@dataclass
class Member:
    """One member as last read: its ETag, the ids of its records, and whether it must be read
    again when the day changes (a series, or an event after the window)."""

    etag: str
    ids: list[str]
    moves: bool = False


@dataclass
class ColState:
    name: str = ""
    state: str | None = None  # what the home listed for the collection when last synced
    token: str | None = None  # the sync-collection token; None: start from scratch
    by_etag: bool = False  # the server has no sync-collection REPORT here
    members: dict[str, Member] = field(default_factory=dict)

    def dump(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "state": self.state,
            "token": self.token,
            "etag": self.by_etag,
            "m": pack({h: [m.etag, m.ids, int(m.moves)] for h, m in sorted(self.members.items())}),
        }

    @classmethod
    def load(cls, data: Any) -> ColState:
        if not isinstance(data, dict):
            return cls()
        raw = unpack(data.get("m", pack({})))
        members: dict[str, Member] = {}
        if isinstance(raw, dict):
            for href, value in raw.items():
                if isinstance(value, list) and len(value) == 3:
                    members[str(href)] = Member(
                        str(value[0]), [str(i) for i in value[1]], bool(value[2])
                    )
        return cls(
            name=str(data.get("name") or ""),
            state=data.get("state") if isinstance(data.get("state"), str) else None,
            token=data.get("token") if isinstance(data.get("token"), str) else None,
            by_etag=bool(data.get("etag")),
            members=members,
        )


@dataclass
class DavCursor:
    kind: str
    day: str | None = None
    home: str | None = None
    collections: dict[str, ColState] = field(default_factory=dict)

    @classmethod
    def load(cls, kind: str, cursor: str | None) -> DavCursor:
        data = decode_cursor(kind, cursor) or {}
        cols = data.get("cols") if isinstance(data.get("cols"), dict) else {}
        return cls(
            kind=kind,
            day=data.get("day") if isinstance(data.get("day"), str) else None,
            home=data.get("home") if isinstance(data.get("home"), str) else None,
            collections={str(u): ColState.load(c) for u, c in (cols or {}).items()},
        )

    def dump(self, day: str) -> str:
        return encode_cursor(
            self.kind,
            {
                "day": day,
                "home": self.home,
                "cols": {u: c.dump() for u, c in sorted(self.collections.items())},
            },
        )


class Reader(Protocol):
    """Turns members into records (see CalDAV's and CardDAV's connectors)."""

    noun: str  # what a record is called in notices: event, contact
    keeps_history: bool  # a collection gone from the server stays (events) or goes (contacts)

    def reread(self, member: Member) -> bool: ...

    def read(
        self, href: str, etag: str, data: str, old: Member | None, skips: Skips, batch: Batch
    ) -> Member: ...

    def forget(self, member: Member, batch: Batch, reason: DeletionReason) -> None: ...


class CollectionSync:
    """One run over every chosen collection of an account."""

    def __init__(
        self,
        account: str,
        session: DavSession,
        cursor: DavCursor,
        reader: Reader,
        batch_size: int,
        day: str,
    ) -> None:
        self.account = account
        self.session = session
        self.cursor = cursor
        self.reader = reader
        self.batch_size = max(1, batch_size)
        self.day = day
        self.skips = Skips()
        self.batch = Batch()
        self.done = 0
        self.total = 0
        self.full_resyncs = 0

    def _close(self) -> Batch:
        batch = self.batch
        batch.cursor = self.cursor.dump(self.day)
        batch.progress = Progress(self.done, self.total, "reading")
        batch.skipped = self.skips.take()
        self.batch = Batch()
        return batch

    def _listing(self) -> tuple[list[Collection], list[Collection]]:
        """(every collection of the account, the chosen ones); finds the home when needed."""
        fresh = self.cursor.home is None
        if fresh:
            self.cursor.home = self.session.find_home()
        try:
            found = self.session.collections(self.cursor.home or "")
        except Gone:
            if fresh:
                raise
            self.cursor.home = self.session.find_home()  # the home moved: look again, once
            found = self.session.collections(self.cursor.home)
        return found, self.session.choose(found)

    def run(self) -> Iterator[Batch]:
        """The batches of this run; the session's connections are closed when it ends, fails or
        is dropped."""
        try:
            yield from self._run()
        finally:
            self.session.close()

    def _run(self) -> Iterator[Batch]:
        start_day = self.cursor.day
        start_home = self.cursor.home
        found, chosen = self._listing()
        self.total = len(chosen)
        present = {c.url for c in found}
        wanted = {c.url for c in chosen}
        for url in sorted(set(self.cursor.collections) - wanted):
            # removed on the server: its history stays; left out by the config: forgotten
            old = self.cursor.collections.pop(url)
            vanished = url not in present
            for member in old.members.values():
                self.reader.forget(member, self.batch, "vanished" if vanished else "unselected")
            n = sum(len(m.ids) for m in old.members.values())
            if vanished and n and self.reader.keeps_history:
                what = self.session.flavour.what
                self.batch.notices.append(
                    kept_notice(
                        f'{what} "{old.name}" is gone from {self.session.host}',
                        n,
                        self.reader.noun,
                    )
                )
        for col in chosen:
            yield from self._collection(col)
            self.done += 1
        if len(self.batch) or self.skips or start_day != self.day or start_home != self.cursor.home:
            yield self._close()

    def _collection(self, col: Collection) -> Iterator[Batch]:
        cs = self.cursor.collections.get(col.url)
        if cs is None:
            cs = self.cursor.collections[col.url] = ColState(name=col.name)
        cs.name = col.name
        unchanged = cs.state is not None and col.state == cs.state
        reread = [h for h, m in cs.members.items() if self.reader.reread(m)]
        if unchanged and not reread:
            return
        changes = Changes() if unchanged else self._changes(col, cs)
        gone = set(changes.removed)
        if changes.complete:
            gone |= set(cs.members) - set(changes.changed)
        for href in sorted(gone):
            self._drop(cs, href)
        for href, etag, data in self.session.fetch(col.url, _wanted(cs, changes, reread)):
            if data is None:  # gone between the listing and the fetch
                self._drop(cs, href)
                continue
            etag = etag or changes.changed.get(href, "")
            cs.members[href] = self.reader.read(
                href, etag, data, cs.members.get(href), self.skips, self.batch
            )
            if len(self.batch) >= self.batch_size:
                yield self._close()
        cs.token = changes.token if not unchanged else cs.token
        cs.state = col.state
        yield self._close()

    def _drop(self, cs: ColState, href: str) -> None:
        """A member gone from the collection: its records are deleted."""
        member = cs.members.pop(href, None)
        if member is not None:
            self.reader.forget(member, self.batch, "deleted")

    def _changes(self, col: Collection, cs: ColState) -> Changes:
        if cs.by_etag:
            return self.session.etags(col.url)
        try:
            return self.session.changes(col.url, cs.token)
        except TokenInvalid:
            log.warning(
                "account %s: the server no longer knows the sync token of a %s; reading it whole",
                self.account,
                self.session.flavour.what,
            )
            self.full_resyncs += 1
            return self.session.changes(col.url, None)
        except NoSyncReport:
            log.info("account %s: no sync-collection report here; comparing ETags", self.account)
            cs.by_etag = True
            return self.session.etags(col.url)


def _wanted(cs: ColState, changes: Changes, reread: list[str]) -> list[str]:
    """The members to fetch: new or changed ones (by ETag), then those to read again."""
    wanted = [
        h
        for h, etag in sorted(changes.changed.items())
        if h not in cs.members or not etag or cs.members[h].etag != etag
    ]
    wanted += [h for h in reread if h in cs.members and h not in set(wanted)]
    return wanted
