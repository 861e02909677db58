"""Identity's reads: each address's mail and meetings aggregated in a handful of GROUP BY queries
(:func:`keepwarm.daemon.identity.load_activity` gives the rows their meaning), so resolving a store
of a million messages costs a few table scans, not a Python loop per message.

Every query takes the same named parameters: ``bulk``, ``auto`` and ``digest`` (JSON lists of the
distinct stored ``markers`` strings of each class, see :func:`distinct_markers`), ``self`` (JSON
list of my address ids), ``as_of`` (epoch seconds), ``max_r`` (recipients of a direct message) and
``max_a`` (attendees of a small meeting).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from typing import Any

Params = Mapping[str, Any]
Row = tuple[Any, ...]


def _rows(conn: sqlite3.Connection, sql: str, columns: int, params: Params = {}) -> list[Row]:  # noqa: B006
    """The rows of ``sql`` (its columns named c0, c1...), read as one JSON text.

    SQLite builds the whole answer in one step, in which Python's GIL is released: identity's
    queries then run on their own connection in a thread while the engine reads the messages in
    another (:func:`keepwarm.daemon.network.identity_and_messages`). Read row by row, each row
    would wait for the GIL, and the thread would crawl while the other one works."""
    names = ", ".join(f"c{i}" for i in range(columns))
    text = conn.execute(
        f"SELECT json_group_array(json_array({names})) FROM ({sql})", params
    ).fetchone()[0]
    return [tuple(row) for row in json.loads(text)]


def distinct_markers(conn: sqlite3.Connection) -> list[str]:
    """Every distinct stored ``markers`` string."""
    sql = "SELECT DISTINCT markers AS c0 FROM messages WHERE markers IS NOT NULL"
    return [str(m) for (m,) in _rows(conn, sql, 1)]


def addresses(conn: sqlite3.Connection) -> list[tuple[int, str, str | None]]:
    """Every stored address: (id, email, display name)."""
    sql = "SELECT id AS c0, email AS c1, name AS c2 FROM addresses"
    return [(int(i), str(e), n) for i, e, n in _rows(conn, sql, 3)]


# Flags of one message ``m`` (the marker sets are the distinct stored strings, see marker_classes).
_BULK = "(m.list_id IS NOT NULL OR coalesce(m.markers, '') IN (SELECT value FROM json_each(:bulk)))"
_AUTO = "(coalesce(m.markers, '') IN (SELECT value FROM json_each(:auto)))"
_DIRECT = f"(NOT {_BULK} AND NOT {_AUTO} AND m.n_recipients <= :max_r)"
# "+m.date" keeps SQLite from walking the date index: a table scan is much faster here.
_SEEN = (
    "+m.date <= :as_of"
    " AND (m.markers IS NULL OR m.markers NOT IN (SELECT value FROM json_each(:digest)))"
)
_NOT_MINE = "(m.sender IS NULL OR m.sender NOT IN (SELECT value FROM json_each(:self)))"

_SQL_SENT = f"""
    SELECT m.sender AS c0, count(*) AS c1, sum({_BULK}) AS c2, sum({_AUTO}) AS c3,
           sum({_DIRECT}) AS c4, min(m.date) AS c5, max(m.date) AS c6
    FROM messages m
    WHERE {_SEEN} AND m.sender IS NOT NULL AND {_NOT_MINE}
    GROUP BY m.sender
"""

_SQL_OUT = f"""
    SELECT ma.address AS c0, count(*) AS c1, sum({_DIRECT}) AS c2, min(m.date) AS c3,
           max(m.date) AS c4, max(CASE WHEN {_DIRECT} THEN m.date END) AS c5
    FROM message_addresses f
    JOIN messages m ON m.id = f.message
    JOIN message_addresses ma ON ma.message = m.id AND ma.role IN (1, 2, 3)
    WHERE f.role = 0 AND f.address IN (SELECT value FROM json_each(:self)) AND {_SEEN}
    GROUP BY ma.address
"""

# CROSS JOIN fixes the order: scan messages, then look up their recipients by primary key.
_SQL_RECV_BULK = f"""
    SELECT ma.address AS c0, count(*) AS c1
    FROM messages m CROSS JOIN message_addresses ma ON ma.message = m.id AND ma.role IN (1, 2)
    WHERE {_SEEN} AND {_BULK} AND {_NOT_MINE}
    GROUP BY ma.address
"""

_SQL_RECV_TOTAL = f"""
    SELECT ma.address AS c0, count(*) AS c1
    FROM message_addresses ma JOIN messages m ON m.id = ma.message
    WHERE ma.address IN (SELECT value FROM json_each(:ids)) AND ma.role IN (1, 2)
      AND {_SEEN} AND {_NOT_MINE}
    GROUP BY ma.address
"""

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

_SQL_FILED_AS_SENT = f"""
    SELECT DISTINCT m.sender AS c0 FROM messages m
    WHERE ' ' || m.markers || ' ' LIKE '% sent-folder %' AND {_SEEN} AND m.sender IS NOT NULL
      AND {_NOT_MINE}
"""


def sent(conn: sqlite3.Connection, params: Params) -> list[Row]:
    """Per sender other than me: (address, messages, bulk, automatic, direct, first, last)."""
    return _rows(conn, _SQL_SENT, 7, params)


def received_from_me(conn: sqlite3.Connection, params: Params) -> list[Row]:
    """Per recipient of my mail: (address, messages, direct, first, last, last direct)."""
    return _rows(conn, _SQL_OUT, 6, params)


def received_bulk(conn: sqlite3.Connection, params: Params) -> list[Row]:
    """Per To/Cc recipient of bulk mail not from me: (address, messages)."""
    return _rows(conn, _SQL_RECV_BULK, 2, params)


def received_total(conn: sqlite3.Connection, params: Params) -> list[Row]:
    """Per address of ``params["ids"]`` (a JSON list), To/Cc of mail not from me: (address,
    messages)."""
    return _rows(conn, _SQL_RECV_TOTAL, 2, params)


def meetings(conn: sqlite3.Connection, params: Params) -> list[Row]:
    """Per attendee or outside organiser of small meetings: (address, meetings, accepted, first,
    last)."""
    return _rows(conn, _SQL_MEET, 5, params)


def filed_as_sent(conn: sqlite3.Connection, params: Params) -> list[Row]:
    """Senders other than me of mail filed in a Sent folder: (address,)."""
    return _rows(conn, _SQL_FILED_AS_SENT, 1, params)
