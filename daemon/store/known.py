"""What applying one batch of messages needs to know about the stored ones, read once a batch.

For every message of a batch the store asks whether its source was stored before and whether a
stored message is the same one (by Message-ID, content key or copy key: see the store's module
docstring). One query per message and key was most of an import's time. A :class:`BatchIndex`
reads every row those questions can need with a few ``IN (...)`` queries first, keeps the
messages the batch stores in the same maps, and queues the rows no lookup of the batch reads
(sources, recipients, history rows to clear) for one ``executemany`` each at the batch's end,
inside the batch's transaction. The answers are those the per-message queries gave: each map
holds exactly the rows such a query would return, in the same order (by id).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

CHUNK = 500  # keys an IN (...) query (SQLite allows 32,766 parameters; fewer is kinder)


class Keys(NamedTuple):
    """A message's dedupe keys, worked out once."""

    when: int  # the date, UTC epoch seconds
    norm_subject: str | None
    content: str
    copy: str | None


@dataclass(slots=True)
class Stored:
    """A stored message as deduplication sees it (updated when the batch changes it)."""

    id: int
    date: int
    sender: int | None
    markers: str | None


@dataclass(slots=True)
class Source:
    """Where a message was seen: an account's provider id."""

    message: int
    folder: str | None
    labels: str | None
    queued: bool  # stored by this batch, written at its end


def rows_where_in(
    conn: sqlite3.Connection, query: str, keys: Iterable[object], *before: object
) -> list[Any]:
    """The rows of ``query`` (ending in ``... IN``) for ``keys``, a chunk of keys a query."""
    distinct = list(dict.fromkeys(keys))
    rows: list[Any] = []
    for i in range(0, len(distinct), CHUNK):
        part = distinct[i : i + CHUNK]
        rows += conn.execute(f"{query} ({','.join('?' * len(part))})", (*before, *part))
    return rows


def conn_has(conn: sqlite3.Connection, account: str) -> bool:
    """Whether ``account`` has history rows: only then can a new source clear one."""
    row = conn.execute(
        "SELECT 1 FROM gone_message_sources WHERE account = ? LIMIT 1", (account,)
    ).fetchone()
    return row is not None


_MESSAGES = (
    "SELECT id, date, sender, markers, message_id, content_key, copy_key FROM messages WHERE"
)


class BatchIndex:
    """The stored sources and messages one batch's lookups can find, plus what the batch added."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.sources: dict[tuple[str, str], Source] = {}
        self.by_message_id: dict[str, list[Stored]] = {}
        self.by_content: dict[str, Stored] = {}
        self.by_copy: dict[str, list[Stored]] = {}
        self.refiled: dict[tuple[str, str], tuple[str | None, str | None]] = {}
        self.recipients: list[tuple[int, int, int]] = []
        self.seen_again: list[tuple[str, int]] = []
        self.history: set[str] = set()  # accounts with history rows (gone_message_sources)

    def load_sources(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Read the stored sources among ``(account, provider id)`` pairs."""
        by_account: dict[str, list[str]] = {}
        for account, pid in pairs:
            by_account.setdefault(account, []).append(pid)
        for account, pids in by_account.items():
            if conn_has(self.conn, account):
                self.history.add(account)
            query = """SELECT provider_id, message, folder, labels FROM message_sources
                       WHERE account = ? AND provider_id IN"""
            for pid, mid, folder, labels in rows_where_in(self.conn, query, pids, account):
                self.sources[(account, str(pid))] = Source(int(mid), folder, labels, False)

    def load_messages(self, message_ids: Iterable[str], keys: Iterable[Keys]) -> None:
        """Read the stored messages that share a Message-ID or content key with the batch's, and
        those that share a copy key with one whose content key is not stored (a stored content
        key is found first, so only those can get as far as the copy key)."""
        keys = list(keys)
        found: dict[int, Any] = {}

        def fetch(column: str, values: Iterable[str]) -> None:
            for row in rows_where_in(self.conn, f"{_MESSAGES} {column} IN", values):
                found[int(row[0])] = row

        fetch("message_id", message_ids)
        fetch("content_key", (k.content for k in keys))
        stored_content = {row[5] for row in found.values()}
        fetch("copy_key", (k.copy for k in keys if k.copy and k.content not in stored_content))
        for mid in sorted(found):
            _, date, sender, markers, message_id, content, copy = found[mid]
            stored = Stored(mid, int(date), sender, markers)
            self.add(stored, message_id, str(content), copy)

    def add(self, stored: Stored, message_id: str | None, content: str, copy: str | None) -> None:
        """Index a stored message by its keys (after those of lower id)."""
        if message_id is not None:
            self.by_message_id.setdefault(message_id, []).append(stored)
        self.by_content[content] = stored
        if copy is not None:
            self.by_copy.setdefault(copy, []).append(stored)

    def refile(
        self, where: tuple[str, str], source: Source, folder: str | None, labels: str | None
    ) -> None:
        """A known source seen again, maybe in another folder or with other labels."""
        if (source.folder, source.labels) == (folder, labels):
            return
        source.folder, source.labels = folder, labels
        if not source.queued:
            self.refiled[where] = (folder, labels)

    def add_source(
        self, where: tuple[str, str], mid: int, folder: str | None, labels: str | None
    ) -> None:
        """A new source of message ``mid``; its account's history row for it goes."""
        self.sources[where] = Source(mid, folder, labels, True)
        if where[0] in self.history:
            self.seen_again.append((where[0], mid))

    def write(self) -> None:
        """Write what the batch queued (in its transaction)."""
        conn = self.conn
        conn.executemany(
            "INSERT INTO message_sources (account, provider_id, message, folder, labels) VALUES (?, ?, ?, ?, ?)",
            [
                (a, p, s.message, s.folder, s.labels)
                for (a, p), s in self.sources.items()
                if s.queued
            ],
        )
        conn.executemany(
            "UPDATE message_sources SET folder = ?, labels = ? WHERE account = ? AND provider_id = ?",
            [(f, lab, a, p) for (a, p), (f, lab) in self.refiled.items()],
        )
        conn.executemany(
            "INSERT OR IGNORE INTO message_addresses (message, role, address) VALUES (?, ?, ?)",
            self.recipients,
        )
        conn.executemany(  # seen again (moved back, restored): no longer only history
            "DELETE FROM gone_message_sources WHERE account = ? AND message = ?", self.seen_again
        )
