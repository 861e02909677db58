"""The IMAP connector against a real, private Dovecot (tests/fakes/dovecot.py)."""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import shutil
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
from contract import ConnectorContract, stored_ids
from fakes.dovecot import Dovecot, available
from fakes.tcpproxy import TcpProxy
from imapclient import IMAPClient
from leakcheck import close_after_test

from keepwarm.connectors.base import Batch, Connector
from keepwarm.connectors.imap.connector import ImapConnector
from keepwarm.daemon.accounts import make_connector
from keepwarm.daemon.config import loads
from keepwarm.daemon.store import Store
from keepwarm.daemon.sync import run_account

pytestmark = pytest.mark.skipif(
    not available(), reason="dovecot is not installed (make test installs it)"
)

ACCOUNT = "mail"
_users = itertools.count(1)
_msgs = itertools.count(1)


@pytest.fixture(scope="module")
def server() -> Iterator[Dovecot]:
    root = Path(tempfile.mkdtemp(prefix="keepwarm-dovecot-"))
    d = Dovecot(root, {f"user{i}": f"pw-user{i}" for i in range(1, 200)})
    d.start()
    try:
        yield d
    finally:
        d.stop()
        shutil.rmtree(root, ignore_errors=True)


def message(
    n: int | None = None,
    *,
    sender: str = "ann@example.com",
    to: str = "me@example.org",
    date: datetime | None = None,
    extra: str = "",
) -> tuple[str, bytes]:
    n = next(_msgs) if n is None else n
    mid = f"m{n}.{id(object())}@test.example"
    when = date or datetime(2025, 3, 1, tzinfo=UTC) + timedelta(minutes=n)
    raw = (
        f"From: Ann <{sender}>\r\nTo: {to}\r\nSubject: note {n}\r\nMessage-ID: <{mid}>\r\n"
        f"Date: {format_datetime(when)}\r\n{extra}\r\nbody {n} that must never be fetched\r\n"
    )
    return mid, raw.encode()


class Mailbox:
    """A fresh Dovecot user plus the helpers tests use to change its mail."""

    def __init__(self, server: Dovecot, tmp: Path) -> None:
        self.server = server
        self.user = f"user{next(_users)}"
        self.password = server.users[self.user]
        self.tmp = tmp
        self.password_file = tmp / "imap-password"
        self.write_password(self.password)
        self.proxy = TcpProxy(server.port).start()
        self.security = "starttls"
        self.port = self.proxy.port
        self.ca_file: Path | None = server.ca_file
        self.extra = ""
        self.tweaks: dict[str, object] = {"fetch_chunk": 5, "retry_base": 0.01, "retries": 2}
        self.admin = self.login()

    def write_password(self, pw: str) -> None:
        self.password_file.write_text(pw + "\n")
        self.password_file.chmod(0o600)

    def login(self) -> IMAPClient:
        c = IMAPClient("127.0.0.1", self.server.port, ssl=False, timeout=10)
        c.login(self.user, self.password)
        return c

    def close(self) -> None:
        self.proxy.stop()
        with contextlib.suppress(Exception):
            self.admin.logout()

    # -- connector --------------------------------------------------------------------------
    def config_text(self) -> str:
        ca = f'ca_file = "{self.ca_file}"\n' if self.ca_file else ""
        return f"""
[me]
name = "Me"
addresses = ["me@example.org"]
timezone = "Europe/Berlin"

[[accounts]]
name = "{ACCOUNT}"
kind = "imap"
host = "127.0.0.1"
port = {self.port}
security = "{self.security}"
allow_plaintext = true
username = "{self.user}"
password_file = "{self.password_file}"
{ca}{self.extra}
"""

    def connector(self) -> ImapConnector:
        config = loads(self.config_text())
        c = make_connector(config.account(ACCOUNT), config)
        assert isinstance(c, ImapConnector)
        c.settings = dataclasses.replace(c.settings, **self.tweaks)  # type: ignore[arg-type]
        c._sleep = lambda _s: None
        return c

    # -- server-side changes ----------------------------------------------------------------
    def ensure(self, folder: str) -> None:
        if not self.admin.folder_exists(folder):
            self.admin.create_folder(folder)

    def append(self, folder: str = "INBOX", **kw: object) -> str:
        self.ensure(folder)
        mid, raw = message(**kw)  # type: ignore[arg-type]
        date = kw.get("date")
        self.admin.append(folder, raw, msg_time=date if isinstance(date, datetime) else None)
        return mid

    def ids_in(self, folder: str) -> dict[int, str]:
        self.admin.select_folder(folder, readonly=True)
        out = {}
        uids = self.admin.search("ALL")
        for uid, d in self.admin.fetch(uids, ["BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"]).items():
            raw = d[b"BODY[HEADER.FIELDS (MESSAGE-ID)]"].decode()
            if "<" in raw:
                out[uid] = raw.split("<", 1)[1].split(">", 1)[0]
        return out

    def server_ids(self, skip: tuple[str, ...] = ("Junk", "Trash", "Drafts")) -> set[str]:
        ids: set[str] = set()
        for _f, _d, name in self.admin.list_folders():
            if name not in skip:
                ids |= set(self.ids_in(name).values())
        return ids

    def delete(self, folder: str, mid: str) -> None:
        uids = [u for u, m in self.ids_in(folder).items() if m == mid]
        self.admin.select_folder(folder)
        self.admin.delete_messages(uids)
        self.admin.expunge()

    def move(self, src: str, dst: str, mid: str) -> None:
        self.ensure(dst)
        uids = [u for u, m in self.ids_in(src).items() if m == mid]
        self.admin.select_folder(src)
        self.admin.move(uids, dst)

    def reset_uidvalidity(self, folder: str = "INBOX") -> None:
        """Make Dovecot assign a new UIDVALIDITY (and new UIDs) by dropping its uidlist and index."""
        self.admin.logout()
        d = self.server.maildir(self.user)
        if folder != "INBOX":
            d = d / f".{folder}"
        for p in d.iterdir():
            if p.name.startswith("dovecot.index") or p.name == "dovecot-uidlist":
                p.unlink()
        self.admin = self.login()


