"""Contacts in the store: one row per contact and source, its addresses in ``contact_emails``.

A contact is replaced whole when its source sends it again. When its organisation changes, the
one before and the moment the change was seen are kept (``previous_organisation``,
``organisation_since``): that is a job change the digest can mention. A contact deleted at its
source, or whose source is read again whole, is removed: an address book has no history.
"""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any

from keepwarm.connectors.base import ContactMeta

_FIELDS = "name, birthday, anniversary, organisation, title, groups"


def _norm(org: str | None) -> str:
    return " ".join((org or "").casefold().split())


def upsert(conn: sqlite3.Connection, c: ContactMeta, now: float | None = None) -> str:
    """Store one contact; returns "added", "changed" or "unchanged"."""
    groups = json.dumps(sorted(set(c.groups))) if c.groups else None
    values = (c.name, c.birthday, c.anniversary, c.organisation, c.title, groups)
    row = conn.execute(
        f"SELECT id, {_FIELDS}, previous_organisation, previous_title, organisation_since "
        "FROM contacts WHERE account = ? AND provider_id = ?",
        (c.account, c.provider_id),
    ).fetchone()
    ts = int(now if now is not None else time.time())
    emails = list(dict.fromkeys(c.emails))
    if row is None:
        cur = conn.execute(
            f"""INSERT INTO contacts (account, provider_id, {_FIELDS}, updated_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            (c.account, c.provider_id, *values, ts),
        )
        assert cur.lastrowid is not None
        _write_emails(conn, int(cur.lastrowid), emails)
        return "added"
    cid = int(row[0])
    have = [
        r[0]
        for r in conn.execute(
            "SELECT email FROM contact_emails WHERE contact = ? ORDER BY position", (cid,)
        )
    ]
    if tuple(row[1:7]) == values and have == emails:
        return "unchanged"
    prev_org, prev_title, since = row[7], row[8], row[9]
    old_org, old_title = row[4], row[5]
    if old_org and c.organisation and _norm(old_org) != _norm(c.organisation):
        prev_org, prev_title, since = old_org, old_title, ts  # a new organisation: a job change
    conn.execute(
        """UPDATE contacts SET name = ?, birthday = ?, anniversary = ?, organisation = ?,
               title = ?, groups = ?, previous_organisation = ?, previous_title = ?,
               organisation_since = ?, updated_at = ? WHERE id = ?""",
        (*values, prev_org, prev_title, since, ts, cid),
    )
    if have != emails:
        conn.execute("DELETE FROM contact_emails WHERE contact = ?", (cid,))
        _write_emails(conn, cid, emails)
    return "changed"


def _write_emails(conn: sqlite3.Connection, cid: int, emails: list[str]) -> None:
    conn.executemany(
        "INSERT OR IGNORE INTO contact_emails (contact, email, position) VALUES (?, ?, ?)",
        [(cid, e, i) for i, e in enumerate(emails)],
    )


def delete(conn: sqlite3.Connection, account: str, provider_id: str) -> int:
    cur = conn.execute(
        "DELETE FROM contacts WHERE account = ? AND provider_id = ?", (account, provider_id)
    )
    return cur.rowcount


def remove_account(conn: sqlite3.Connection, account: str) -> int:
    return conn.execute("DELETE FROM contacts WHERE account = ?", (account,)).rowcount


def all_rows(conn: sqlite3.Connection) -> list[Any]:
    """Every contact: (id, account, name, birthday, anniversary, organisation, title, groups,
    previous organisation, previous title, organisation since), by id."""
    return conn.execute(
        """SELECT id, account, name, birthday, anniversary, organisation, title, groups,
                  previous_organisation, previous_title, organisation_since
           FROM contacts ORDER BY id"""
    ).fetchall()


def all_emails(conn: sqlite3.Connection) -> list[tuple[int, str]]:
    """(contact id, address) of every contact's addresses, in each contact's order."""
    rows = conn.execute("SELECT contact, email FROM contact_emails ORDER BY contact, position")
    return [(int(cid), str(email)) for cid, email in rows]
