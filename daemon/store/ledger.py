"""The digest's tables: the send-once ledger (``digests``, one row per local date) and what each
digest showed (``suggestions_shown``). Every statement on them is here."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any, Literal

from keepwarm.daemon.store import Store

if TYPE_CHECKING:
    from keepwarm.digests.suggest import Suggestion


# A day's digest in the send-once ledger: recorded before any attempt, at the point of no return,
# accepted by the server, or failed (see daemon/digest_job.py).
DigestState = Literal["intent", "sending", "sent", "failed"]


@dataclass(frozen=True)
class LedgerRow:
    local_date: str
    message_id: str
    state: DigestState
    method: str
    attempts: int
    created_at: int
    sent_at: int | None
    last_error: str | None
    subject: str | None
    unconfirmed: int = 0
    confirmed_at: int | None = None
    resent_at: int | None = None


LEDGER_COLUMNS = """local_date, message_id, state, method, attempts, created_at, sent_at,
    last_error, subject, unconfirmed, confirmed_at, resent_at"""


def row(store: Store, local_date: date) -> LedgerRow | None:
    found = store.conn.execute(
        f"SELECT {LEDGER_COLUMNS} FROM digests WHERE local_date = ?", (local_date.isoformat(),)
    ).fetchone()
    return LedgerRow(*found) if found else None


def update(store: Store, local_date: date, **values: Any) -> None:
    cols = ", ".join(f"{k} = ?" for k in values)
    with store.atomic():
        store.conn.execute(
            f"UPDATE digests SET {cols} WHERE local_date = ?",
            (*values.values(), local_date.isoformat()),
        )


def record_intent(
    store: Store, local_date: date, message_id: str, method: str, subject: str, message: bytes
) -> None:
    """The day's row, before any delivery attempt begins (a new Message-ID starts it over)."""
    with store.atomic():
        store.conn.execute(
            """INSERT INTO digests (local_date, message_id, state, method, attempts, created_at,
                   subject, message, unconfirmed, confirmed_at, resent_at)
               VALUES (?, ?, 'intent', ?, 0, ?, ?, ?, 0, NULL, NULL)
               ON CONFLICT(local_date) DO UPDATE SET message_id = excluded.message_id,
                   state = 'intent', method = excluded.method, subject = excluded.subject,
                   message = excluded.message, unconfirmed = 0, confirmed_at = NULL,
                   resent_at = NULL""",
            (local_date.isoformat(), message_id, method, int(time.time()), subject, message),
        )


def state_of(store: Store, local_date: date) -> str | None:
    found = store.conn.execute(
        "SELECT state FROM digests WHERE local_date = ?", (local_date.isoformat(),)
    ).fetchone()
    return str(found[0]) if found else None


def latest(store: Store) -> tuple[str, str, str | None] | None:
    """(local date, state, last error) of the newest digest."""
    found = store.conn.execute(
        "SELECT local_date, state, last_error FROM digests ORDER BY local_date DESC LIMIT 1"
    ).fetchone()
    return (str(found[0]), str(found[1]), found[2]) if found else None


def newest_problem(
    store: Store, before: date, since: date
) -> tuple[str, str, str | None, int | None] | None:
    """The newest failed or unconfirmed digest in ``[since, before)``."""
    found = store.conn.execute(
        """SELECT local_date, state, last_error, resent_at FROM digests
           WHERE local_date < ? AND local_date >= ? AND (state = 'failed' OR unconfirmed = 1)
           ORDER BY local_date DESC LIMIT 1""",
        (before.isoformat(), since.isoformat()),
    ).fetchone()
    return (str(found[0]), str(found[1]), found[2], found[3]) if found else None


def shown_since(store: Store, since: date) -> dict[str, date]:
    """Each person shown since ``since``, with the last day they were."""
    rows = store.conn.execute(
        "SELECT person, MAX(local_date) FROM suggestions_shown WHERE local_date >= ? GROUP BY person",
        (since.isoformat(),),
    ).fetchall()
    return {p: date.fromisoformat(d) for p, d in rows}


def last_shown_kind(store: Store, people: Sequence[str]) -> str | None:
    """The kind of the newest suggestion shown about any of ``people``."""
    marks = ",".join("?" * len(people))
    row = store.conn.execute(
        f"""SELECT kind FROM suggestions_shown WHERE person IN ({marks})
            ORDER BY local_date DESC LIMIT 1""",
        tuple(people),
    ).fetchone()
    return str(row[0]) if row else None


def record_shown(store: Store, local_date: date, suggestions: Iterable[Suggestion]) -> None:
    with store.atomic():
        for s in suggestions:
            for person in filter(None, (s.person_key, s.other_key)):
                store.conn.execute(
                    "INSERT OR IGNORE INTO suggestions_shown (local_date, person, kind) VALUES (?, ?, ?)",
                    (local_date.isoformat(), person, s.kind),
                )


def unconfirmed_since(store: Store, since: date) -> list[LedgerRow]:
    """Digests handed over without a confirmation, since ``since``, oldest first."""
    rows = store.conn.execute(
        f"""SELECT {LEDGER_COLUMNS} FROM digests
            WHERE unconfirmed = 1 AND state = 'sent' AND local_date >= ? ORDER BY local_date""",
        (since.isoformat(),),
    ).fetchall()
    return [LedgerRow(*r) for r in rows]


def message_of(store: Store, local_date: date) -> bytes | None:
    """The bytes of the day's digest, kept while it is unconfirmed."""
    row = store.conn.execute(
        "SELECT message FROM digests WHERE local_date = ?", (local_date.isoformat(),)
    ).fetchone()
    return bytes(row[0]) if row and row[0] else None


def message_stored(store: Store, message_id: str) -> bool:
    """A synced account has stored the message with this (bare) Message-ID."""
    row = store.conn.execute(
        """SELECT 1 FROM messages m JOIN message_sources s ON s.message = m.id
           WHERE m.message_id = ? LIMIT 1""",
        (message_id,),
    ).fetchone()
    return row is not None


def accounts_with_marker(store: Store, marker: str) -> list[str]:
    """Accounts that have stored a message with ``marker`` (a keepwarm digest read back)."""
    rows = store.conn.execute(
        """SELECT DISTINCT s.account FROM messages m JOIN message_sources s ON s.message = m.id
           WHERE m.markers LIKE ?""",
        (f"%{marker}%",),
    ).fetchall()
    return sorted(str(r[0]) for r in rows)