@pytest.fixture
def box(server: Dovecot, tmp_path: Path) -> Iterator[Mailbox]:
    m = Mailbox(server, tmp_path)
    yield m
    m.close()
    # pytest shows this only when the test failed
    print("\n".join(ln for ln in server.log().splitlines() if m.user in ln or "Error" in ln))


def sync(store: Store, conn: Connector) -> str:
    return run_account(store, conn).state


def ids(store: Store) -> list[str]:
    return stored_ids(store, ACCOUNT)


# -- the shared contract ---------------------------------------------------------------------------
class DovecotWorld:
    account = ACCOUNT
    kind = "imap"

    def __init__(self, box: Mailbox) -> None:
        self.box = box
        self.i = 0

    def connector(self) -> Connector:
        return self.box.connector()

    def add_messages(self, n: int) -> None:
        for _ in range(n):
            self.i += 1
            self.box.append("INBOX" if self.i % 3 else "Archive")

    def delete_one(self) -> str:
        _uid, mid = sorted(self.box.ids_in("INBOX").items())[0]
        self.box.delete("INBOX", mid)
        return mid

    def expected_ids(self) -> set[str]:
        return self.box.server_ids()

    def expire_cursor(self) -> None:
        self.box.reset_uidvalidity("INBOX")

    def break_auth(self) -> None:
        self.box.write_password("wrong-password")

    def fail_transiently(self) -> None:
        self.box.proxy.refuse = True

    def heal(self) -> None:
        self.box.write_password(self.box.password)
        self.box.proxy.refuse = False


class TestDovecotContract(ConnectorContract):
    @pytest.fixture
    def world(self, box: Mailbox) -> DovecotWorld:
        return DovecotWorld(box)


