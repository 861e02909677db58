"""Kept column blocks (daemon/store/blocks.py): a read that takes kept blocks gives exactly what
SQLite answers from the stored rows, whatever changed since they were kept, however the read
ends; a block is kept only when it is what is stored."""

from __future__ import annotations

import json
import re
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from leakcheck import close_after_test

from keepwarm.connectors.base import Address, Batch, MessageMeta
from keepwarm.daemon.store import Store, blocks
from keepwarm.daemon.store.history import _MESSAGE_SQL, _RECIPIENT_SQL, MessageStream

DAY0 = datetime(2026, 1, 1, tzinfo=UTC)
GAP_BLOCK = 2  # the raw row below puts later messages' ids in block 2; block 1 stays empty
ALL = [0, 1, GAP_BLOCK]  # an empty block is kept too: no query for it next time


def _metas(start: int, n: int) -> list[MessageMeta]:
    out = []
    for i in range(start, start + n):
        out.append(
            MessageMeta(
                account="a",
                provider_id=str(i),
                date=DAY0 + timedelta(days=i),
                sender=Address(f"p{i % 5}@example.org") if i % 7 else Address("me@example.com"),
                to=(Address("me@example.com"),) if i % 7 else (Address(f"p{i % 5}@example.org"),),
                cc=(Address(f"c{i % 3}@example.net"),) if i % 2 else (),
                message_id=f"<{i}@x>",
                in_reply_to=f"<{i - 1}@x>" if i % 3 == 0 else None,
                subject=f"topic {i % 4}",
                markers=("list-unsubscribe",) if i % 4 == 0 else (),
            )
        )
    return out


def _store(tmp_path: Path) -> Store:
    """Messages in block 0 and in block 2 (written by the real write path on both sides of
    one raw row with a far id)."""
    store = close_after_test(Store.open(tmp_path / "kw.db"))
    store.apply_batch("a", "maildir", Batch(messages=_metas(1, 12)))
    far = (GAP_BLOCK << blocks.BLOCK_BITS) + 3
    store.conn.execute(
        "INSERT INTO messages (id, content_key, date, n_recipients) VALUES (?, 'far', ?, 0)",
        (far, int((DAY0 + timedelta(days=20)).timestamp())),
    )
    store.conn.commit()
    store.apply_batch("a", "maildir", Batch(messages=_metas(30, 12)))
    return store


def _read(conn: sqlite3.Connection, until: int | None = None) -> dict[str, Any]:
    """Everything the engine reads, joined across chunks."""
    stream = MessageStream(conn)
    chunks = list(stream.chunks(until))
    columns = [np.concatenate([c.columns[i] for c in chunks]) for i in range(11)] if chunks else []
    return {
        "columns": [c.tolist() for c in columns],
        "marked": [int(x) for c in chunks for x in c.marked],
        "markers": [m for c in chunks for m in c.markers],
        "recipients": [int(x) for p in stream.recipients() for x in p],
    }


def _truth(path: Path, until: int | None = None) -> dict[str, Any]:
    """What SQLite answers from the stored rows, without blocks: the bulk queries over every id
    at once, the dates filtered by SQL."""
    conn = sqlite3.connect(path)
    try:
        dated = _MESSAGE_SQL + " AND date <= ?"  # SQL's own date filter
        *texts, marked, markers = conn.execute(dated, (0, 2**62, until or 2**62)).fetchone()
        stride = len(MessageStream(conn).emails)
        (packed,) = conn.execute(_RECIPIENT_SQL, (stride, 0, 2**62)).fetchone()
    finally:
        conn.close()

    def ints(text: str | None) -> list[int]:
        return [int(x) for x in text.split(",")] if text else []

    return {
        "columns": [ints(t) for t in texts] if texts[0] else [],
        "marked": ints(marked),
        "markers": json.loads(markers) if marked else [],
        "recipients": ints(packed),
    }


