"""A batch is stored with a few lookups for all its messages (daemon/store/known.py): every
dedupe decision, source and history row is exactly what storing its messages one at a time
gives, where each lookup sees the database."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from leakcheck import close_after_test
from test_store import T0, msg

from keepwarm.connectors.base import Address, Batch, Deletion, MessageMeta
from keepwarm.connectors.local.maildir import MaildirConnector
from keepwarm.daemon.store import ApplyResult, Store
from keepwarm.daemon.store.known import CHUNK

CORPORA = ("enron-maildir-sample", "enron-pst-eml-messy", "spamassassin-ham")


# Columns that hold the time of the run, not anything of the data: two runs a second apart differ.
WALL_CLOCK = frozenset({"gone_at"})


def dump(store: Store) -> list[tuple[object, ...]]:
    """Every row of every table but the migrations log, in a fixed order (wall-clock columns
    blanked)."""
    conn = store.conn
    tables = [
        r[0]
        for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '\\_%' "
            "ESCAPE '\\' ORDER BY name"
        )
    ]
    out: list[tuple[object, ...]] = []
    for t in tables:
        names = [d[0] for d in conn.execute(f"SELECT * FROM {t} LIMIT 0").description]
        cols = ", ".join("NULL" if c in WALL_CLOCK else c for c in names)
        order = ", ".join(str(i + 1) for i in range(len(names)))
        out += [(t, *row) for row in conn.execute(f"SELECT {cols} FROM {t} ORDER BY {order}")]
    return out


def apply_all(
    batches: list[Batch], size: int | None
) -> tuple[list[tuple[object, ...]], ApplyResult]:
    """Apply ``batches`` as they are (``size`` None) or with their messages ``size`` a batch."""
    store = close_after_test(Store.memory())
    total = ApplyResult()
    for b in batches:
        parts = [b]
        if size is not None and b.messages:
            parts = [
                replace(b, messages=b.messages[i : i + size], deletions=[])
                for i in range(0, len(b.messages), size)
            ]
            parts[1:] = [replace(p, reset=False) for p in parts[1:]]  # the first part resets
            parts[-1] = replace(parts[-1], deletions=b.deletions)
        for part in parts:
            r = store.apply_batch("a", "maildir", part)
            for name in ("added", "merged", "unchanged", "deleted"):
                setattr(total, name, getattr(total, name) + getattr(r, name))
    return dump(store), total


def assert_same_as_one_at_a_time(batches: list[Batch]) -> None:
    together = apply_all(batches, None)
    assert together == apply_all(batches, 1)


def test_real_corpora_stored_in_batches_as_one_message_at_a_time(shared_data: Path) -> None:
    records: list[MessageMeta] = []
    for corpus in CORPORA:
        for b in MaildirConnector("a", shared_data / corpus).sync(None):
            records += b.messages
    assert len(records) > 5000
    # the same mail again through a second account, newest first, and a third with every
    # Date moved by nine hours (shifted copies: the earlier date is kept)
    again = [replace(m, account="b") for m in reversed(records)]
    shifted = [replace(m, account="c", date=m.date + timedelta(hours=9)) for m in records[::3]]
    everything = records + again + shifted
    batches = [Batch(messages=everything[i : i + 1000]) for i in range(0, len(everything), 1000)]
    (rows, result) = apply_all(batches, None)
    assert result.merged > len(records) and result.added < len(records)
    assert (rows, result) == apply_all(batches, 1)


def other(pid: str, **kw: object) -> MessageMeta:
    return msg(pid, mid=f"{pid}@x", subject=f"Subject {pid}", **kw)


def test_a_provider_id_twice_in_one_batch_is_one_source_in_its_last_folder() -> None:
    assert_same_as_one_at_a_time(
        [
            Batch(messages=[other("1", folder="INBOX"), other("2")]),
            Batch(
                messages=[
                    other("3", folder="INBOX"),
                    other("3", folder="Archive", labels=("x",)),
                    other("1", folder="Archive"),
                    other("1", folder="Old"),
                    other("3", folder="Done"),
                ]
            ),
        ]
    )


def test_copies_within_one_batch_merge_as_they_would_one_at_a_time() -> None:
    late = T0 + timedelta(hours=9)
    assert_same_as_one_at_a_time(
        [
            Batch(
                messages=[
                    msg("1", markers=("sent",)),
                    msg("2", mid="other@x"),  # a content-key copy
                    msg("3", mid="m1@x", date=T0 + timedelta(days=1), markers=("draft",)),
                    msg("4", mid="late@x", date=late, bcc=(Address("b@example.com"),)),
                    msg("5", mid="early@x", date=T0 - timedelta(hours=5)),  # earlier: kept
                    msg("6", mid="m1@x", date=T0 - timedelta(days=3)),  # too far: its own
                    msg("7", mid="m1@x", sender=Address("eve@example.com")),  # another sender
                    msg("8", mid=None, subject="Re: Hello", markers=("sent", "x")),
                ]
            ),
            Batch(messages=[msg("9", mid="m1@x", date=T0 - timedelta(hours=5))]),
        ]
    )


def test_mail_seen_again_in_one_batch_leaves_the_history() -> None:
    first = [other(str(i)) for i in range(6)]
    assert_same_as_one_at_a_time(
        [
            Batch(messages=first),
            Batch(deletions=[Deletion("a", str(i)) for i in range(4)]),
            Batch(messages=[other("1"), replace(other("2"), provider_id="2b"), other("9")]),
            Batch(messages=first, reset=True),
        ]
    )


@pytest.mark.parametrize("n", [CHUNK - 1, CHUNK, 2 * CHUNK + 3])
def test_batches_bigger_than_one_lookup_query(n: int) -> None:
    many = [other(str(i), sender=Address(f"p{i % 50}@example.com")) for i in range(n)]
    assert_same_as_one_at_a_time([Batch(messages=many), Batch(messages=many[::-1])])


def message_of(store: Store, pid: str) -> int:
    row = store.conn.execute(
        "SELECT message FROM message_sources WHERE provider_id = ?", (pid,)
    ).fetchone()
    return int(row[0])


@pytest.mark.parametrize("together", [True, False])
def test_of_two_stored_candidates_the_first_stored_is_the_one(together: bool) -> None:
    """A record that matches two stored messages by Message-ID, or as a shifted copy of
    either, joins the one stored first (what the per-message queries returned first)."""
    store = close_after_test(Store.memory())
    stored = [
        msg("a", mid="dup@x", date=T0 - timedelta(hours=36), subject="One"),
        msg("b", mid="dup@x", date=T0 + timedelta(hours=36), subject="Two"),
        msg("c", mid="c@x", date=T0, subject="Copy"),
        msg("d", mid="d@x", date=T0 + timedelta(hours=20), subject="Copy"),
    ]
    new = [
        msg("e", mid="dup@x", date=T0, subject="Three"),
        msg("f", mid="f@x", date=T0 + timedelta(hours=10), subject="Copy"),
    ]
    for b in [stored + new] if together else [stored, new]:
        store.apply_batch("a", "maildir", Batch(messages=b))
    assert store.counts()["messages"] == 4
    assert message_of(store, "e") == message_of(store, "a") != message_of(store, "b")
    assert message_of(store, "f") == message_of(store, "c") != message_of(store, "d")
