"""The connector contract suite (vdirsyncer's StorageTests pattern: one suite, every storage).

Every connector's test module subclasses :class:`ConnectorContract` and provides a ``world``
fixture returning a :class:`World`: the test's handle on a real or emulated source (a maildir on
disk, the Gmail emulator, a Dovecot server...). The shared tests then check, through the real
``run_account`` + ``Store`` path, that:

- a full sync, then an incremental one, stores exactly the source's set;
- resuming from the cursor of *any* committed batch loses and duplicates nothing;
- deletions are applied by the history rule: a deleted message leaves the account's present set
  but stays in the history, until the user asks to forget deleted mail;
- an expired cursor leads to a clean full resync without duplicates;
- auth failures park the account with a fix; transient errors report back-off;
- every stored timestamp is UTC.

Capabilities a source does not have (a maildir has no credentials) are declared with class
attributes, and the matching tests are skipped with that reason. A calendar source runs the same
suite over events (``records = "events"``): its world adds events, ids are iCalendar UIDs, and
one more test checks that an event moved at its source replaces its old version (no stale
occurrence left behind). Google Calendar, .ics files, the Microsoft calendar and CalDAV run it.
``tests/reference_connector.py`` is the smallest source that passes the suite (over messages).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import ClassVar, Protocol

import pytest
from leakcheck import close_after_test

from keepwarm.connectors.base import Batch, Connector
from keepwarm.daemon.store import Store
from keepwarm.daemon.sync import run_account


class World(Protocol):
    """A mutable source plus a factory for connectors reading it."""

    account: str
    kind: str

    def connector(self) -> Connector:
        """A fresh connector for the source (as the daemon would build on each run)."""

    def add_messages(self, n: int) -> None:
        """Add ``n`` new, distinct messages, each with a unique Message-ID, to the source."""

    def delete_one(self) -> str:
        """Delete one message that is present; return its Message-ID."""

    def expected_ids(self) -> set[str]:
        """Message-IDs currently in the source that the connector should store."""

    def expire_cursor(self) -> None:
        """Make stored cursors invalid (history too old, UIDVALIDITY changed, delta token expired)."""

    def break_auth(self) -> None:
        """Make the credentials fail (revoked token, wrong password)."""

    def fail_transiently(self) -> None:
        """Make the next requests fail with a retryable error (429/503/dropped connection)."""

    def heal(self) -> None:
        """Undo break_auth / fail_transiently."""

    def change_one(self) -> tuple[str, datetime]:
        """Calendar worlds: move one present event to another start (and change its title);
        return its iCalendar UID and its new start (UTC)."""


def stored_event_uids(store: Store, account: str) -> list[str]:
    """iCalendar UIDs of the events stored through ``account`` (a list, so duplicates show)."""
    rows = store.conn.execute(
        """SELECT e.ical_uid FROM event_sources s JOIN events e ON e.id = s.event
           WHERE s.account = ?""",
        (account,),
    ).fetchall()
    return sorted(r[0] for r in rows)


def stored_ids(store: Store, account: str) -> list[str]:
    """Message-IDs stored through ``account`` (a list, so duplicates show)."""
    rows = store.conn.execute(
        """SELECT m.message_id FROM message_sources s JOIN messages m ON m.id = s.message
           WHERE s.account = ?""",
        (account,),
    ).fetchall()
    return sorted(r[0] for r in rows)


def stored_starts(store: Store, account: str, uid: str) -> list[int]:
    """The starts (epoch seconds) of the events with this UID stored through ``account``."""
    rows = store.conn.execute(
        """SELECT e.start FROM event_sources s JOIN events e ON e.id = s.event
           WHERE s.account = ? AND e.ical_uid = ?""",
        (account, uid),
    ).fetchall()
    return sorted(r[0] for r in rows)


def history_ids(store: Store) -> set[str]:
    """Message-IDs of every message the store keeps, present at a source or only in history."""
    return {r[0] for r in store.conn.execute("SELECT message_id FROM messages")}


class ConnectorContract:
    """Subclass and provide a ``world`` fixture. Override the capability flags as needed."""

    has_auth: ClassVar[bool] = True
    has_cursor_expiry: ClassVar[bool] = True
    has_transient_errors: ClassVar[bool] = True
    initial_messages: ClassVar[int] = 12
    records: ClassVar[str] = "messages"  # or "events": the world adds events, ids are UIDs

    def stored(self, store: Store, account: str) -> list[str]:
        if self.records == "events":
            return stored_event_uids(store, account)
        return stored_ids(store, account)

    @pytest.fixture
    def world(self) -> World:  # pragma: no cover - overridden
        raise NotImplementedError("subclasses provide a world fixture")

    def _sync(self, store: Store, world: World, on_batch: Callable[..., None] | None = None) -> str:
        outcome = run_account(store, world.connector(), on_batch=on_batch)
        return outcome.state

    def test_full_then_incremental_gives_the_same_set(self, world: World) -> None:
        store = close_after_test(Store.memory())
        world.add_messages(self.initial_messages)
        assert self._sync(store, world) == "ok"
        assert self.stored(store, world.account) == sorted(world.expected_ids())
        world.add_messages(3)
        assert self._sync(store, world) == "ok"
        assert self.stored(store, world.account) == sorted(world.expected_ids())
        assert self._sync(store, world) == "ok"  # nothing new: nothing changes
        assert self.stored(store, world.account) == sorted(world.expected_ids())

    def test_resume_from_every_cursor_loses_and_duplicates_nothing(self, world: World) -> None:
        world.add_messages(self.initial_messages)
        batches: list[Batch] = []
        reference = close_after_test(Store.memory())
        self._sync(reference, world, on_batch=lambda _a, _p, b: batches.append(b))
        expected = self.stored(reference, world.account)
        assert expected == sorted(world.expected_ids())
        assert len(batches) >= 2, "the world should make the connector yield several batches"
        for k in range(1, len(batches)):
            store = close_after_test(Store.memory())
            for b in batches[:k]:
                store.apply_batch(world.account, world.kind, b)  # as if killed after batch k
            assert self._sync(store, world) == "ok"
            assert self.stored(store, world.account) == expected, f"resuming after batch {k}"

    def test_deletions_are_applied(self, world: World) -> None:
        store = close_after_test(Store.memory())
        world.add_messages(self.initial_messages)
        self._sync(store, world)
        gone = world.delete_one()
        assert self._sync(store, world) == "ok"
        ids = self.stored(store, world.account)
        assert gone not in ids
        assert ids == sorted(world.expected_ids())
        if self.records == "events":  # a meeting deleted at its source did not take place
            assert store.counts()["events"] == len(world.expected_ids())
            return
        assert gone in history_ids(store)  # what happened, happened
        store.forget_deleted = True  # [privacy] forget_deleted = true
        assert self._sync(store, world) == "ok"
        assert gone not in history_ids(store)
        assert stored_ids(store, world.account) == sorted(world.expected_ids())

    def test_a_changed_event_replaces_its_old_version(self, world: World) -> None:
        if self.records != "events":
            pytest.skip("messages do not change at their source; events do")
        store = close_after_test(Store.memory())
        world.add_messages(self.initial_messages)
        assert self._sync(store, world) == "ok"
        uid, start = world.change_one()
        assert self._sync(store, world) == "ok"
        assert self.stored(store, world.account) == sorted(world.expected_ids())
        assert stored_starts(store, world.account, uid) == [int(start.timestamp())]

    def test_expired_cursor_resyncs_without_duplicates(self, world: World) -> None:
        if not self.has_cursor_expiry:
            pytest.skip("this source has no cursor that can expire")
        store = close_after_test(Store.memory())
        world.add_messages(self.initial_messages)
        self._sync(store, world)
        world.expire_cursor()
        world.add_messages(2)
        assert self._sync(store, world) == "ok"
        assert self.stored(store, world.account) == sorted(world.expected_ids())

    def test_auth_failure_parks_account_with_a_fix(self, world: World) -> None:
        if not self.has_auth:
            pytest.skip("this source has no credentials")
        store = close_after_test(Store.memory())
        world.add_messages(3)
        world.break_auth()
        assert self._sync(store, world) == "auth_required"
        state = {s.name: s for s in store.account_states()}[world.account]
        assert state.state == "auth_required" and state.fix and state.last_error
        world.heal()
        assert self._sync(store, world) == "ok"
        assert self.stored(store, world.account) == sorted(world.expected_ids())

    def test_transient_errors_back_off_and_lose_nothing(self, world: World) -> None:
        if not self.has_transient_errors:
            pytest.skip("this source has no transient failures")
        store = close_after_test(Store.memory())
        world.add_messages(self.initial_messages)
        world.fail_transiently()
        assert self._sync(store, world) in ("backoff", "ok")
        world.heal()
        assert self._sync(store, world) == "ok"
        assert self.stored(store, world.account) == sorted(world.expected_ids())

    def test_timestamps_are_utc(self, world: World) -> None:
        world.add_messages(4)
        batches: list[Batch] = []
        self._sync(
            close_after_test(Store.memory()), world, on_batch=lambda _a, _p, b: batches.append(b)
        )
        records = [m.date for b in batches for m in b.messages] + [
            e.start for b in batches for e in b.events
        ]
        assert records
        assert all(
            d.utcoffset() is not None and d.utcoffset().total_seconds() == 0 for d in records
        )  # type: ignore[union-attr]
