from __future__ import annotations

import contextlib
import os
import stat
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from leakcheck import close_after_test

from keepwarm.connectors.base import Address, Attendee, Batch, Deletion, EventMeta, MessageMeta
from keepwarm.daemon.store import Store, StoreError

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
    store = close_after_test(Store.open(tmp_path / "state" / "kw.db"))
    mode = stat.S_IMODE(os.stat(tmp_path / "state" / "kw.db").st_mode)
    assert mode == 0o600
    assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_batch_and_cursor_commit_together_and_reapply_is_noop() -> None:
    store = close_after_test(Store.memory())
    batch = Batch(messages=[msg("1"), msg("2", mid="m2@x", subject="Other")], cursor="c1")
    r1 = store.apply_batch("a", "maildir", batch)
    assert r1.added == 2 and store.cursor("a") == "c1"
    before = store.counts()
    r2 = store.apply_batch("a", "maildir", batch)
    assert r2.added == 0 and r2.unchanged == 2
    assert store.counts() == before


def test_failed_batch_rolls_back_records_and_cursor() -> None:
    store = close_after_test(Store.memory())
    bad = Batch(messages=[msg("1"), msg("2", date=datetime(2024, 1, 1))], cursor="c1")  # naive date
    with contextlib.suppress(AssertionError):
        store.apply_batch("a", "maildir", bad)
    assert store.counts()["messages"] == 0 and store.cursor("a") is None


def test_dedupe_by_message_id_across_accounts_and_by_content_key() -> None:
    store = close_after_test(Store.memory())
    store.apply_batch("a", "maildir", Batch(messages=[msg("1")]))
    store.apply_batch("b", "imap", Batch(messages=[msg("INBOX/1/7", account="b")]))
    # Lotus-style copy: another Message-ID, same content
    store.apply_batch("a", "maildir", Batch(messages=[msg("3", mid="other@notes")]))
    assert store.counts()["messages"] == 1
    assert store.counts()["message_sources"] == 3


def test_untrusted_message_id_is_not_merged() -> None:
    store = close_after_test(Store.memory())
    store.apply_batch("a", "maildir", Batch(messages=[msg("1")]))
    store.apply_batch(
        "a",
        "maildir",
        Batch(
            messages=[msg("2", date=T0 + timedelta(days=400), sender=Address("bob@example.com"))]
        ),
    )
    assert store.counts()["messages"] == 2


def test_deleted_mail_stays_in_history_and_spam_is_removed() -> None:
    """History is what happened (issue 15, item 11): mail deleted at its source stays; a
    message that turns out to be spam, a record replaced by a fresh read, and a folder the user
    no longer syncs are removed."""
    store = close_after_test(Store.memory())
    store.apply_batch("a", "maildir", Batch(messages=[msg("1")]))
    store.apply_batch("b", "imap", Batch(messages=[msg("9", account="b")]))
    r = store.apply_batch("a", "maildir", Batch(deletions=[Deletion("a", "1")]))
    assert (r.deleted, r.kept) == (0, 1)
    r = store.apply_batch("b", "imap", Batch(deletions=[Deletion("b", "9")]))
    assert (r.deleted, r.kept) == (0, 1)
    assert store.counts()["messages"] == 1  # deleted everywhere, still what happened
    assert store.counts()["message_sources"] == 0
    assert store.apply_batch("a", "maildir", Batch(deletions=[Deletion("a", "1")])).kept == 0
    for reason in ("spam", "replaced", "unselected"):
        store.apply_batch(
            "a", "maildir", Batch(messages=[msg("2", mid=f"{reason}@x", subject=reason)])
        )
        r = store.apply_batch("a", "maildir", Batch(deletions=[Deletion("a", "2", reason=reason)]))
        assert (r.deleted, r.kept) == (1, 0), reason
    assert store.counts()["messages"] == 1


def test_forget_deleted_removes_deleted_mail_and_what_was_kept() -> None:
    store = close_after_test(Store.memory())
    store.apply_batch("a", "maildir", Batch(messages=[msg("1"), msg("2", mid="m2@x", subject="b")]))
    store.apply_batch("a", "maildir", Batch(deletions=[Deletion("a", "1")]))
    assert store.counts()["messages"] == 2
    store.forget_deleted = True
    assert store.forget_deleted_mail("a") == 1
    assert store.counts()["messages"] == 1
    r = store.apply_batch("a", "maildir", Batch(deletions=[Deletion("a", "2")]))
    assert (r.deleted, r.kept) == (1, 0) and store.counts()["messages"] == 0


def test_a_vanished_folder_is_kept_even_when_forgetting_deleted_mail() -> None:
    store = close_after_test(Store.memory())
    store.forget_deleted = True
    store.apply_batch("a", "imap", Batch(messages=[msg("Old/1/1")]))
    batch = Batch(
        deletions=[Deletion("a", "Old/1/1", reason="vanished")],
        notices=["folder Old is gone from the server; its 1 message stays in your history"],
    )
    r = store.apply_batch("a", "imap", batch)
    assert (r.deleted, r.kept) == (0, 1) and store.counts()["messages"] == 1
    notices = store.notices("a")
    assert [n.text for n in notices] == [batch.notices[0]]


