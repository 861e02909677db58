"""Threading keys stored as numbers (core/threadkeys.py, migration 0007): the same in every
process, written for every stored message, filled in for the messages of an older store, and
threading the same as the texts did."""

from __future__ import annotations

import importlib
import os
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from keepwarm.core.threadkeys import COLUMNS, key_of, reference_keys, thread_keys
from keepwarm.daemon.store import Store
from keepwarm.daemon.store.history import load_history
from keepwarm.daemon.store.migrations import fill_thread_keys, migrations
from keepwarm.digests.cadence import Directory, EngineSettings, analyze
from keepwarm.digests.queries import RecordMessages

NOW = datetime(2026, 5, 31, tzinfo=UTC)
ME = "me@example.com"


def test_no_text_is_no_key_and_equal_texts_are_equal_keys() -> None:
    assert key_of(None) == key_of("") == 0
    assert key_of("<a@x>") == key_of("<a@x>") != key_of("<b@x>")
    assert key_of("<a@x>") != 0
    assert reference_keys(None) == reference_keys("") == reference_keys("  ") == (0, 0)
    first, last = reference_keys("<r1@x>  <r2@x>\t<r3@x>")
    assert (first, last) == (key_of("<r1@x>"), key_of("<r3@x>"))
    assert reference_keys("<r1@x> <r1@x>") == (key_of("<r1@x>"), 0)  # the last is the first
    assert thread_keys("<m@x>", None, "<r@x>", "t1", "lunch") == (
        key_of("<m@x>"),
        0,
        key_of("<r@x>"),
        0,
        key_of("t1"),
        key_of("lunch"),
    )
    assert key_of("caf\udce9") != 0  # a surrogate from an undecodable header is still a key


def test_keys_are_the_same_in_every_process_and_release() -> None:
    """Stored keys are compared with keys worked out later, in other processes (Python's hash()
    is salted per process) and by later releases: the function may never change without a
    migration that works out every stored key again."""
    assert key_of("<a@example.com>") == 524994619751193551
    code = "from keepwarm.core.threadkeys import key_of; print(key_of('<a@example.com>'))"
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        assert int(out.stdout) == 524994619751193551


def _old_store(path: Path) -> None:
    """A store as the release before 0007 wrote it, with a thread told by its reply headers, one
    by References only, a thread id and a subject."""
    from sqlite_utils import Database

    db = Database(path)
    migrations.apply(db, stop_before="0007_thread_keys")
    conn = db.conn
    conn.executemany(
        "INSERT INTO addresses (id, email, name) VALUES (?, ?, '')",
        [(1, ME), (2, "ann@example.org"), (3, "bob@example.org")],
    )
    day = int((NOW - timedelta(days=20)).timestamp())
    rows = [
        # id, message_id, date, sender, subject, norm_subject, in_reply_to, refs, hint
        (1, "<1@x>", day, 2, "Plan", "plan", None, None, None),
        (2, "<2@x>", day + 3600, 1, "Re: Plan", "plan", "<1@x>", "<1@x>", None),
        (3, "<3@x>", day + 7200, 2, "Re: Plan", "plan", None, "<1@x> <2@x>", None),
        (4, "<4@x>", day + 86400, 3, "Lunch", "lunch", None, None, "t-9"),
        (5, "<5@x>", day + 90000, 1, "Re: Lunch", "lunch", None, None, "t-9"),
    ]
    for mid, msgid, date, sender, subject, norm, irt, refs, hint in rows:
        conn.execute(
            """INSERT INTO messages (id, message_id, content_key, date, sender, subject,
                   norm_subject, in_reply_to, refs, thread_hint, n_recipients)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)""",
            (mid, msgid, f"c{mid}", date, sender, subject, norm, irt, refs, hint),
        )
        to = 2 if sender == 1 and mid < 4 else 3 if sender == 1 else 1
        conn.executemany(
            "INSERT INTO message_addresses (message, role, address) VALUES (?, ?, ?)",
            [(mid, 0, sender), (mid, 1, to)],
        )
    conn.commit()
    db.close()


def _stored_keys(conn: sqlite3.Connection) -> dict[int, tuple[int, ...]]:
    sql = f"SELECT id, {', '.join(COLUMNS)} FROM messages ORDER BY id"
    return {int(r[0]): tuple(r[1:]) for r in conn.execute(sql)}


def test_an_older_store_gets_the_keys_of_its_messages(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    _old_store(path)
    with Store.open(path) as store:
        keys = _stored_keys(store.conn)
        texts = store.conn.execute(
            """SELECT id, message_id, in_reply_to, refs, thread_hint, norm_subject
               FROM messages ORDER BY id"""
        ).fetchall()
        assert keys == {int(r[0]): thread_keys(*r[1:]) for r in texts}
        assert keys[3][2:4] == reference_keys("<1@x> <2@x>") and keys[1][1] == 0
        assert fill_thread_keys(store.conn) == 0  # nothing left to do
        # the engine threads the stored numbers as it threads the texts of the same records
        history = load_history(store.conn, until=NOW, stream=True)
        records = load_history(store.conn, until=NOW)
        d = Directory({}, {}, frozenset({ME}))
        got = analyze(history, d, EngineSettings(), NOW)
        want = analyze(records, d, EngineSettings(), NOW)
        assert got == want
        ann = got.person("ann@example.org")
        assert ann is not None and ann.initiated_by_them == 1  # one thread, not three


def test_a_failed_migration_leaves_the_store_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed or failing half way (a full disk), the migration is undone as a whole and runs
    again at the next start: no message is left without its keys."""
    module = importlib.import_module("keepwarm.daemon.store.migrations")
    path = tmp_path / "old.db"
    _old_store(path)
    calls = 0
    real = module.thread_keys

    def failing(*args: str | None) -> tuple[int, int, int, int, int, int]:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise sqlite3.OperationalError("database or disk is full")
        return real(*args)

    monkeypatch.setattr(module, "thread_keys", failing)
    with pytest.raises(Exception, match="disk is full"):
        Store.open(path).close()
    conn = sqlite3.connect(path)
    try:
        columns = {r[1] for r in conn.execute("PRAGMA table_info(messages)")}
        assert not columns & set(COLUMNS)
    finally:
        conn.close()
    monkeypatch.setattr(module, "thread_keys", real)
    with Store.open(path) as store:
        assert all(k[0] != 0 for k in _stored_keys(store.conn).values())


def test_records_in_memory_carry_the_keys_the_store_writes() -> None:
    from keepwarm.digests.queries import MessageRecord

    rec = MessageRecord(
        7,
        0,
        ME,
        to=("ann@example.org",),
        message_id="<7@x>",
        in_reply_to="<6@x>",
        refs=("<5@x>", "<6@x>"),
        norm_subject="plan",
        thread_hint="t",
        markers=frozenset({"subject:re"}),
    )
    (chunk,) = RecordMessages([rec]).chunks()
    assert [list(c) for c in chunk.columns][5:] == [
        [k] for k in thread_keys("<7@x>", "<6@x>", "<5@x> <6@x>", "t", "plan")
    ]
    assert (list(chunk.marked), list(chunk.markers)) == ([7], ["subject:re"])
