"""Schema, only ever changed by appending a migration. The history DB is user data: never rebuilt."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from keepwarm.core.threadkeys import COLUMNS, thread_keys
from keepwarm.core.vocabulary import ROLE_BCC as ROLE_BCC
from keepwarm.core.vocabulary import ROLE_CC as ROLE_CC
from keepwarm.core.vocabulary import ROLE_FROM as ROLE_FROM
from keepwarm.core.vocabulary import ROLE_REPLY_TO as ROLE_REPLY_TO
from keepwarm.core.vocabulary import ROLE_TO as ROLE_TO

if TYPE_CHECKING:  # sqlite-utils is imported only when a migration is due (it costs 0.15 s)
    from sqlite_utils import Database
    from sqlite_utils.migrations import Migrations

MIGRATION_SET = "keepwarm"
MIGRATIONS_TABLE = "_sqlite_migrations"  # sqlite-utils' record of the applied migrations


class _Registry:
    """The migrations in order, applied by sqlite-utils' ``Migrations``. Opening a database that
    is up to date (every command, every time) only reads the record of applied migrations."""

    def __init__(self) -> None:
        self._all: list[tuple[str, Callable[[Database], None]]] = []

    def __call__(self, *, name: str) -> Callable[[Callable[[Database], None]], Any]:
        def register(fn: Callable[[Database], None]) -> Callable[[Database], None]:
            self._all.append((name, fn))
            return fn

        return register

    @property
    def names(self) -> list[str]:
        return [name for name, _fn in self._all]

    def up_to_date(self, conn: sqlite3.Connection) -> bool:
        """Is every migration recorded as applied (in a record sqlite-utils would not change)?"""
        try:
            columns = conn.execute(f"PRAGMA table_info({MIGRATIONS_TABLE})").fetchall()
            if [c[1] for c in columns if c[5]] != ["id"]:
                return False  # missing, or in an old layout sqlite-utils converts
            done = {
                str(n)
                for (n,) in conn.execute(
                    f"SELECT name FROM {MIGRATIONS_TABLE} WHERE migration_set = ?",
                    (MIGRATION_SET,),
                )
            }
        except sqlite3.OperationalError:
            return False
        return done.issuperset(self.names)

    def migrations(self) -> Migrations:
        from sqlite_utils.migrations import Migrations

        out = Migrations(MIGRATION_SET)
        for name, fn in self._all:
            out(name=name)(fn)
        return out

    def apply(self, db: Database, *, stop_before: str | Iterable[str] | None = None) -> None:
        self.migrations().apply(db, stop_before=stop_before)


migrations = _Registry()

# Address roles in message_addresses: small integers (core/vocabulary.py) keep the table compact.


@migrations(name="0001_initial")
def m0001_initial(db: Database) -> None:
    db.executescript(
        """
        CREATE TABLE accounts (
            name TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            cursor TEXT,
            state TEXT NOT NULL DEFAULT 'new',   -- new | ok | backoff | auth_required | failing
            last_attempt_at INTEGER,
            last_ok_at INTEGER,
            last_error TEXT,
            fix TEXT,
            failures INTEGER NOT NULL DEFAULT 0,
            next_attempt_at INTEGER,
            progress_done INTEGER,
            progress_total INTEGER,
            skipped TEXT                          -- JSON {reason: count} of the last run
        );
        CREATE TABLE addresses (
            id INTEGER PRIMARY KEY,
            email TEXT NOT NULL UNIQUE,
            name TEXT NOT NULL DEFAULT ''
        );
        CREATE TABLE messages (
            id INTEGER PRIMARY KEY,
            message_id TEXT,
            content_key TEXT NOT NULL UNIQUE,
            date INTEGER NOT NULL,                -- UTC epoch seconds
            sender INTEGER REFERENCES addresses(id),
            subject TEXT,
            norm_subject TEXT,
            in_reply_to TEXT,
            refs TEXT,                            -- space separated Message-IDs
            thread_hint TEXT,
            list_id TEXT,
            markers TEXT,                         -- space separated markers
            n_recipients INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX messages_message_id ON messages(message_id);
        CREATE INDEX messages_date ON messages(date);
        CREATE TABLE message_addresses (
            message INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
            role INTEGER NOT NULL,
            address INTEGER NOT NULL REFERENCES addresses(id),
            PRIMARY KEY (message, role, address)
        ) WITHOUT ROWID;
        CREATE INDEX message_addresses_address ON message_addresses(address);
        CREATE TABLE message_sources (
            account TEXT NOT NULL,
            provider_id TEXT NOT NULL,
            message INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
            folder TEXT,
            labels TEXT,
            PRIMARY KEY (account, provider_id)
        ) WITHOUT ROWID;
        CREATE INDEX message_sources_message ON message_sources(message);
        CREATE TABLE events (
            id INTEGER PRIMARY KEY,
            dedupe_key TEXT NOT NULL UNIQUE,      -- iCalUID + start, or account + provider id
            ical_uid TEXT,
            start INTEGER NOT NULL,
            "end" INTEGER NOT NULL,
            all_day INTEGER NOT NULL DEFAULT 0,
            status TEXT NOT NULL DEFAULT 'confirmed',
            event_type TEXT NOT NULL DEFAULT 'default',
            organizer INTEGER REFERENCES addresses(id),
            my_response TEXT NOT NULL DEFAULT 'unknown',
            recurring INTEGER NOT NULL DEFAULT 0,
            attendees_omitted INTEGER NOT NULL DEFAULT 0,
            n_attendees INTEGER NOT NULL DEFAULT 0,
            title TEXT
        );
        CREATE INDEX events_start ON events(start);
        CREATE TABLE event_attendees (
            event INTEGER NOT NULL REFERENCES events(id) ON DELETE CASCADE,
            address INTEGER NOT NULL REFERENCES addresses(id),
            response TEXT NOT NULL DEFAULT 'unknown',
            organizer INTEGER NOT NULL DEFAULT 0,
            optional INTEGER NOT NULL DEFAULT 0,
            resource INTEGER NOT NULL DEFAULT 0,
            is_self INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (event, address)
        ) WITHOUT ROWID;
        CREATE INDEX event_attendees_address ON event_attendees(address);
        CREATE TABLE event_sources (
            account TEXT NOT NULL,
            provider_id TEXT NOT NULL,
            event INTEGER NOT NULL REFERENCES events(id) ON DELETE CASCADE,
            PRIMARY KEY (account, provider_id)
        ) WITHOUT ROWID;
        CREATE INDEX event_sources_event ON event_sources(event);
        CREATE TABLE snoozes (
            person TEXT PRIMARY KEY,              -- a normalized address of the person
            until INTEGER NOT NULL,               -- UTC epoch seconds
            created_at INTEGER NOT NULL
        );
        CREATE TABLE digests (
            local_date TEXT PRIMARY KEY,          -- YYYY-MM-DD in the user's zone
            message_id TEXT NOT NULL,
            state TEXT NOT NULL,                  -- intent | sent | failed
            method TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            created_at INTEGER NOT NULL,
            sent_at INTEGER,
            last_error TEXT,
            subject TEXT
        );
        CREATE TABLE suggestions_shown (
            local_date TEXT NOT NULL,
            person TEXT NOT NULL,
            kind TEXT NOT NULL,
            PRIMARY KEY (local_date, person, kind)
        ) WITHOUT ROWID;
        """
    )


@migrations(name="0002_decisions")
def m0002_decisions(db: Database) -> None:
    """Every decision about a person or a suggestion (see daemon/decisions.py); snoozes move in."""
    db.executescript(
        """
        CREATE TABLE decisions (
            id INTEGER PRIMARY KEY,
            verb TEXT NOT NULL,                   -- done | snooze | dismiss | ignore | merge | note
            person TEXT NOT NULL,                 -- a normalized address (the person's, when decided)
            other TEXT,                           -- merge: the second address
            kind TEXT,                            -- done, dismiss: a suggestion kind or section
            until INTEGER,                        -- snooze: UTC epoch seconds
            note TEXT,                            -- note: its text
            at INTEGER NOT NULL,                  -- when it was decided (an action mail's date), UTC
            source TEXT NOT NULL,                 -- cli | mail
            mail_key TEXT UNIQUE,                 -- an action mail's command and tag: applied once
            state TEXT NOT NULL DEFAULT 'active', -- active | undone | rejected
            reason TEXT,                          -- rejected: why
            created_at INTEGER NOT NULL,          -- when keepwarm recorded it
            undone_at INTEGER
        );
        CREATE INDEX decisions_person ON decisions(person);
        INSERT INTO decisions (verb, person, until, at, source, created_at)
            SELECT 'snooze', person, until, created_at, 'cli', created_at FROM snoozes;
        DROP TABLE snoozes;
        """
    )


@migrations(name="0003_history_and_notices")
def m0003_history_and_notices(db: Database) -> None:
    """Where a record was seen before it was deleted at its source (kept as history), and the
    notices an account has for the user (a folder that vanished)."""
    db.executescript(
        """
        CREATE TABLE gone_message_sources (
            account TEXT NOT NULL,
            message INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
            folder TEXT,
            reason TEXT NOT NULL,                 -- deleted | vanished
            gone_at INTEGER NOT NULL,             -- UTC epoch seconds
            PRIMARY KEY (account, message)
        ) WITHOUT ROWID;
        CREATE INDEX gone_message_sources_message ON gone_message_sources(message);
        CREATE TABLE gone_event_sources (
            account TEXT NOT NULL,
            event INTEGER NOT NULL REFERENCES events(id) ON DELETE CASCADE,
            gone_at INTEGER NOT NULL,
            PRIMARY KEY (account, event)
        ) WITHOUT ROWID;
        CREATE INDEX gone_event_sources_event ON gone_event_sources(event);
        ALTER TABLE accounts ADD COLUMN notices TEXT;  -- JSON [[epoch, text], ...], newest last
        """
    )


@migrations(name="0004_digest_confirmation")
def m0004_digest_confirmation(db: Database) -> None:
    """A digest handed over without an answer (a crash, a dropped connection) is *unconfirmed*
    until it is seen arriving in a synced mailbox; its exact bytes are kept until then, so a
    resend is the same message."""
    db.executescript(
        """
        ALTER TABLE digests ADD COLUMN unconfirmed INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE digests ADD COLUMN confirmed_at INTEGER;   -- seen in a synced mailbox
        ALTER TABLE digests ADD COLUMN resent_at INTEGER;      -- sent again, same Message-ID
        ALTER TABLE digests ADD COLUMN message BLOB;           -- the message, while unconfirmed
        """
    )


@migrations(name="0005_contacts")
def m0005_contacts(db: Database) -> None:
    """Address-book contacts (vCard, CardDAV, Google, Outlook): what identity and the engine use
    of them, never phone numbers, postal addresses or notes (see daemon/store/contacts.py)."""
    db.executescript(
        """
        CREATE TABLE contacts (
            id INTEGER PRIMARY KEY,
            account TEXT NOT NULL,
            provider_id TEXT NOT NULL,
            name TEXT NOT NULL DEFAULT '',
            birthday TEXT,                        -- YYYY-MM-DD or --MM-DD
            anniversary TEXT,                     -- YYYY-MM-DD or --MM-DD
            organisation TEXT,
            title TEXT,
            groups TEXT,                          -- JSON list of group names
            previous_organisation TEXT,           -- before the organisation last changed
            previous_title TEXT,
            organisation_since INTEGER,           -- UTC epoch of the sync that saw the change
            updated_at INTEGER NOT NULL,
            UNIQUE (account, provider_id)
        );
        CREATE TABLE contact_emails (
            contact INTEGER NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
            email TEXT NOT NULL,
            position INTEGER NOT NULL,            -- 0 = the preferred address
            PRIMARY KEY (contact, email)
        ) WITHOUT ROWID;
        CREATE INDEX contact_emails_email ON contact_emails(email);
        """
    )


@migrations(name="0006_sent_folders_and_shifted_copies")
def m0006_sent_folders_and_shifted_copies(db: Database) -> None:
    """Mail filed in a Sent folder is marked ``sent-folder`` and subjects give their markers (see
    ``connectors.headers.subject_markers``); shifted copies get a copy key and those already
    stored twice are collapsed into one message (see :mod:`.copies`)."""
    conn = db.conn
    conn.execute("ALTER TABLE messages ADD COLUMN copy_key TEXT")
    conn.execute("CREATE INDEX messages_copy_key ON messages(copy_key)")
    _m0006_markers(conn)
    _m0006_collapse(conn, _m0006_copy_keys(conn))


def _m0006_markers(conn: Any) -> None:
    """m0006: the ``sent-folder`` marker and the subjects' markers on stored messages."""
    from keepwarm.connectors.headers import is_sent_folder, subject_markers

    sent = {
        int(m)
        for m, folder, labels in conn.execute("SELECT message, folder, labels FROM message_sources")
        if is_sent_folder(folder) or "SENT" in str(labels or "").split()
    }
    updates = []
    for mid, subject, marks in conn.execute("SELECT id, subject, markers FROM messages"):
        have = set(str(marks or "").split())
        marks = subject_markers(subject) if subject is not None else ()  # None: maybe not stored
        new = have | set(marks) | ({"sent-folder"} if mid in sent else set())
        if new != have:
            updates.append((" ".join(sorted(new)), mid))
    conn.executemany("UPDATE messages SET markers = ? WHERE id = ?", updates)


def _m0006_copy_keys(conn: Any) -> dict[str, list[tuple[int, int, int | None]]]:
    """m0006: each message's copy key stored; the messages by copy key, as (date, id, sender)."""
    from keepwarm.daemon.store.copies import copy_key

    recipients: dict[int, list[str]] = {}
    for mid, email in conn.execute(
        """SELECT ma.message, a.email FROM message_addresses ma JOIN addresses a ON a.id = ma.address
           WHERE ma.role IN (?, ?)""",
        (ROLE_TO, ROLE_CC),
    ):
        recipients.setdefault(int(mid), []).append(str(email))
    groups: dict[str, list[tuple[int, int, int | None]]] = {}
    rows = conn.execute("SELECT id, date, sender, norm_subject FROM messages").fetchall()
    for mid, date, sender, nsubj in rows:
        key = copy_key(recipients.get(int(mid), ()), nsubj)
        if key is None:
            continue
        conn.execute("UPDATE messages SET copy_key = ? WHERE id = ?", (key, mid))
        groups.setdefault(key, []).append((int(date), int(mid), sender))
    return groups


def _m0006_collapse(conn: Any, groups: dict[str, list[tuple[int, int, int | None]]]) -> None:
    """m0006: shifted copies already stored twice (one group of a copy key) become one message."""
    from keepwarm.daemon.store.copies import same_sender, shifted

    for members in groups.values():
        members.sort()
        kept: list[tuple[int, int, int | None]] = []
        for date, mid, sender in members:
            twin = next(
                (k for k in kept if shifted(k[0], date) and same_sender(k[2], sender)), None
            )
            if twin is None:
                kept.append((date, mid, sender))
            else:
                merge_message(conn, keep=twin[1], drop=mid)


@migrations(name="0007_thread_keys")
def m0007_thread_keys(db: Database) -> None:
    """Each message's threading keys as integers (:mod:`keepwarm.core.threadkeys`), so the engine
    reads numbers rather than a string per key and message."""
    conn = db.conn
    for column in COLUMNS:
        conn.execute(f"ALTER TABLE messages ADD COLUMN {column} INTEGER NOT NULL DEFAULT 0")
    fill_thread_keys(conn)


@migrations(name="0008_column_blocks")
def m0008_column_blocks(db: Database) -> None:
    """The engine's bulk reads kept as arrays, and the triggers that drop a kept block whenever
    a message or recipient row in it changes (:mod:`keepwarm.daemon.store.blocks`)."""
    from keepwarm.daemon.store.blocks import SCHEMA

    db.executescript(SCHEMA)


_FILL_BATCH = 50_000


def fill_thread_keys(conn: Any) -> int:
    """Work out the threading keys of every stored message (the migration; and stores written
    with SQL alone, as the benchmarks build them). Returns how many rows changed."""
    sets = ", ".join(f"{c} = ?" for c in COLUMNS)
    changed = 0
    last = 0
    while True:
        rows = conn.execute(
            f"""SELECT id, message_id, in_reply_to, refs, thread_hint, norm_subject, {", ".join(COLUMNS)}
                FROM messages WHERE id > ? ORDER BY id LIMIT ?""",
            (last, _FILL_BATCH),
        ).fetchall()
        if not rows:
            return changed
        updates = []
        for mid, msgid, irt, refs, hint, nsubj, *stored in rows:
            keys = thread_keys(msgid, irt, refs, hint, nsubj)
            if list(keys) != stored:
                updates.append((*keys, mid))
        conn.executemany(f"UPDATE messages SET {sets} WHERE id = ?", updates)
        changed += len(updates)
        last = int(rows[-1][0])


def merge_message(conn: Any, *, keep: int, drop: int) -> None:
    """Fold message ``drop`` into ``keep``: its sources, Bcc rows and markers; the earlier date."""
    conn.execute("UPDATE message_sources SET message = ? WHERE message = ?", (keep, drop))
    conn.execute(
        "UPDATE OR IGNORE gone_message_sources SET message = ? WHERE message = ?", (keep, drop)
    )
    conn.execute(
        """INSERT OR IGNORE INTO message_addresses (message, role, address)
           SELECT ?, role, address FROM message_addresses WHERE message = ? AND role = ?""",
        (keep, drop, ROLE_BCC),
    )
    (a,) = conn.execute("SELECT markers FROM messages WHERE id = ?", (keep,)).fetchone()
    (b,) = conn.execute("SELECT markers FROM messages WHERE id = ?", (drop,)).fetchone()
    marks = set(str(a or "").split()) | set(str(b or "").split())
    conn.execute(
        """UPDATE messages SET markers = ?,
               date = min(date, (SELECT date FROM messages WHERE id = ?)) WHERE id = ?""",
        (" ".join(sorted(marks)) or None, drop, keep),
    )
    conn.execute("DELETE FROM message_addresses WHERE message = ?", (drop,))
    conn.execute("DELETE FROM messages WHERE id = ?", (drop,))