# -- IMAP specifics -----------------------------------------------------------------------------------
def test_full_then_incremental_with_new_deleted_and_moved(box: Mailbox) -> None:
    store = close_after_test(Store.memory())
    a = [box.append("INBOX") for _ in range(6)]
    b = [box.append("Archive") for _ in range(4)]
    assert sync(store, box.connector()) == "ok"
    assert ids(store) == sorted(a + b) == sorted(box.server_ids())
    c = [box.append("INBOX") for _ in range(3)]
    box.delete("INBOX", a[0])
    box.move("INBOX", "Archive", a[1])
    moved_row = store.conn.execute(
        "SELECT id FROM messages WHERE message_id = ?", (a[1],)
    ).fetchone()
    assert sync(store, box.connector()) == "ok"
    assert ids(store) == sorted(set(a[1:] + b + c)) == sorted(box.server_ids())
    # the moved message is the same interaction, now seen in Archive
    row = store.conn.execute(
        "SELECT m.id, s.folder FROM messages m JOIN message_sources s ON s.message = m.id WHERE m.message_id = ?",
        (a[1],),
    ).fetchall()
    assert row == [(moved_row[0], "Archive")]
    assert sync(store, box.connector()) == "ok"
    assert ids(store) == sorted(box.server_ids())


def test_idle_incremental_sync_touches_nothing(box: Mailbox) -> None:
    store = close_after_test(Store.memory())
    for _ in range(7):
        box.append("INBOX")
    sync(store, box.connector())
    conn = box.connector()
    batches = list(conn.sync(store.cursor(ACCOUNT)))
    assert batches == []  # nothing changed: no batch, the cursor stays
    assert conn.round_trips == 1  # LIST ... RETURN (STATUS ...): one command in all
    box.tweaks["use_extensions"] = False
    conn = box.connector()
    assert list(conn.sync(store.cursor(ACCOUNT))) == []
    assert conn.round_trips == 1 + 1  # LIST, then one STATUS per folder (INBOX)


def test_junk_trash_drafts_are_skipped_and_folders_option(box: Mailbox) -> None:
    store = close_after_test(Store.memory())
    keep = box.append("INBOX")
    for f in ("Junk", "Trash", "Drafts"):
        box.append(f)
    work = box.append("Work")
    assert sync(store, box.connector()) == "ok"
    assert ids(store) == sorted([keep, work])
    box.extra = 'exclude_folders = ["Work"]\n'
    assert sync(store, box.connector()) == "ok"
    assert ids(store) == [keep]  # a folder that left the selection is forgotten
    box.extra = 'folders = ["Work", "Junk"]\n'
    assert sync(store, box.connector()) == "ok"
    assert len(ids(store)) == 2 and keep not in ids(store)
    box.extra = 'folders = ["Nope"]\n'
    outcome = run_account(store, box.connector())
    assert outcome.state == "failing" and "Nope" in (outcome.error or "")
    assert "INBOX" in (outcome.error or "")


def test_uidvalidity_change_resyncs_without_duplicates(box: Mailbox) -> None:
    store = close_after_test(Store.memory())
    mids = [box.append("INBOX") for _ in range(8)]
    sync(store, box.connector())
    old = {r[0] for r in store.conn.execute("SELECT provider_id FROM message_sources")}
    box.reset_uidvalidity("INBOX")
    mids.append(box.append("INBOX"))
    assert sync(store, box.connector()) == "ok"
    assert ids(store) == sorted(mids)
    new = {r[0] for r in store.conn.execute("SELECT provider_id FROM message_sources")}
    assert not (old & new), "provider ids of the old UIDVALIDITY must be gone"
    assert store.counts()["messages"] == len(mids)


def test_uidvalidity_change_of_recreated_folder(box: Mailbox) -> None:
    store = close_after_test(Store.memory())
    mids = [box.append("Projects") for _ in range(4)]
    sync(store, box.connector())
    box.admin.select_folder("Projects")
    raw = [d[b"RFC822"] for d in box.admin.fetch(box.admin.search("ALL"), ["RFC822"]).values()]
    box.admin.close_folder()
    box.admin.delete_folder("Projects")
    box.admin.create_folder("Projects")
    for r in raw[1:]:
        box.admin.append("Projects", r)
    assert sync(store, box.connector()) == "ok"
    assert ids(store) == sorted(mids[1:])


