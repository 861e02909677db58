"""Named reads for the command line's screens. Each takes a connection, so the same query serves
the open store and :func:`readonly` (doctor and shell completion, which never create or migrate
the database)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

NEWEST = """SELECT max(x) FROM (SELECT max(date) AS x FROM messages WHERE date <= ?
                                UNION ALL SELECT max(start) FROM events WHERE start <= ?)"""


def newest(conn: sqlite3.Connection, until: int) -> int | None:
    """The newest message date or event start (epoch seconds) up to ``until``."""
    row = conn.execute(NEWEST, (until, until)).fetchone()
    return int(row[0]) if row and row[0] is not None else None


def sent_days(conn: sqlite3.Connection) -> set[str]:
    """Local dates (ISO) whose digest the ledger records as sent."""
    return {str(r[0]) for r in conn.execute("SELECT local_date FROM digests WHERE state = 'sent'")}


def accounts(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    """(name, kind) of every account in the database (imports included), by name."""
    return [
        (str(n), str(k)) for n, k in conn.execute("SELECT name, kind FROM accounts ORDER BY name")
    ]


def account_problems(conn: sqlite3.Connection) -> dict[str, tuple[str, str | None, str | None]]:
    """Each account's state, last error and fix, by name."""
    rows = conn.execute("SELECT name, state, last_error, fix FROM accounts")
    return {str(r[0]): (str(r[1]), r[2], r[3]) for r in rows}


def addresses_from(conn: sqlite3.Connection, prefix: str, limit: int) -> list[tuple[str, str]]:
    """Addresses starting with ``prefix`` and their names (a range over the address index)."""
    cur = conn.execute(
        "SELECT email, name FROM addresses WHERE email >= ? AND email < ? ORDER BY email",
        (prefix, prefix + "\U0010ffff"),
    )
    return [(str(e), str(n or "")) for e, n in cur.fetchmany(limit)]


def readonly(path: Path, read: Callable[[sqlite3.Connection], T]) -> T | None:
    """``read`` on the database opened read-only; None when there is no database yet or it
    cannot be read (doctor's database check says why)."""
    if not path.is_file():
        return None
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            return read(conn)
        finally:
            conn.close()
    except sqlite3.Error:
        return None


def quick_check(db: Path) -> str:
    """SQLite's quick_check through a read-only connection (immutable if the directory is
    read-only, where the WAL index cannot be created)."""
    for flags in ("mode=ro", "mode=ro&immutable=1"):
        try:
            con = sqlite3.connect(f"file:{db}?{flags}", uri=True, timeout=10)
        except sqlite3.OperationalError:
            continue
        try:
            rows = con.execute("PRAGMA quick_check(5)").fetchall()
        except sqlite3.OperationalError as exc:
            if "unable to open" in str(exc):
                continue
            raise
        finally:
            con.close()
        lines = [x for r in rows for x in str(r[0]).splitlines() if x and not x.startswith("*")]
        text = "; ".join(lines[:2]) or "no answer"
        return text if len(lines) <= 2 else f"{text}; ..."
    raise sqlite3.DatabaseError("unable to open the database file")


# -- one person's history (keepwarm person) ----------------------------------------------------
PERSON_MESSAGES = """
    SELECT DISTINCT m.id, m.date, m.subject, m.n_recipients, m.markers, m.list_id,
           m.sender IN (SELECT value FROM json_each(:ids)) AS inbound
    FROM message_addresses ma JOIN messages m ON m.id = ma.message
    WHERE ma.address IN (SELECT value FROM json_each(:ids)) AND m.date <= :as_of
      AND (ma.role = 0 OR (ma.role IN (1, 2, 3)
           AND m.sender IN (SELECT value FROM json_each(:self))))
    ORDER BY m.date DESC, m.id DESC LIMIT :limit
"""

PERSON_MEETINGS = """
    SELECT e.start, e.title, e.n_attendees, ea.response
    FROM event_attendees ea JOIN events e ON e.id = ea.event
    WHERE ea.address IN (SELECT value FROM json_each(:ids)) AND e.start <= :as_of
      AND e.status != 'cancelled' AND e.all_day = 0 AND e.event_type = 'default'
    ORDER BY e.start DESC LIMIT :limit
"""


def address_ids(conn: sqlite3.Connection, emails: Iterable[str]) -> list[int]:
    """The ids of these addresses (those the store has seen)."""
    emails = list(emails)
    rows = conn.execute(
        "SELECT id FROM addresses WHERE email IN (SELECT value FROM json_each(?))",
        (json.dumps(emails),),
    ).fetchall()
    return sorted(int(r[0]) for r in rows)


def person_messages(conn: sqlite3.Connection, params: Mapping[str, Any]) -> list[Any]:
    """(id, date, subject, recipients, markers, list id, inbound) of the newest messages with
    the person (``ids``), mine to them and theirs, up to ``as_of`` (``limit`` rows)."""
    return conn.execute(PERSON_MESSAGES, params).fetchall()


def person_meetings(conn: sqlite3.Connection, params: Mapping[str, Any]) -> list[Any]:
    """(start, title, attendees, their response) of the newest meetings with the person."""
    return conn.execute(PERSON_MEETINGS, params).fetchall()