def _kept(conn: sqlite3.Connection, table: str = "message_blocks") -> list[int]:
    return [int(b) for (b,) in conn.execute(f"SELECT block FROM {table} ORDER BY block")]


def _until(day: int) -> int:
    return int((DAY0 + timedelta(days=day)).timestamp())


def test_a_read_keeps_its_blocks_and_the_kept_read_is_the_same(tmp_path: Path) -> None:
    store = _store(tmp_path)
    path = tmp_path / "kw.db"
    truth = _truth(path)
    assert _kept(store.conn) == []
    assert _read(store.conn) == truth  # read from SQL, and kept
    assert _kept(store.conn) == ALL == _kept(store.conn, "recipient_blocks")
    assert _read(store.conn) == truth  # read from the kept blocks
    assert truth["markers"] and truth["recipients"] and len(truth["columns"][0]) == 25


@pytest.mark.parametrize("day", [0, 5, 8, 20, 35, 100])
def test_kept_blocks_give_only_the_messages_up_to_until(tmp_path: Path, day: int) -> None:
    """Kept blocks hold every date; a read up to a moment gives what SQL gives for it (markers
    of later messages left out too)."""
    store = _store(tmp_path)
    _read(store.conn)  # keeps every block
    assert _read(store.conn, _until(day)) == _truth(tmp_path / "kw.db", _until(day))


CHANGES = {
    "a new message": lambda s: s.apply_batch("a", "maildir", Batch(messages=_metas(60, 1))),
    "markers": lambda s: s.conn.execute("UPDATE messages SET markers = 'list-id' WHERE id = 2"),
    "a date": lambda s: s.conn.execute("UPDATE messages SET date = date + 1 WHERE id = 3"),
    "a sender": lambda s: s.conn.execute("UPDATE messages SET sender = NULL WHERE id = 4"),
    "a threading key": lambda s: s.conn.execute("UPDATE messages SET k_subject = 9 WHERE id = 5"),
    "a deleted message": lambda s: s.conn.execute("DELETE FROM messages WHERE id = 6"),
    "a recipient": lambda s: s.conn.execute(
        "INSERT INTO message_addresses (message, role, address) VALUES (7, 2, 1)"
    ),
    "a deleted recipient": lambda s: s.conn.execute(
        "DELETE FROM message_addresses WHERE message = 8"
    ),
    "a recipient's role": lambda s: s.conn.execute(
        "UPDATE message_addresses SET role = 3 WHERE message = 9 AND role = 1"
    ),
}


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_a_change_drops_its_block_and_the_next_read_sees_it(tmp_path: Path, change: str) -> None:
    store = _store(tmp_path)
    _read(store.conn)
    before = _read(store.conn)
    CHANGES[change](store)
    store.conn.commit()
    after = _truth(tmp_path / "kw.db")
    assert after != before  # the change shows in what the engine reads
    assert _read(store.conn) == after
    assert _read(store.conn) == after  # and is kept again


def test_a_change_to_what_blocks_do_not_hold_keeps_them(tmp_path: Path) -> None:
    store = _store(tmp_path)
    _read(store.conn)
    store.conn.execute("UPDATE messages SET subject = 'other', copy_key = 'k' WHERE id = 2")
    store.conn.commit()
    assert _kept(store.conn) == ALL


def test_the_triggers_watch_every_column_the_reads_take() -> None:
    """The block triggers fire on the columns the bulk read selects (a column added to the read
    and not to the triggers would leave stale blocks)."""
    store = close_after_test(Store.memory())
    stored = {str(r[1]) for r in store.conn.execute("PRAGMA table_info(messages)")}
    read = {w for w in re.findall(r"[a-z_]+", _MESSAGE_SQL) if w in stored}
    assert read == set(blocks.MESSAGE_COLUMNS_READ)