def test_connection_dropped_mid_fetch_is_resumed(box: Mailbox) -> None:
    store = close_after_test(Store.memory())
    mids = [box.append("INBOX") for _ in range(30)]
    box.tweaks["fetch_chunk"] = 30
    box.proxy.cut_after = 3000  # the single FETCH response is larger than this
    conn = box.connector()
    assert sync(store, conn) == "ok"
    assert box.proxy.cuts == 1 and box.proxy.connections >= 2
    assert ids(store) == sorted(mids)


def test_a_connection_cut_mid_fetch_again_and_again_is_told_in_words(
    box: Mailbox, caplog: pytest.LogCaptureFixture
) -> None:
    """Not "socket error: unterminated line: b'* 209 FETCH ...'": what happened, in words, with
    the protocol detail at debug level only (issue 15, item 9)."""
    import logging

    caplog.set_level(logging.INFO, logger="keepwarm")
    store = close_after_test(Store.memory())
    for _ in range(30):
        box.append("INBOX")
    box.tweaks["fetch_chunk"] = 30
    box.proxy.cut_after, box.proxy.keep_cutting = 3000, True
    outcome = run_account(store, box.connector())
    assert outcome.state == "backoff" and box.proxy.cuts == 3
    assert outcome.error in (  # where the 3000th byte falls depends on the TLS handshake
        f"the connection to 127.0.0.1 keeps failing ({why}); keepwarm will retry later"
        for why in (
            "the server closed the connection in the middle of a response",
            "the server closed the connection",
        )
    ), outcome.error
    shown = outcome.error + caplog.text
    for raw in ("b'", "FETCH", "socket error", "abort", "unterminated"):
        assert raw not in shown, raw
    box.proxy.keep_cutting, box.proxy.cut_after = False, None
    assert sync(store, box.connector()) == "ok" and len(ids(store)) == 30


def test_a_refused_command_is_told_in_words() -> None:
    import imaplib

    from keepwarm.connectors.imap.parsing import describe_error, server_words

    exc = imaplib.IMAP4.abort("socket error: unterminated line: b'* 209 FETCH (UID 7 BODY[HEA'")
    assert describe_error(exc) == "the server closed the connection in the middle of a response"
    assert (
        describe_error(imaplib.IMAP4.abort("socket error: EOF"))
        == "the server closed the connection"
    )
    assert describe_error(ConnectionResetError(104, "Connection reset by peer")) == (
        "the connection was reset"
    )
    text = "select failed: b'[NONEXISTENT] Mailbox doesn\\'t exist: Old'"
    assert server_words(text) == "Mailbox doesn't exist: Old"
    assert server_words("UID command error: BAD [b'Error in IMAP command: Invalid uidset']") == (
        "Error in IMAP command: Invalid uidset"
    )


def test_connection_that_keeps_dropping_backs_off_and_loses_nothing(box: Mailbox) -> None:
    store = close_after_test(Store.memory())
    mids = [box.append("INBOX") for _ in range(12)]
    seen: list[Batch] = []
    box.proxy.refuse = False

    conn = box.connector()
    it = conn.sync(None)
    first = next(it)
    seen.append(first)
    store.apply_batch(ACCOUNT, "imap", first)
    it.close()
    box.proxy.refuse = True
    outcome = run_account(store, box.connector())
    assert outcome.state == "backoff" and "127.0.0.1" in (outcome.error or "")
    box.proxy.refuse = False
    assert sync(store, box.connector()) == "ok"
    assert ids(store) == sorted(mids)


def test_wrong_password_parks_account_with_fix(box: Mailbox) -> None:
    store = close_after_test(Store.memory())
    box.append("INBOX")
    box.write_password("not-it")
    outcome = run_account(store, box.connector())
    assert outcome.state == "auth_required"
    assert str(box.password_file) in (outcome.fix or "") and "keepwarm doctor" in (
        outcome.fix or ""
    )
    assert box.user not in (outcome.error or "")


def test_password_file_problems_are_reported(box: Mailbox) -> None:
    store = close_after_test(Store.memory())
    box.password_file.chmod(0o644)
    outcome = run_account(store, box.connector())
    assert outcome.state == "auth_required" and "chmod 600" in (outcome.fix or "")
    box.password_file.unlink()
    outcome = run_account(store, box.connector())
    assert outcome.state == "auth_required" and "does not exist" in (outcome.error or "")


