from __future__ import annotations

import contextlib
import os
import stat
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from keepwarm.connectors.base import Address, Attendee, Batch, Deletion, EventMeta, MessageMeta
from keepwarm.daemon.store import Store

T0 = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)


def msg(pid: str, account: str = "a", mid: str | None = "m1@x", **kw: object) -> MessageMeta:
    base: dict[str, object] = {
        "account": account,
        "provider_id": pid,
        "date": T0,
        "sender": Address("alice@example.com", "Alice"),
        "to": (Address("me@example.com"),),
        "message_id": mid,
        "subject": "Hello",
    }
    base.update(kw)
    return MessageMeta(**base)  # type: ignore[arg-type]


def test_database_is_private_and_wal(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "state" / "kw.db")
    mode = stat.S_IMODE(os.stat(tmp_path / "state" / "kw.db").st_mode)
    assert mode == 0o600
    assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_batch_and_cursor_commit_together_and_reapply_is_noop() -> None:
    store = Store.memory()
    batch = Batch(messages=[msg("1"), msg("2", mid="m2@x", subject="Other")], cursor="c1")
    r1 = store.apply_batch("a", "maildir", batch)
    assert r1.added == 2 and store.cursor("a") == "c1"
    before = store.counts()
    r2 = store.apply_batch("a", "maildir", batch)
    assert r2.added == 0 and r2.unchanged == 2
    assert store.counts() == before


def test_failed_batch_rolls_back_records_and_cursor() -> None:
    store = Store.memory()
    bad = Batch(messages=[msg("1"), msg("2", date=datetime(2024, 1, 1))], cursor="c1")  # naive date
    with contextlib.suppress(AssertionError):
        store.apply_batch("a", "maildir", bad)
    assert store.counts()["messages"] == 0 and store.cursor("a") is None


def test_dedupe_by_message_id_across_accounts_and_by_content_key() -> None:
    store = Store.memory()
    store.apply_batch("a", "maildir", Batch(messages=[msg("1")]))
    store.apply_batch("b", "imap", Batch(messages=[msg("INBOX/1/7", account="b")]))
    # Lotus-style copy: another Message-ID, same content
    store.apply_batch("a", "maildir", Batch(messages=[msg("3", mid="other@notes")]))
    assert store.counts()["messages"] == 1
    assert store.counts()["message_sources"] == 3


def test_untrusted_message_id_is_not_merged() -> None:
    store = Store.memory()
    store.apply_batch("a", "maildir", Batch(messages=[msg("1")]))
    store.apply_batch(
        "a",
        "maildir",
        Batch(
            messages=[msg("2", date=T0 + timedelta(days=400), sender=Address("bob@example.com"))]
        ),
    )
    assert store.counts()["messages"] == 2


def test_deleting_last_source_removes_message() -> None:
    store = Store.memory()
    store.apply_batch("a", "maildir", Batch(messages=[msg("1")]))
    store.apply_batch("b", "imap", Batch(messages=[msg("9", account="b")]))
    store.apply_batch("a", "maildir", Batch(deletions=[Deletion("a", "1")]))
    assert store.counts()["messages"] == 1
    store.apply_batch("b", "imap", Batch(deletions=[Deletion("b", "9")]))
    assert store.counts()["messages"] == 0


def test_events_dedupe_by_uid_and_update_in_place() -> None:
    store = Store.memory()
    ev = EventMeta(
        account="a",
        provider_id="e1",
        start=T0,
        end=T0 + timedelta(hours=1),
        ical_uid="uid1",
        attendees=(Attendee("bob@example.com", response="accepted"),),
    )
    store.apply_batch("a", "ics", Batch(events=[ev]))
    store.apply_batch("b", "gcal", Batch(events=[replace(ev, account="b")]))
    assert store.counts()["events"] == 1
    moved = replace(
        ev, account="c", start=T0 + timedelta(days=1), end=T0 + timedelta(days=1, hours=1)
    )
    store.apply_batch("c", "gcal", Batch(events=[moved]))
    assert store.counts()["events"] == 2
    # re-applying a changed event replaces, never duplicates
    store.apply_batch("c", "gcal", Batch(events=[replace(moved, title="Moved again")]))
    assert store.counts()["events"] == 2


def test_failed_batch_does_not_leave_stale_address_ids() -> None:
    store = Store.memory()
    new_sender = Address("carol@example.com", "Carol")
    bad = Batch(
        messages=[msg("1", sender=new_sender), msg("2", mid="m2@x", date=datetime(2024, 1, 1))]
    )
    with contextlib.suppress(AssertionError):
        store.apply_batch("a", "maildir", bad)  # carol's address row was rolled back
    store.apply_batch("a", "maildir", Batch(messages=[msg("3", mid="m3@x", sender=new_sender)]))
    row = store.conn.execute(
        "SELECT a.email, a.name FROM messages m JOIN addresses a ON a.id = m.sender"
    ).fetchone()
    assert tuple(row) == ("carol@example.com", "Carol")


def test_display_name_learnt_after_a_nameless_sighting() -> None:
    store = Store.memory()
    store.apply_batch("a", "maildir", Batch(messages=[msg("1", to=(Address("bob@example.com"),))]))
    later = msg("2", mid="m2@x", sender=Address("bob@example.com", "Bob Stone"), subject="x")
    store.apply_batch("a", "maildir", Batch(messages=[later]))
    name = store.conn.execute("SELECT name FROM addresses WHERE email = 'bob@example.com'")
    assert name.fetchone()[0] == "Bob Stone"
