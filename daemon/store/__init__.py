"""The store: one SQLite file per user, the single writer, batches + cursors in one transaction.

Deduplication: a message seen through two folders, two accounts or two copies is one row in
``messages``; each place it was seen is a row in ``message_sources``. A new record joins an
existing message when

1. the same ``(account, provider_id)`` was stored before (a re-applied batch), or
2. its Message-ID matches a stored one *and* the sender agrees and the dates are within two days
   (a Message-ID reused for a different message - seen in damaged PST exports - is not trusted), or
3. its content key (date to the second, sender, To+Cc set, normalized subject) matches: Lotus Notes
   exports file copies of one message under different Message-IDs, or
4. it is a copy filed with its Date shifted by whole hours (same To+Cc and subject, the senders
   agree; see :mod:`.copies`): the earlier date is kept.

History: a message deleted at its source (trash, expunge, a removed file) or whose whole
folder vanished stays, with a row in ``gone_message_sources`` saying where it was; spam, records
replaced by a fresh read and folders the user stopped syncing are removed, and so is deleted mail
when ``forget_deleted`` is set ([privacy] forget_deleted). An event deleted from its calendar is
removed (it did not take place) unless its whole calendar vanished. A record leaves the store
when it has neither a source nor a history row left (see :class:`Deletion` for the reasons).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from keepwarm.connectors.base import Address, Batch, Deletion, EventMeta, MessageMeta
from keepwarm.connectors.headers import normalize_subject
from keepwarm.core.threadkeys import thread_keys
from keepwarm.daemon.errors import StoreError as StoreError
from keepwarm.daemon.store import contacts
from keepwarm.daemon.store.copies import copy_key, same_sender, shifted
from keepwarm.daemon.store.known import BatchIndex, Keys, Stored, rows_where_in
from keepwarm.daemon.store.migrations import (
    ROLE_BCC,
    ROLE_CC,
    ROLE_FROM,
    ROLE_REPLY_TO,
    ROLE_TO,
    migrations,
)

if TYPE_CHECKING:
    from sqlite_utils import Database

MESSAGE_ID_MAX_DRIFT = 2 * 86400


def damaged(path: Path | str, detail: str) -> StoreError:
    """The one message for a database that SQLite reports as damaged (truncated or bad pages)."""
    detail = detail.split(" with text ", 1)[0][:120]  # not the damaged value itself
    return StoreError(
        f"the keepwarm database {path} is damaged ({detail}): restore it from a backup, or move "
        "it aside and run 'keepwarm sync' to import your accounts again",
        "damaged",
    )


def directory_problem(directory: Path) -> tuple[str, str] | None:
    """``(what is wrong, the fix)`` when keepwarm cannot write in ``directory`` (a read-only file
    system, permissions), else None. A missing directory is created on demand: then its nearest
    existing parent must be writable."""
    while not directory.exists() and directory.parent != directory:
        directory = directory.parent
    try:
        st = os.statvfs(directory)
    except OSError:
        return None
    if os.access(directory, os.W_OK | os.X_OK):
        return None
    why = (
        "it is on a read-only file system"
        if st.f_flag & os.ST_RDONLY
        else "this user may not write to it"
    )
    return (
        f"keepwarm cannot write to its state directory {directory}: {why}",
        "make it writable for this user (under systemd: StateDirectory= or ReadWritePaths=), "
        "or set [store] path to a writable place",
    )


def unwritable_directory(directory: Path) -> str | None:
    """:func:`directory_problem` as one sentence."""
    problem = directory_problem(directory)
    if problem is None:
        return None
    return f"{problem[0]}. The database and its lock files live there: {problem[1]}"


def _is_damaged(exc: sqlite3.DatabaseError, name: str, low: str) -> bool:
    """Whether a database error says the file is damaged or not a database at all."""
    return (
        type(exc) is sqlite3.DatabaseError
        or name in ("SQLITE_CORRUPT", "SQLITE_NOTADB")
        or any(w in low for w in ("malformed", "not a database", "could not decode"))
    )


def database_problem(path: Path | None, exc: BaseException) -> StoreError | None:
    """A one-line StoreError for a damaged, read-only or full database; None for other errors
    (those are bugs and keep their traceback)."""
    if isinstance(exc, StoreError):
        return exc
    if not isinstance(exc, sqlite3.DatabaseError):
        return None
    text = str(exc)
    low = text.lower()
    name = getattr(exc, "sqlite_errorname", "") or ""
    where = path if path is not None else "(in memory)"
    if _is_damaged(exc, name, low):
        return damaged(where, text)
    if name.startswith(("SQLITE_READONLY", "SQLITE_CANTOPEN")) or "readonly" in low:
        problem = unwritable_directory(path.parent) if path is not None else None
        return StoreError(
            problem
            or f"the keepwarm database {where} cannot be written ({text}): check that this user "
            "owns the file and its directory",
            "read_only",
        )
    if name == "SQLITE_FULL" or "disk is full" in low:
        return StoreError(
            f"the keepwarm database {where} could not be written: {text}. Free disk space.", "full"
        )
    if name.startswith("SQLITE_IOERR") or "disk i/o error" in low:
        return StoreError(
            f"the keepwarm database {where} could not be read or written ({text}): check the "
            "disk that holds it (free space, errors in the system log)",
            "full",
        )
    return None


@dataclass
class ApplyResult:
    """What applying one batch changed."""

    added: int = 0
    merged: int = 0  # records that joined an existing message/event (dedupe)
    unchanged: int = 0
    deleted: int = 0  # source records removed (spam, replaced, unselected, moved, forgotten)
    kept: int = 0  # deleted at the source, or their folder vanished: kept as history
    skipped: dict[str, int] = field(default_factory=dict)
    invalid_addresses: int = 0  # left out of the messages stored (the records were kept)


@dataclass(frozen=True)
class Notice:
    """Something about an account's source the user should know (a folder that vanished)."""

    at: int  # UTC epoch seconds
    text: str