@pytest.mark.parametrize("security", ["tls", "starttls", "none"])
def test_tls_starttls_and_loopback_plaintext(box: Mailbox, security: str) -> None:
    store = close_after_test(Store.memory())
    mid = box.append("INBOX")
    box.security = security
    box.port = {"tls": box.server.tls_port, "starttls": box.server.port, "none": box.server.port}[
        security
    ]
    assert sync(store, box.connector()) == "ok"
    assert ids(store) == [mid]


def test_untrusted_certificate_is_a_clear_error(box: Mailbox) -> None:
    box.append("INBOX")
    box.security, box.port, box.ca_file = "tls", box.server.tls_port, None
    outcome = run_account(close_after_test(Store.memory()), box.connector())
    assert outcome.state == "failing"
    assert "ca_file" in (outcome.error or "") and "certificate" in (outcome.error or "")


def test_tls_against_a_plain_port_is_a_clear_error(box: Mailbox) -> None:
    box.security, box.port = "tls", box.server.port
    outcome = run_account(close_after_test(Store.memory()), box.connector())
    assert outcome.state == "failing" and "starttls" in (outcome.error or "")


def test_never_sets_seen_and_never_fetches_bodies(box: Mailbox) -> None:
    for _ in range(3):
        box.append("INBOX")
    sync(close_after_test(Store.memory()), box.connector())
    box.admin.select_folder("INBOX", readonly=True)
    assert len(box.admin.search("UNSEEN")) == 3
    deadline = time.monotonic() + 5
    lines: list[str] = []
    while not lines and time.monotonic() < deadline:
        lines = [
            ln
            for ln in box.server.log().splitlines()
            if f"imap({box.user})" in ln and "body_count" in ln
        ]
        time.sleep(0.05)
    assert lines and all("body_count=0 " in ln for ln in lines)


def test_backfill_window_limits_the_first_sync_only(box: Mailbox) -> None:
    store = close_after_test(Store.memory())
    old = datetime.now(UTC) - timedelta(days=400)
    box.append("INBOX", date=old)
    recent = box.append("INBOX", date=datetime.now(UTC) - timedelta(days=3))
    box.extra = 'backfill = "90d"\n'
    assert sync(store, box.connector()) == "ok"
    assert ids(store) == [recent]
    late = box.append("INBOX", date=old + timedelta(hours=1))  # an old message filed today
    assert sync(store, box.connector()) == "ok"
    assert ids(store) == sorted([recent, late])


def test_hostile_headers_are_handled(box: Mailbox) -> None:
    store = close_after_test(Store.memory())
    good = box.append("INBOX")
    hostile = [
        b"From: =?utf-8?b?////?= <x@example.com>\r\nTo: \x00\x01 <y@example.com>\r\nMessage-ID: <h1@x>\r\nDate: Thu, 1 Jan 1706 00:00:00 +0000\r\n\r\nb\r\n",
        b"Subject: "
        + b"A" * 200_000
        + b"\r\nFrom: z@example.com\r\nMessage-ID: <h2@x>\r\n\r\nb\r\n",
        b"From: "
        + b", ".join(b"p%d@example.com" % i for i in range(3000))
        + b"\r\nMessage-ID: <h3@x>\r\n\r\nb\r\n",
        b"No-Colon-Header\r\nFrom:\r\nTo:\r\n\r\n",
        b"From: \xff\xfe <bad@example.com>\r\nSubject: =?x-unknown?q?caf=E9?=\r\nMessage-ID: <<<h5@x>>>\r\nDate: garbage\r\n\r\n",
    ]
    for raw in hostile:
        box.admin.append("INBOX", raw)
    outcome = run_account(store, box.connector())
    assert outcome.state == "ok"
    stored = ids(store)
    assert good in stored
    assert outcome.added + sum(outcome.skipped.values()) == 1 + len(hostile)
    assert outcome.skipped.get("no addresses", 0) >= 1


