"""The bulk reads' queries run two at a time on connections of their own (daemon/store/history.py
``answers``): the same answers, in order, as one after the other; nothing left open or running
when a query fails or the reader stops early."""

from __future__ import annotations

import itertools
import sqlite3
import threading
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from leakcheck import close_after_test

from keepwarm.daemon.store import Store
from keepwarm.daemon.store.history import READERS, answers

# The parameter, unless it is 3: then json() fails on purpose ("malformed JSON").
SQL = "SELECT CASE WHEN ?1 = 3 THEN json('not json') ELSE ?1 * 10 END, ?1"


def _readers_running() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("keepwarm-read")]


def test_answers_come_in_order_from_threads_as_one_after_the_other(tmp_path: Path) -> None:
    store = close_after_test(Store.open(tmp_path / "kw.db"))
    params = [(i,) for i in (5, 1, 7, 2, 9, 4)]
    sequential = [store.conn.execute(SQL, p).fetchone() for p in params]
    got = []
    for row in answers(store.conn, SQL, params):
        got.append(row)
        if len(got) == 1:
            # the next ones are read meanwhile, in threads (at most READERS; the pool may reuse one)
            assert 1 <= len(_readers_running()) <= READERS
    assert got == sequential == [(p[0] * 10, p[0]) for p in params]
    assert _readers_running() == []


def test_in_memory_the_queries_run_here_one_after_the_other() -> None:
    store = close_after_test(Store.memory())
    rows = []
    for row in answers(store.conn, SQL, [(1,), (2,)]):
        assert _readers_running() == []
        rows.append(row)
    assert rows == [(10, 1), (20, 2)]
    assert list(answers(store.conn, SQL, [])) == []


@pytest.mark.parametrize("where", [0, 1, 4])
def test_a_failing_query_is_the_readers_error_and_leaves_nothing_open(
    tmp_path: Path, where: int
) -> None:
    """Whether the failing query is the first, the next one or later, the error reaches the
    caller and every reader connection is closed (an unclosed one fails the test) and done."""
    store = close_after_test(Store.open(tmp_path / "kw.db"))
    params = [(i,) for i in range(10, 16)]
    params[where] = (3,)
    got = []
    with pytest.raises(sqlite3.OperationalError, match="malformed JSON"):
        for row in answers(store.conn, SQL, params):
            got.append(row)
    assert got == [(p[0] * 10, p[0]) for p in params[:where]]
    assert _readers_running() == []


def test_a_reader_that_stops_early_leaves_nothing_open(tmp_path: Path) -> None:
    store = close_after_test(Store.open(tmp_path / "kw.db"))
    rows = answers(store.conn, SQL, [(i,) for i in range(10, 20)])
    assert next(rows) == (100, 10)
    rows.close()
    assert _readers_running() == []


@given(lo=st.integers(-5, 10**7), span=st.integers(1, 10**7), most=st.integers(1, 1 << 18))
def test_ranges_cover_every_id_once_and_use_both_readers(lo: int, span: int, most: int) -> None:
    from keepwarm.daemon.store.history import _MIN_RANGE, _split

    hi = lo + span - 1
    ranges = _split(lo, hi, most)
    assert ranges[0][0] == lo and ranges[-1][1] == hi
    assert all(a <= b and b - a + 1 <= most for a, b in ranges)
    assert all(b + 1 == c for (_, b), (c, _) in itertools.pairwise(ranges))
    if span >= READERS * _MIN_RANGE:
        assert len(ranges) >= READERS


def test_subjects_in_one_query_in_any_order_and_none_for_what_is_not_stored() -> None:
    from datetime import UTC, datetime, timedelta

    from keepwarm.connectors.base import Address, Batch, MessageMeta
    from keepwarm.daemon.store.history import MessageStream

    store = close_after_test(Store.memory())
    day = datetime(2026, 3, 1, tzinfo=UTC)
    metas = [
        MessageMeta(
            account="a",
            provider_id=str(i),
            date=day + timedelta(hours=i),
            sender=Address("ann@example.org"),
            to=(Address("me@example.com"),),
            message_id=f"<{i}@x>",
            subject=None if i == 2 else f"subject {i}",
        )
        for i in range(1, 5)
    ]
    store.apply_batch("a", "maildir", Batch(messages=metas))
    ids = {str(s): int(m) for m, s in store.conn.execute("SELECT id, message_id FROM messages")}
    one, two, four = ids["<1@x>"], ids["<2@x>"], ids["<4@x>"]
    stream = MessageStream(store.conn)
    assert stream.subjects([four, 10_000, one, two]) == {
        four: "subject 4",
        10_000: None,
        one: "subject 1",
        two: None,
    }
    assert stream.subjects([]) == {}


def test_inside_a_transaction_the_reads_see_what_it_wrote(tmp_path: Path) -> None:
    """Rows written but not committed are visible to their connection alone: the reads then run
    on it, not on connections of their own."""
    store = close_after_test(Store.open(tmp_path / "kw.db"))
    conn = store.conn
    conn.execute("CREATE TABLE t (x INTEGER)")
    conn.commit()
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(5)])
    sql = "SELECT count(*) FROM t WHERE x >= ?"
    assert list(answers(conn, sql, [(0,), (3,)])) == [(5,), (2,)]
    conn.rollback()
    assert list(answers(conn, sql, [(0,), (3,)])) == [(0,), (0,)]


def test_the_bounds_of_the_ids_are_looked_up_not_scanned() -> None:
    """The bulk reads start with the smallest and largest message id: each must be one look-up
    at an end of a key (a query with both min() and max() scans every row instead)."""
    from keepwarm.daemon.store.history import _MESSAGE_BOUNDS, _RECIPIENT_BOUNDS

    store = close_after_test(Store.memory())
    for sql in (_MESSAGE_BOUNDS, _RECIPIENT_BOUNDS):
        plan = " / ".join(str(r[3]) for r in store.conn.execute("EXPLAIN QUERY PLAN " + sql))
        assert "SCAN message" not in plan, plan
        assert plan.count("SEARCH") == 2, plan