def test_a_moved_message_is_one_message_and_leaves_no_trace_of_the_move() -> None:
    store = close_after_test(Store.memory())
    store.apply_batch("a", "imap", Batch(messages=[msg("INBOX/1/5")]))
    store.apply_batch("a", "imap", Batch(messages=[msg("Archive/1/9")]))  # the copy arrives first
    r = store.apply_batch("a", "imap", Batch(deletions=[Deletion("a", "INBOX/1/5")]))
    assert (r.deleted, r.kept) == (1, 0)  # not history: it is still there, elsewhere
    assert store.counts()["message_sources"] == 1
    # deleted, then seen again (restored from the trash): present again, no history row left
    store.apply_batch("a", "imap", Batch(deletions=[Deletion("a", "Archive/1/9")]))
    store.apply_batch("a", "imap", Batch(messages=[msg("INBOX/1/6")]))
    rows = store.conn.execute("SELECT count(*) FROM gone_message_sources").fetchone()[0]
    assert rows == 0 and store.counts()["messages"] == 1


def test_a_spam_folder_sighting_turns_a_deletion_into_spam() -> None:
    """IMAP cannot say where a message went: a Message-ID now in the account's Junk folder
    makes its deletion a spam report."""
    store = close_after_test(Store.memory())
    store.apply_batch("a", "imap", Batch(messages=[msg("INBOX/1/5", mid="junk@x")]))
    batch = Batch(deletions=[Deletion("a", "INBOX/1/5")], spam_message_ids=["junk@x"])
    r = store.apply_batch("a", "imap", batch)
    assert (r.deleted, r.kept) == (1, 0) and store.counts()["messages"] == 0


def test_forgetting_an_account_forgets_its_history_too() -> None:
    store = close_after_test(Store.memory())
    store.apply_batch("a", "maildir", Batch(messages=[msg("1")]))
    store.apply_batch("a", "maildir", Batch(deletions=[Deletion("a", "1")]))
    store.forget_account("a")
    assert store.counts()["messages"] == 0


def test_a_reset_keeps_what_the_new_read_no_longer_has() -> None:
    """An mbox compacted by a mail client is read again whole: what was deleted from it stays."""
    store = close_after_test(Store.memory())
    store.apply_batch("a", "mbox", Batch(messages=[msg("0"), msg("100", mid="m2@x", subject="b")]))
    r = store.apply_batch(
        "a", "mbox", Batch(messages=[msg("0", mid="m2@x", subject="b")], reset=True)
    )
    assert store.counts()["messages"] == 2 and store.counts()["message_sources"] == 1
    assert r.kept == 1
    store.forget_deleted = True
    store.apply_batch("a", "mbox", Batch(messages=[msg("0", mid="m2@x", subject="b")], reset=True))
    assert store.counts()["messages"] == 1


def test_events_deleted_from_a_calendar_are_removed_unless_the_calendar_vanished() -> None:
    store = close_after_test(Store.memory())
    ev = EventMeta(
        account="c",
        provider_id="e1",
        start=T0,
        end=T0 + timedelta(hours=1),
        attendees=(Attendee("bob@example.com"),),
    )
    store.apply_batch("c", "ics", Batch(events=[ev]))
    store.apply_batch("c", "ics", Batch(deletions=[Deletion("c", "e1", "event")]))
    assert store.counts()["events"] == 0  # a deleted meeting did not take place
    store.apply_batch("c", "ics", Batch(events=[ev]))
    store.apply_batch("c", "ics", Batch(deletions=[Deletion("c", "e1", "event", "vanished")]))
    assert store.counts()["events"] == 1 and store.counts()["event_sources"] == 0


def test_events_dedupe_by_uid_and_update_in_place() -> None:
    store = close_after_test(Store.memory())
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
    store = close_after_test(Store.memory())
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
    store = close_after_test(Store.memory())
    store.apply_batch("a", "maildir", Batch(messages=[msg("1", to=(Address("bob@example.com"),))]))
    later = msg("2", mid="m2@x", sender=Address("bob@example.com", "Bob Stone"), subject="x")
    store.apply_batch("a", "maildir", Batch(messages=[later]))
    name = store.conn.execute("SELECT name FROM addresses WHERE email = 'bob@example.com'")
    assert name.fetchone()[0] == "Bob Stone"


def test_sqlite_errors_the_user_must_act_on_are_one_line() -> None:
    import sqlite3

    from keepwarm.daemon.store import database_problem

    path = Path("/state/kw.db")
    damaged = database_problem(path, sqlite3.DatabaseError("database disk image is malformed"))
    assert damaged is not None and damaged.fatal and "is damaged" in str(damaged)
    text = "Could not decode to UTF-8 column 'cursor' with text '{\"frags\": ...}'"
    undecodable = database_problem(path, sqlite3.OperationalError(text))
    assert undecodable is not None and "frags" not in str(undecodable)
    io = database_problem(path, sqlite3.OperationalError("disk I/O error"))
    assert io is not None and not io.fatal and "check the disk" in str(io)
    full = database_problem(path, sqlite3.OperationalError("database or disk is full"))
    assert full is not None and "Free disk space" in str(full)
    assert database_problem(path, sqlite3.IntegrityError("UNIQUE constraint failed")) is None
    assert database_problem(path, sqlite3.OperationalError("no such table: x")) is None


def test_a_file_that_is_no_database_is_an_error_and_leaves_no_connection_open(
    tmp_path: Path,
) -> None:
    path = tmp_path / "kw.db"
    path.write_bytes(b"not a database\n" * 512)
    with pytest.raises(StoreError, match="is damaged"):
        Store.open(path)
    # the leak check fails this test if the connection opened to find that out is left open