def test_a_folder_deleted_on_the_server_stays_in_history_and_is_reported(box: Mailbox) -> None:
    """Deleting a folder on the server silently removed its 822 messages (issue 15, item 11):
    now they stay, and the account says what happened."""
    store = close_after_test(Store.memory())
    keep = box.append("INBOX")
    old = [box.append("Old") for _ in range(3)]
    sync(store, box.connector())
    box.admin.delete_folder("Old")
    outcome = run_account(store, box.connector())
    assert outcome.state == "ok" and outcome.kept == 3 and outcome.deleted == 0
    assert ids(store) == [keep]  # present at the source
    history = {r[0] for r in store.conn.execute("SELECT message_id FROM messages")}
    assert history == {keep, *old}
    assert [n.text for n in store.notices(ACCOUNT)] == [
        "folder Old is gone from the server; its 3 messages stay in your history"
    ]
    assert run_account(store, box.connector()).kept == 0  # reported once


def test_a_folder_the_config_no_longer_selects_is_removed(box: Mailbox) -> None:
    store = close_after_test(Store.memory())
    keep = box.append("INBOX")
    box.append("Newsletters")
    sync(store, box.connector())
    box.extra = 'exclude_folders = ["Newsletters"]\n'
    outcome = run_account(store, box.connector())
    assert (outcome.deleted, outcome.kept) == (1, 0)
    assert [r[0] for r in store.conn.execute("SELECT message_id FROM messages")] == [keep]
    assert store.notices(ACCOUNT) == []


def test_mail_moved_to_junk_is_removed_and_deleted_mail_is_kept(box: Mailbox) -> None:
    store = close_after_test(Store.memory())
    spam, deleted, moved, kept = (box.append("INBOX") for _ in range(4))
    sync(store, box.connector())
    box.move("INBOX", "Junk", spam)
    box.move("INBOX", "Archive", moved)
    box.delete("INBOX", deleted)
    outcome = run_account(store, box.connector())
    assert outcome.state == "ok" and (outcome.kept, outcome.deleted) == (1, 2)
    assert ids(store) == sorted([moved, kept])
    history = {r[0] for r in store.conn.execute("SELECT message_id FROM messages")}
    assert history == {moved, kept, deleted}


def test_store_subjects_off_keeps_no_subject(box: Mailbox) -> None:
    box.append("INBOX")
    text = box.config_text().replace(
        "[[accounts]]", "[privacy]\nstore_subjects = false\n\n[[accounts]]"
    )
    config = loads(text)
    conn = make_connector(config.account(ACCOUNT), config)
    store = close_after_test(Store.memory())
    assert sync(store, conn) == "ok"
    assert store.conn.execute("SELECT subject FROM messages").fetchall() == [(None,)]


def test_plain_rfc3501_server_path(box: Mailbox) -> None:
    """Without ESEARCH (use_extensions off) the same results come from plain SEARCH."""
    store = close_after_test(Store.memory())
    box.tweaks["use_extensions"] = False
    mids = [box.append("INBOX") for _ in range(6)]
    sync(store, box.connector())
    box.delete("INBOX", mids[2])
    assert sync(store, box.connector()) == "ok"
    assert ids(store) == sorted(mids[:2] + mids[3:])


def test_a_silent_server_times_out_and_backs_off(box: Mailbox) -> None:
    box.append("INBOX")
    box.proxy.stall = True
    box.extra = 'timeout = "0.3s"\n'
    started = time.monotonic()
    outcome = run_account(close_after_test(Store.memory()), box.connector())
    assert outcome.state == "backoff" and "timed out" in (outcome.error or "")
    assert box.proxy.connections == 3  # the first try and two reconnects
    assert time.monotonic() - started < 30


def test_connection_dropped_during_the_tls_handshake_is_retried(box: Mailbox) -> None:
    mid = box.append("INBOX")
    proxy = TcpProxy(box.server.tls_port).start()
    try:
        proxy.cut_after = 200  # inside the server's TLS handshake messages
        box.security, box.port = "tls", proxy.port
        store = close_after_test(Store.memory())
        assert sync(store, box.connector()) == "ok"
        assert proxy.cuts == 1 and ids(store) == [mid]
    finally:
        proxy.stop()