def test_a_commit_after_the_snapshot_keeps_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Someone commits between the keeper's snapshot and its first write: the blocks read may
    not be what is stored, so none is kept; the next read keeps them."""
    store = _store(tmp_path)
    path = tmp_path / "kw.db"
    opened = blocks.Keeper.open

    def open_then_commit(conn: sqlite3.Connection) -> blocks.Keeper:
        keeper = opened(conn)
        other = sqlite3.connect(path)
        other.execute("UPDATE messages SET date = date + 60 WHERE id = 1")
        other.commit()
        other.close()
        return keeper

    monkeypatch.setattr(blocks.Keeper, "open", staticmethod(open_then_commit))
    _read(store.conn)
    assert _kept(store.conn) == [] == _kept(store.conn, "recipient_blocks")
    monkeypatch.setattr(blocks.Keeper, "open", opened)
    assert _read(store.conn) == _truth(path)
    assert _kept(store.conn) == ALL


def test_inside_a_transaction_the_read_sees_its_own_rows_and_keeps_nothing(
    tmp_path: Path,
) -> None:
    store = _store(tmp_path)
    path = tmp_path / "kw.db"
    _read(store.conn)
    store.conn.execute("BEGIN")
    store.conn.execute("UPDATE messages SET date = date + 60 WHERE id = 1")
    inside = _read(store.conn)  # block 0 is dropped for this connection alone
    assert _kept(store.conn) == [1, GAP_BLOCK]
    store.conn.commit()
    assert inside == _truth(path)
    assert _kept(store.conn) == [1, GAP_BLOCK]  # nothing was kept inside the transaction
    assert _read(store.conn) == inside
    assert _kept(store.conn) == ALL


@pytest.mark.parametrize(
    "damage",
    [
        "UPDATE message_blocks SET data = x'00'",
        "UPDATE message_blocks SET widths = '9'",
        "UPDATE message_blocks SET markers = 'not json'",
        "UPDATE message_blocks SET marked = x'0102'",
        "UPDATE message_blocks SET format = 0",
        "UPDATE recipient_blocks SET data = x'00'",
        "UPDATE recipient_blocks SET stride = 0",
    ],
)
def test_a_damaged_block_is_read_again(tmp_path: Path, damage: str) -> None:
    store = _store(tmp_path)
    truth = _truth(tmp_path / "kw.db")
    _read(store.conn)
    store.conn.execute(damage)
    store.conn.commit()
    assert _read(store.conn) == truth
    # kept again, whole: every block loads
    stride = len(MessageStream(store.conn).emails)
    for table, load in (
        ("message_blocks", blocks._load_messages),
        ("recipient_blocks", lambda row: blocks._load_recipients(row, stride)),
    ):
        rows = store.conn.execute(f"SELECT {blocks.KEPT[table]}, format FROM {table}").fetchall()
        assert len(rows) == len(ALL)
        assert all(r[-1] == blocks.FORMAT and load(tuple(r[:-1])) is not None for r in rows)
    assert _read(store.conn) == truth


def test_new_addresses_repack_the_kept_recipients(tmp_path: Path) -> None:
    """Recipients are packed with the number of addresses: kept ones are packed again when
    addresses were added since (to messages of another block)."""
    store = _store(tmp_path)
    _read(store.conn)
    late = [
        MessageMeta(
            account="a",
            provider_id="late",
            date=DAY0 + timedelta(days=70),
            sender=Address("new.person@example.com"),
            to=(Address("me@example.com"), Address("another@example.com")),
        )
    ]
    store.apply_batch("a", "maildir", Batch(messages=late))
    assert _kept(store.conn, "recipient_blocks") == [0, 1]  # block 2 changed, the others kept
    assert _read(store.conn) == _truth(tmp_path / "kw.db")


class _FullDisk:
    """A connection whose writes fail as on a full disk."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def execute(self, sql: str, *args: Any) -> Any:
        if sql.lstrip().startswith("INSERT"):
            raise sqlite3.OperationalError("database or disk is full")
        return self._conn.execute(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


def test_a_full_disk_keeps_nothing_and_the_read_is_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = _store(tmp_path)
    truth = _truth(tmp_path / "kw.db")
    real = sqlite3.connect
    monkeypatch.setattr(blocks.sqlite3, "connect", lambda *a, **k: _FullDisk(real(*a, **k)))
    assert _read(store.conn) == truth
    assert _kept(store.conn) == []


def test_a_read_stopped_early_keeps_what_it_read_and_leaves_nothing_open(tmp_path: Path) -> None:
    store = _store(tmp_path)
    chunks = MessageStream(store.conn).chunks()
    next(chunks)
    chunks.close()
    assert _kept(store.conn) == [0]
    # no connection holds a transaction: another one can write at once
    other = sqlite3.connect(tmp_path / "kw.db", timeout=0)
    other.execute("UPDATE messages SET subject = 'x' WHERE id = 1")
    other.commit()
    other.close()
    assert _read(store.conn) == _truth(tmp_path / "kw.db")


def test_a_store_in_memory_reads_the_same_and_keeps_nothing() -> None:
    store = close_after_test(Store.memory())
    store.apply_batch("a", "maildir", Batch(messages=_metas(1, 5)))
    first = _read(store.conn)
    assert len(first["columns"][0]) == 5
    assert _read(store.conn) == first
    assert _kept(store.conn) == []


@pytest.mark.parametrize(
    "column",
    [
        np.array([0, 1, -1], dtype=np.int64),
        np.array([0, 200, -129], dtype=np.int64),
        np.array([40_000, -40_000], dtype=np.int64),
        np.array([2**40, -(2**62), 2**63 - 1], dtype=np.int64),
        np.zeros(0, dtype=np.int64),
    ],
)
def test_columns_come_back_as_they_were_in_the_narrowest_width(column: Any) -> None:
    widths, data = blocks.encode([column, column[::-1].copy()])
    got = blocks.decode(widths, data, len(column))
    assert got is not None and [g.tolist() for g in got] == [column.tolist(), column[::-1].tolist()]
    assert all(g.dtype == np.int64 for g in got)
    assert len(data) == sum(int(w) for w in widths) * len(column)


@pytest.mark.parametrize("fails", ["the bulk read", "a kept block's read"])
def test_a_failing_read_is_the_readers_error_and_leaves_nothing_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fails: str
) -> None:
    """The error reaches the caller; the keeping connection is closed (an unclosed one fails
    the test at teardown) and holds no lock: another connection writes at once."""
    from keepwarm.daemon.store import history

    store = _store(tmp_path)
    if fails == "the bulk read":

        def broken(*args: object, **kwargs: object) -> object:
            raise sqlite3.DatabaseError("database disk image is malformed")

        monkeypatch.setattr(history, "answers", broken)
    else:
        _read(store.conn)  # every block kept; then the first kept block is damaged
        store.conn.execute("UPDATE message_blocks SET data = x'00' WHERE block = 0")
        store.conn.commit()
        monkeypatch.setattr(
            blocks.Query, "rows", lambda *a: (_ for _ in ()).throw(sqlite3.DatabaseError("io"))
        )
    with pytest.raises(sqlite3.DatabaseError):
        _read(store.conn)
    other = sqlite3.connect(tmp_path / "kw.db", timeout=0)
    other.execute("UPDATE messages SET subject = 'x' WHERE id = 1")
    other.commit()
    other.close()


def test_a_block_of_another_number_of_columns_is_read_again(tmp_path: Path) -> None:
    """A block kept before the bulk read took another column (and FORMAT was not bumped) is
    read again rather than given to the engine with a column missing."""
    store = _store(tmp_path)
    truth = _truth(tmp_path / "kw.db")
    _read(store.conn)
    n, widths, data = store.conn.execute(
        "SELECT n, widths, data FROM message_blocks WHERE block = 0"
    ).fetchone()
    store.conn.execute(  # the last column dropped
        "UPDATE message_blocks SET widths = ?, data = ? WHERE block = 0",
        (widths[:-1], data[: len(data) - int(widths[-1]) * n]),
    )
    store.conn.commit()
    assert _read(store.conn) == truth