MAX_NOTICES = 20  # per account, newest kept


# An account as the store keeps it: never synced, synced, backing off, waiting for a sign-in,
# failing until the user acts (migrations.py: the accounts table).
AccountStatus = Literal["new", "ok", "backoff", "auth_required", "failing"]


@dataclass(frozen=True)
class AccountState:
    name: str
    kind: str
    state: AccountStatus
    cursor: str | None
    last_attempt_at: int | None
    last_ok_at: int | None
    last_error: str | None
    fix: str | None
    failures: int
    next_attempt_at: int | None
    progress_done: int | None
    progress_total: int | None


def _epoch(dt: object) -> int:
    assert isinstance(dt, datetime) and dt.tzinfo is not None, "store needs aware datetimes"
    return int(dt.timestamp())


def content_key(msg: MessageMeta) -> str:
    """A key that is equal for copies of one message filed under different Message-IDs."""
    return message_keys(msg).content


def message_keys(msg: MessageMeta) -> Keys:
    """A message's date and dedupe keys: the content key (date to the second, sender, To+Cc set,
    normalized subject) and the copy key (see :mod:`.copies`)."""
    when = _epoch(msg.date)
    norm = normalize_subject(msg.subject or "")
    people = [a.email for a in (*msg.to, *msg.cc)]
    parts = [
        str(when),
        msg.sender.email if msg.sender else "",
        ",".join(sorted(set(people))),
        norm,
    ]
    content = hashlib.blake2b(
        "\x1f".join(parts).encode("utf-8", "surrogatepass"), digest_size=12
    ).hexdigest()
    return Keys(when, norm or None, content, copy_key(people, norm or None))


def _configure(conn: sqlite3.Connection) -> None:
    """What sqlite-utils' ``Database`` did to every connection it opened (kept as it was)."""
    conn.execute("PRAGMA recursive_triggers=on")


