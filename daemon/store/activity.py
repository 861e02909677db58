"""Identity's reads: the stored addresses, and each address's meetings aggregated in one GROUP BY
query (:func:`keepwarm.daemon.identity.load_activity` gives the rows their meaning). Its mail is
counted from the engine's read of the messages (:mod:`keepwarm.daemon.mail_counts`).

The meetings query takes the named parameters ``as_of`` (epoch seconds) and ``max_a`` (attendees
of a small meeting).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from typing import Any

Params = Mapping[str, Any]
Row = tuple[Any, ...]


def _rows(conn: sqlite3.Connection, sql: str, columns: int, params: Params = {}) -> list[Row]:  # noqa: B006
    """The rows of ``sql`` (its columns named c0, c1...), read as one JSON text: SQLite builds
    the whole answer in one step, faster than handing Python a tuple per row."""
    names = ", ".join(f"c{i}" for i in range(columns))
    text = conn.execute(
        f"SELECT json_group_array(json_array({names})) FROM ({sql})", params
    ).fetchone()[0]
    return [tuple(row) for row in json.loads(text)]


def addresses(conn: sqlite3.Connection) -> list[tuple[int, str, str | None]]:
    """Every stored address: (id, email, display name)."""
    sql = "SELECT id AS c0, email AS c1, name AS c2 FROM addresses"
    return [(int(i), str(e), n) for i, e, n in _rows(conn, sql, 3)]


# Meetings: not cancelled, not declined or left unanswered by me, not all-day, ordinary events, at
# most max_attendees; their attendees (not declined, not rooms) and an outside organiser.
_SQL_MEET = """
    SELECT address AS c0, count(*) AS c1, sum(accepted) AS c2, min(start) AS c3, max(start) AS c4
    FROM (
        SELECT ea.address AS address, e.start AS start,
               (ea.response = 'accepted' OR ea.organizer = 1) AS accepted
        FROM events e JOIN event_attendees ea ON ea.event = e.id
        WHERE +e.start <= :as_of AND e.status != 'cancelled'
          AND e.my_response NOT IN ('declined', 'needsAction')
          AND e.all_day = 0 AND e.event_type = 'default' AND e.n_attendees <= :max_a
          AND ea.response != 'declined' AND ea.resource = 0
        UNION ALL  -- an organiser from outside who is not on the attendee list takes part too
        SELECT e.organizer, e.start, 1
        FROM events e
        WHERE +e.start <= :as_of AND e.status != 'cancelled'
          AND e.my_response NOT IN ('declined', 'needsAction')
          AND e.all_day = 0 AND e.event_type = 'default' AND e.n_attendees <= :max_a
          AND e.organizer IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM event_attendees x
                          WHERE x.event = e.id AND x.address = e.organizer)
    )
    GROUP BY address
"""


def meetings(conn: sqlite3.Connection, params: Params) -> list[Row]:
    """Per attendee or outside organiser of small meetings: (address, meetings, accepted, first,
    last)."""
    return _rows(conn, _SQL_MEET, 5, params)
