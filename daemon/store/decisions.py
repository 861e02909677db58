"""The ``decisions`` table: what the user decided (done, dismiss, snooze, merge, ignore ...) as
rows. ``daemon/decisions.py`` gives them meaning."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

from keepwarm.daemon.store import Store

COLUMNS = (
    "id, verb, person, other, kind, until, note, at, source, state, created_at, undone_at, reason"
)
Row = Sequence[Any]


def insert(store: Store, values: Sequence[Any]) -> int | None:
    """Store one decision (verb, person, other, kind, until, note, at, source, mail_key, state,
    reason); its id, or None when an action mail with this mail_key was seen before."""
    with store.atomic():
        cur = store.conn.execute(
            """INSERT OR IGNORE INTO decisions
                   (verb, person, other, kind, until, note, at, source, mail_key, state, reason,
                    created_at)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            (*values, int(time.time())),
        )
    return int(cur.lastrowid or 0) if cur.rowcount else None


def get(store: Store, decision_id: int) -> Row | None:
    row: Row | None = store.conn.execute(
        f"SELECT {COLUMNS} FROM decisions WHERE id = ?", (decision_id,)
    ).fetchone()
    return row


def load(store: Store, verbs: Sequence[str], states: Sequence[str]) -> list[Row]:
    """Decisions with these verbs and states, oldest first."""
    return store.conn.execute(
        f"""SELECT {COLUMNS} FROM decisions
            WHERE verb IN ({",".join("?" * len(verbs))}) AND state IN ({",".join("?" * len(states))})
            ORDER BY at, id""",
        (*verbs, *states),
    ).fetchall()


def since(store: Store, created_after: int) -> list[Row]:
    """Decisions recorded after ``created_after`` that are still in force, or were rejected."""
    return store.conn.execute(
        f"""SELECT {COLUMNS} FROM decisions
            WHERE created_at > ? AND state IN ('active', 'rejected') ORDER BY at, id""",
        (created_after,),
    ).fetchall()


def mark_undone(store: Store, decision_id: int, at: int) -> None:
    with store.atomic():
        store.conn.execute(
            "UPDATE decisions SET state = 'undone', undone_at = ? WHERE id = ?", (at, decision_id)
        )


def undo_all(store: Store, verb: str, persons: Iterable[str], at: int) -> int:
    """Undo every active ``verb`` decision about these addresses; how many there were."""
    persons = list(persons)
    with store.atomic():
        cur = store.conn.execute(
            f"""UPDATE decisions SET state = 'undone', undone_at = ?
                WHERE verb = ? AND state = 'active' AND person IN ({",".join("?" * len(persons))})""",
            (at, verb, *persons),
        )
    return int(cur.rowcount)


def last_digest_sent_before(store: Store, local_date: str) -> int | None:
    """When the last digest before ``local_date`` went out (epoch seconds)."""
    row = store.conn.execute(
        "SELECT max(sent_at) FROM digests WHERE state = 'sent' AND local_date < ?", (local_date,)
    ).fetchone()
    return int(row[0]) if row and row[0] else None