def _create_private(path: Path) -> None:
    """Create the database file with mode 0600 before SQLite opens it."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not path.exists():
        fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
        os.close(fd)


class Store:
    """The one writer of the history database."""

    def __init__(self, conn: sqlite3.Connection, path: Path | None = None) -> None:
        self.path = path
        self.conn = conn
        self._db: Database | None = None
        self._savepoints = 0
        self._address_ids: dict[str, int] = {}
        self._named: set[str] = set()  # addresses whose stored display name is not empty
        self.forget_deleted = False  # [privacy] forget_deleted: deleted mail leaves the history

    # -- opening -----------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | Path) -> Store:
        """Open (creating 0600 if needed) and migrate the database at ``path``."""
        p = Path(path).expanduser()
        problem = unwritable_directory(p.parent)
        if problem:
            raise StoreError(problem, "read_only")
        old_umask = os.umask(0o077)
        try:
            _create_private(p)
            conn = sqlite3.connect(p)
            try:
                _configure(conn)
                conn.execute("PRAGMA busy_timeout=10000")
                if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                    conn.execute("PRAGMA journal_mode=wal")
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.execute("PRAGMA foreign_keys=ON")
                store = cls(conn, p)
                store.migrate()
            except BaseException:
                conn.close()  # a database that cannot be opened leaves no connection behind
                raise
        except sqlite3.DatabaseError as exc:
            known = database_problem(p, exc)
            if known is not None:
                raise known from exc
            raise StoreError(
                f"cannot open the keepwarm database {p}: {exc}. "
                "Check the file's permissions and free disk space"
            ) from exc
        except OSError as exc:
            raise StoreError(
                unwritable_directory(p.parent)
                or f"cannot create the keepwarm database {p}: {exc.strerror}",
                "read_only" if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM) else "other",
            ) from exc
        finally:
            os.umask(old_umask)
        for suffix in ("-wal", "-shm"):
            side = Path(str(p) + suffix)
            if side.exists():
                os.chmod(side, 0o600)
        return store

    @classmethod
    def memory(cls) -> Store:
        conn = sqlite3.connect(":memory:")
        _configure(conn)
        conn.execute("PRAGMA foreign_keys=ON")
        store = cls(conn)
        store.migrate()
        return store

    @property
    def db(self) -> Database:
        """The connection as a sqlite-utils ``Database`` (for migrations; imported on first use)."""
        if self._db is None:
            from sqlite_utils import Database

            self._db = Database(self.conn, execute_plugins=False)
        return self._db

    def migrate(self) -> None:
        if not migrations.up_to_date(self.conn):
            migrations.apply(self.db)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def atomic(self) -> Iterator[None]:
        """One transaction (a savepoint inside another one); rolled back on any exception."""
        try:
            with self._transaction():
                yield
        except sqlite3.DatabaseError as exc:
            known = database_problem(self.path, exc)
            if known is not None:
                raise known from exc
            raise

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        conn = self.conn
        if conn.in_transaction:
            self._savepoints += 1
            name = f"keepwarm_{self._savepoints}"
            conn.execute(f"SAVEPOINT {name}")
            try:
                yield
            except BaseException:
                # an error such as a trigger's RAISE(ROLLBACK) may have ended the transaction
                if conn.in_transaction:
                    conn.execute(f"ROLLBACK TO SAVEPOINT {name}")
                    conn.execute(f"RELEASE SAVEPOINT {name}")
                raise
            conn.execute(f"RELEASE SAVEPOINT {name}")
            return
        conn.execute("BEGIN")
        try:
            yield
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        try:
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    # -- addresses ---------------------------------------------------------------------------
    def address_id(self, addr: Address) -> int:
        cached = self._address_ids.get(addr.email)
        if cached is not None and (not addr.name or addr.email in self._named):
            return cached
        row = self.conn.execute(
            "SELECT id, name FROM addresses WHERE email = ?", (addr.email,)
        ).fetchone()
        if row is None:
            cur = self.conn.execute(
                "INSERT INTO addresses (email, name) VALUES (?, ?)", (addr.email, addr.name)
            )
            assert cur.lastrowid is not None
            aid = int(cur.lastrowid)
        else:
            aid = int(row[0])
            if addr.name and not row[1]:
                self.conn.execute("UPDATE addresses SET name = ? WHERE id = ?", (addr.name, aid))
        if addr.name or (row is not None and row[1]):
            self._named.add(addr.email)
        self._address_ids[addr.email] = aid
        return aid

    # -- accounts ----------------------------------------------------------------------------
    def ensure_account(self, name: str, kind: str) -> None:
        self.conn.execute(
            "INSERT INTO accounts (name, kind) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET kind = excluded.kind",
            (name, kind),
        )

    def cursor(self, account: str) -> str | None:
        row = self.conn.execute("SELECT cursor FROM accounts WHERE name = ?", (account,)).fetchone()
        return None if row is None else row[0]

    def clear_cursor(self, account: str) -> None:
        with self.atomic():
            self.conn.execute("UPDATE accounts SET cursor = NULL WHERE name = ?", (account,))

    def set_account_state(
        self,
        account: str,
        kind: str,
        state: AccountStatus,
        *,
        error: str | None = None,
        fix: str | None = None,
        now: float | None = None,
        next_attempt_at: float | None = None,
        ok: bool = False,
        failures: int | None = None,
    ) -> None:
        """Record the outcome of a sync attempt."""
        ts = int(now if now is not None else time.time())
        with self.atomic():
            self.ensure_account(account, kind)
            self.conn.execute(
                """UPDATE accounts SET state = ?, last_attempt_at = ?, last_error = ?, fix = ?,
                       next_attempt_at = ?,
                       last_ok_at = CASE WHEN ? THEN ? ELSE last_ok_at END,
                       failures = COALESCE(?, CASE WHEN ? THEN 0 ELSE failures + 1 END)
                   WHERE name = ?""",
                (
                    state,
                    ts,
                    error,
                    fix,
                    int(next_attempt_at) if next_attempt_at is not None else None,
                    ok,
                    ts,
                    failures,
                    ok,
                    account,
                ),
            )

    def account_counts(self, account: str) -> tuple[int, int]:
        """(messages, events) seen through ``account``."""
        n_msg = self.conn.execute(
            "SELECT count(*) FROM message_sources WHERE account = ?", (account,)
        ).fetchone()[0]
        n_ev = self.conn.execute(
            "SELECT count(*) FROM event_sources WHERE account = ?", (account,)
        ).fetchone()[0]
        return int(n_msg), int(n_ev)

    def last_ok(self, accounts: list[str]) -> int | None:
        """The latest successful sync (epoch seconds) of any of ``accounts``."""
        marks = ",".join("?" * len(accounts))
        row = self.conn.execute(
            f"SELECT max(last_ok_at) FROM accounts WHERE name IN ({marks})", accounts
        ).fetchone()
        return int(row[0]) if row and row[0] is not None else None

    def failures(self, account: str) -> int:
        """How many syncs of ``account`` failed in a row."""
        row = self.conn.execute(
            "SELECT failures FROM accounts WHERE name = ?", (account,)
        ).fetchone()
        return int(row[0]) if row else 0

    def set_next_attempt(self, account: str, due: datetime | None) -> None:
        """When the daemon syncs ``account`` next (None: parked until the user acts)."""
        with self.atomic():
            self.conn.execute(
                "UPDATE accounts SET next_attempt_at = ? WHERE name = ?",
                (int(due.timestamp()) if due else None, account),
            )

    def account_states(self) -> list[AccountState]:
        rows = self.conn.execute(
            """SELECT name, kind, state, cursor, last_attempt_at, last_ok_at, last_error, fix, failures,
                      next_attempt_at, progress_done, progress_total FROM accounts ORDER BY name"""
        ).fetchall()
        return [AccountState(*r) for r in rows]

    def forget_account(self, account: str) -> int:
        """Remove every record seen only through ``account``, its history included. Returns the
        number of sources removed."""
        with self.atomic():
            gone = self._take("gone_message_sources", "message", account)
            gone_ev = self._take("gone_event_sources", "event", account)
            n = self._remove_sources(account) + contacts.remove_account(self.conn, account)
            self._drop_orphans(gone, gone_ev)
            self.conn.execute("DELETE FROM accounts WHERE name = ?", (account,))
        return n

    def forget_deleted_mail(self, account: str) -> int:
        """Forget the mail of ``account`` that was kept after it was deleted at its source (not
        the mail of vanished folders). Returns how many history rows went."""
        with self.atomic():
            return self._forget_deleted(account)

    def _forget_deleted(self, account: str) -> int:
        ids = [
            r[0]
            for r in self.conn.execute(
                "SELECT message FROM gone_message_sources WHERE account = ? AND reason = 'deleted'",
                (account,),
            )
        ]
        self.conn.execute(
            "DELETE FROM gone_message_sources WHERE account = ? AND reason = 'deleted'", (account,)
        )
        self._drop_orphans(ids, [])
        return len(ids)

    def history_counts(self) -> dict[str, int]:
        """Per account: messages deleted at the source (or in a vanished folder) that are kept."""
        rows = self.conn.execute(
            "SELECT account, count(*) FROM gone_message_sources GROUP BY account"
        ).fetchall()
        return {str(a): int(n) for a, n in rows}

    # -- notices -------------------------------------------------------------------------------
    def notices(self, account: str, since: float = 0) -> list[Notice]:
        """The account's notices, oldest first (only those at or after ``since``)."""
        row = self.conn.execute(
            "SELECT notices FROM accounts WHERE name = ?", (account,)
        ).fetchone()
        try:
            items = json.loads(row[0]) if row and row[0] else []
        except ValueError:
            items = []
        return [Notice(int(at), str(text)) for at, text in items if at >= since]

    def _add_notices(self, account: str, texts: list[str]) -> None:
        items = [[n.at, n.text] for n in self.notices(account)]
        items += [[int(time.time()), t] for t in texts]
        self.conn.execute(
            "UPDATE accounts SET notices = ? WHERE name = ?",
            (json.dumps(items[-MAX_NOTICES:]), account),
        )

    # -- batches -----------------------------------------------------------------------------
    def apply_batch(self, account: str, kind: str, batch: Batch) -> ApplyResult:
        """Store a batch's records and its cursor in one transaction. Idempotent."""
        result = ApplyResult(skipped=dict(batch.skipped))
        try:
            self._apply(account, kind, batch, result)
        except BaseException:
            # the transaction rolled back: address ids cached during it may not exist
            self._address_ids.clear()
            self._named.clear()
            raise
        return result

    def _apply(self, account: str, kind: str, batch: Batch, result: ApplyResult) -> None:
        with self.atomic():
            self.ensure_account(account, kind)
            before_reset: list[int] = []
            if batch.reset:
                result.deleted += contacts.remove_account(self.conn, account)
                if self.forget_deleted:
                    result.deleted += self._remove_sources(account) + self._forget_deleted(account)
                else:
                    before_reset = self._set_all_gone(account, result)
            self._store_messages(batch.messages, result)
            if before_reset:  # what the fresh read did not bring again was deleted
                query = "SELECT message FROM gone_message_sources WHERE account = ? AND message IN"
                gone = {r[0] for r in rows_where_in(self.conn, query, before_reset, account)}
                result.kept += sum(1 for mid in before_reset if mid in gone)
            for ev in batch.events:
                self._upsert_event(ev, result)
            for c in batch.contacts:
                if contacts.upsert(self.conn, c) == "unchanged":
                    result.unchanged += 1
                else:
                    result.added += 1
            spam = set(batch.spam_message_ids)
            for d in batch.deletions:
                self._delete(d, result, spam)
            if batch.notices:
                self._add_notices(account, batch.notices)
            self._set_position(account, batch)

    def _set_position(self, account: str, batch: Batch) -> None:
        """The batch's cursor (unless it keeps the stored one) and progress."""
        progress = batch.progress
        done, total = (progress.done, progress.total) if progress else (None, None)
        if batch.keep_cursor:
            self.conn.execute(
                "UPDATE accounts SET progress_done = ?, progress_total = ? WHERE name = ?",
                (done, total, account),
            )
            return
        self.conn.execute(
            "UPDATE accounts SET cursor = ?, progress_done = ?, progress_total = ? WHERE name = ?",
            (batch.cursor, done, total, account),
        )

    def _take(self, table: str, column: str, account: str) -> list[int]:
        """Delete ``account``'s rows of a sources table; the record ids they pointed at."""
        ids = [
            int(r[0])
            for r in self.conn.execute(
                f"SELECT {column} FROM {table} WHERE account = ?", (account,)
            )
        ]
        self.conn.execute(f"DELETE FROM {table} WHERE account = ?", (account,))
        return ids

    def _remove_sources(self, account: str) -> int:
        msg_ids = self._take("message_sources", "message", account)
        ev_ids = self._take("event_sources", "event", account)
        self._drop_orphans(msg_ids, ev_ids)
        return len(msg_ids) + len(ev_ids)

    def _set_all_gone(self, account: str, result: ApplyResult) -> list[int]:
        """Before a whole re-read (``Batch.reset``): the account's messages become history until
        the read brings them again; its events are removed. Returns the message ids."""
        now = int(time.time())
        rows = self.conn.execute(
            "SELECT message, folder FROM message_sources WHERE account = ?", (account,)
        ).fetchall()
        self.conn.executemany(
            """INSERT OR REPLACE INTO gone_message_sources (account, message, folder, reason, gone_at)
               VALUES (?, ?, ?, 'deleted', ?)""",
            [(account, mid, folder, now) for mid, folder in rows],
        )
        self.conn.execute("DELETE FROM message_sources WHERE account = ?", (account,))
        ev_ids = self._take("event_sources", "event", account)
        self._drop_orphans([], ev_ids)
        result.deleted += len(ev_ids)
        return [int(r[0]) for r in rows]

    def _drop_orphans(self, msg_ids: Iterable[int], ev_ids: Iterable[int]) -> None:
        """Remove the records that have neither a source nor a history row left."""
        self.conn.executemany(
            """DELETE FROM messages WHERE id = ?
                 AND NOT EXISTS (SELECT 1 FROM message_sources WHERE message = ?)
                 AND NOT EXISTS (SELECT 1 FROM gone_message_sources WHERE message = ?)""",
            [(i, i, i) for i in msg_ids],
        )
        self.conn.executemany(
            """DELETE FROM events WHERE id = ?
                 AND NOT EXISTS (SELECT 1 FROM event_sources WHERE event = ?)
                 AND NOT EXISTS (SELECT 1 FROM gone_event_sources WHERE event = ?)""",
            [(i, i, i) for i in ev_ids],
        )

    def _delete(self, d: Deletion, result: ApplyResult, spam: set[str]) -> None:
        """Apply one deletion by the history rule (see the module docstring)."""
        if d.kind == "contact":  # an address book has no history
            result.deleted += contacts.delete(self.conn, d.account, d.provider_id)
            return
        if d.kind == "event":
            self._delete_event(d, result)
            return
        row = self.conn.execute(
            """SELECT s.message, s.folder, m.message_id FROM message_sources s
               JOIN messages m ON m.id = s.message WHERE s.account = ? AND s.provider_id = ?""",
            (d.account, d.provider_id),
        ).fetchone()
        if row is None:
            return
        mid, folder, message_id = row
        reason = d.reason
        if reason == "deleted" and message_id is not None and message_id in spam:
            reason = "spam"  # it went to the account's spam folder
        self.conn.execute(
            "DELETE FROM message_sources WHERE account = ? AND provider_id = ?",
            (d.account, d.provider_id),
        )
        keep = reason == "vanished" or (reason == "deleted" and not self.forget_deleted)
        moved = self.conn.execute(
            "SELECT 1 FROM message_sources WHERE account = ? AND message = ? LIMIT 1",
            (d.account, mid),
        ).fetchone()
        if keep and not moved:
            self.conn.execute(
                """INSERT OR REPLACE INTO gone_message_sources (account, message, folder, reason, gone_at)
                   VALUES (?, ?, ?, ?, ?)""",
                (d.account, mid, folder, reason, int(time.time())),
            )
            result.kept += 1
            return
        result.deleted += 1
        if reason == "spam":  # never an interaction: no history either, unless present elsewhere
            self.conn.execute(
                """DELETE FROM messages WHERE id = ?
                     AND NOT EXISTS (SELECT 1 FROM message_sources WHERE message = ?)""",
                (mid, mid),
            )
        else:
            self._drop_orphans([mid], [])

    def _delete_event(self, d: Deletion, result: ApplyResult) -> None:
        row = self.conn.execute(
            "SELECT event FROM event_sources WHERE account = ? AND provider_id = ?",
            (d.account, d.provider_id),
        ).fetchone()
        if row is None:
            return
        self.conn.execute(
            "DELETE FROM event_sources WHERE account = ? AND provider_id = ?",
            (d.account, d.provider_id),
        )
        if d.reason == "vanished":
            self.conn.execute(
                "INSERT OR REPLACE INTO gone_event_sources (account, event, gone_at) VALUES (?, ?, ?)",
                (d.account, row[0], int(time.time())),
            )
            result.kept += 1
            return
        result.deleted += 1
        self._drop_orphans([], [row[0]])

    def _sender_id(self, msg: MessageMeta) -> int | None:
        """The stored id of the sender's address: None without a sender, -1 if never stored."""
        if msg.sender is None:
            return None
        sender = self._address_ids.get(msg.sender.email)
        if sender is None:
            srow = self.conn.execute(
                "SELECT id FROM addresses WHERE email = ?", (msg.sender.email,)
            ).fetchone()
            sender = srow[0] if srow else -1
        return sender

    def _store_messages(self, messages: list[MessageMeta], result: ApplyResult) -> None:
        """Store a batch's messages: the stored rows their lookups need are read first, a few
        queries a batch (:class:`.known.BatchIndex`); the decisions are those of one message at
        a time, in order."""
        if not messages:
            return
        known = BatchIndex(self.conn)
        known.load_sources((m.account, m.provider_id) for m in messages)
        fresh = [m for m in messages if (m.account, m.provider_id) not in known.sources]
        keys = {id(m): message_keys(m) for m in fresh}
        known.load_messages((m.message_id for m in fresh if m.message_id), keys.values())
        for msg in messages:
            self._upsert_message(msg, keys, known, result)
            result.invalid_addresses += msg.invalid_addresses
        known.write()

    def _find_message(self, msg: MessageMeta, keys: Keys, known: BatchIndex) -> Stored | None:
        when = keys.when
        if msg.message_id:
            sender = self._sender_id(msg)
            for stored in known.by_message_id.get(msg.message_id, ()):
                agree = stored.sender is None or sender is None or stored.sender == sender
                if agree and abs(stored.date - when) <= MESSAGE_ID_MAX_DRIFT:
                    return stored
        stored_copy = known.by_content.get(keys.content)
        if stored_copy is not None or keys.copy is None:
            return stored_copy
        sender = self._sender_id(msg)
        for stored in known.by_copy.get(keys.copy, ()):
            if shifted(stored.date, when) and same_sender(
                stored.sender, sender if sender != -1 else None
            ):
                if when < stored.date:  # keep the earlier of the two dates (see copies.py)
                    self.conn.execute(
                        "UPDATE messages SET date = ? WHERE id = ?", (when, stored.id)
                    )
                    stored.date = when
                return stored
        return None

    def _upsert_message(
        self, msg: MessageMeta, keys: dict[int, Keys], known: BatchIndex, result: ApplyResult
    ) -> None:
        labels = " ".join(msg.labels) or None
        where = (msg.account, msg.provider_id)
        source = known.sources.get(where)
        if source is not None:
            known.refile(where, source, msg.folder, labels)
            result.unchanged += 1
            return
        k = keys.get(id(msg)) or message_keys(msg)
        stored = self._find_message(msg, k, known)
        if stored is None:
            stored = self._insert_message(msg, k, known)
            result.added += 1
        else:
            self._merge_copy(msg, stored, known)
            result.merged += 1
        known.add_source(where, stored.id, msg.folder, labels)

    def _insert_message(self, msg: MessageMeta, keys: Keys, known: BatchIndex) -> Stored:
        sender = self.address_id(msg.sender) if msg.sender else None
        n_recipients = len({a.email for a in (*msg.to, *msg.cc, *msg.bcc)})
        markers = " ".join(msg.markers) or None
        refs = " ".join(msg.references) or None
        cur = self.conn.execute(
            """INSERT INTO messages (message_id, content_key, date, sender, subject, norm_subject,
                   in_reply_to, refs, thread_hint, list_id, markers, n_recipients, copy_key,
                   k_message_id, k_in_reply_to, k_ref_first, k_ref_last, k_thread_hint, k_subject)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            (
                msg.message_id,
                keys.content,
                keys.when,
                sender,
                msg.subject,
                keys.norm_subject,
                msg.in_reply_to,
                refs,
                msg.thread_hint,
                msg.list_id,
                markers,
                n_recipients,
                keys.copy,
                *thread_keys(
                    msg.message_id, msg.in_reply_to, refs, msg.thread_hint, keys.norm_subject
                ),
            ),
        )
        assert cur.lastrowid is not None
        mid = int(cur.lastrowid)
        rows: set[tuple[int, int, int]] = set()
        if sender is not None:
            rows.add((mid, ROLE_FROM, sender))
        for role, addrs in (
            (ROLE_TO, msg.to),
            (ROLE_CC, msg.cc),
            (ROLE_BCC, msg.bcc),
            (ROLE_REPLY_TO, msg.reply_to),
        ):
            for a in addrs:
                rows.add((mid, role, self.address_id(a)))
        known.recipients.extend(rows)
        stored = Stored(mid, keys.when, sender, markers)
        known.add(stored, msg.message_id, keys.content, keys.copy)
        return stored

    def _merge_copy(self, msg: MessageMeta, stored: Stored, known: BatchIndex) -> None:
        """A copy seen elsewhere: keep what the new copy knows that the stored one lacks."""
        if msg.bcc:
            known.recipients.extend((stored.id, ROLE_BCC, self.address_id(a)) for a in msg.bcc)
        if msg.markers:
            have = set((stored.markers or "").split())
            merged = have | set(msg.markers)
            if merged != have:
                stored.markers = " ".join(sorted(merged))
                self.conn.execute(
                    "UPDATE messages SET markers = ? WHERE id = ?", (stored.markers, stored.id)
                )

    def _upsert_event(self, ev: EventMeta, result: ApplyResult) -> None:
        existing = self.conn.execute(
            "SELECT event FROM event_sources WHERE account = ? AND provider_id = ?",
            (ev.account, ev.provider_id),
        ).fetchone()
        fields = self._event_fields(ev)
        if existing is not None:
            row = self.conn.execute(
                """SELECT dedupe_key, ical_uid, start, "end", all_day, status, event_type, organizer,
                          my_response, recurring, attendees_omitted, n_attendees, title
                   FROM events WHERE id = ?""",
                (existing[0],),
            ).fetchone()
            if row is not None and tuple(row) == fields and self._attendees_equal(existing[0], ev):
                result.unchanged += 1
                return
            # Changed (moved, re-responded...): replace this source's view of the event.
            self.conn.execute(
                "DELETE FROM event_sources WHERE account = ? AND provider_id = ?",
                (ev.account, ev.provider_id),
            )
            self._drop_orphans([], [existing[0]])
        dedupe_key = fields[0]
        row = self.conn.execute(
            "SELECT id, my_response FROM events WHERE dedupe_key = ?", (dedupe_key,)
        ).fetchone()
        if row is None:
            cur = self.conn.execute(
                """INSERT INTO events (dedupe_key, ical_uid, start, "end", all_day, status, event_type,
                       organizer, my_response, recurring, attendees_omitted, n_attendees, title)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                fields,
            )
            assert cur.lastrowid is not None
            eid = int(cur.lastrowid)
            self._write_attendees(eid, ev)
            result.added += 1
        else:
            eid = int(row[0])
            if row[1] == "unknown" and ev.my_response != "unknown":
                self.conn.execute(
                    "UPDATE events SET my_response = ? WHERE id = ?", (ev.my_response, eid)
                )
            result.merged += 1
        self.conn.execute(
            "INSERT INTO event_sources (account, provider_id, event) VALUES (?, ?, ?)",
            (ev.account, ev.provider_id, eid),
        )
        self.conn.execute(
            "DELETE FROM gone_event_sources WHERE account = ? AND event = ?", (ev.account, eid)
        )

    def _event_fields(self, ev: EventMeta) -> tuple[object, ...]:
        start = _epoch(ev.start)
        key = f"uid:{ev.ical_uid}@{start}" if ev.ical_uid else f"src:{ev.account}/{ev.provider_id}"
        organizer = self.address_id(ev.organizer) if ev.organizer else None
        return (
            key,
            ev.ical_uid,
            start,
            _epoch(ev.end),
            int(ev.all_day),
            ev.status,
            ev.event_type,
            organizer,
            ev.my_response,
            int(ev.recurring),
            int(ev.attendees_omitted),
            len(ev.attendees),
            ev.title,
        )

    def _attendee_rows(self, eid: int, ev: EventMeta) -> set[tuple[object, ...]]:
        rows: dict[int, tuple[object, ...]] = {}
        for a in ev.attendees:
            aid = self.address_id(Address(a.email, a.name))
            rows[aid] = (
                eid,
                aid,
                a.response,
                int(a.organizer),
                int(a.optional),
                int(a.resource),
                int(a.is_self),
            )
        return set(rows.values())

    def _attendees_equal(self, eid: int, ev: EventMeta) -> bool:
        have = {
            tuple(r)
            for r in self.conn.execute(
                "SELECT event, address, response, organizer, optional, resource, is_self FROM event_attendees WHERE event = ?",
                (eid,),
            )
        }
        return have == self._attendee_rows(eid, ev)

    def _write_attendees(self, eid: int, ev: EventMeta) -> None:
        self.conn.executemany(
            """INSERT OR REPLACE INTO event_attendees (event, address, response, organizer, optional, resource, is_self)
               VALUES (?, ?, ?, ?, ?, ?, ?)""",
            self._attendee_rows(eid, ev),
        )

    # -- small helpers used by the CLI ------------------------------------------------------
    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for table in (
            "messages",
            "events",
            "addresses",
            "accounts",
            "message_sources",
            "event_sources",
            "contacts",
        ):
            out[table] = int(self.conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
        return out

    def set_skipped(self, account: str, skipped: dict[str, int]) -> None:
        with self.atomic():
            self.conn.execute(
                "UPDATE accounts SET skipped = ? WHERE name = ?",
                (json.dumps(skipped, sort_keys=True), account),
            )
