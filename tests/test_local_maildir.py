"""The maildir connector: the shared contract, layouts, incremental re-scans and bad input."""

from __future__ import annotations

import os
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from contract import ConnectorContract, stored_ids
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from leakcheck import close_after_test
from localmail import MaildirWorld, make_message, write_maildir_message

from keepwarm.connectors.base import Batch, MessageMeta, SourceError
from keepwarm.connectors.local.maildir import MaildirConnector
from keepwarm.daemon.store import Store
from keepwarm.daemon.sync import run_account


class TestMaildirContract(ConnectorContract):
    has_auth = False
    has_transient_errors = False
    has_cursor_expiry = False

    @pytest.fixture
    def world(self, tmp_path: Path) -> MaildirWorld:
        return MaildirWorld(tmp_path / "Mail")


def collect(connector: MaildirConnector, cursor: str | None = None) -> list[Batch]:
    return list(connector.sync(cursor))


def messages(batches: list[Batch]) -> list[MessageMeta]:
    return [m for b in batches for m in b.messages]


def skipped(batches: list[Batch]) -> dict[str, int]:
    out: dict[str, int] = {}
    for b in batches:
        for k, v in b.skipped.items():
            out[k] = out.get(k, 0) + v
    return out


def sync_store(store: Store, connector: MaildirConnector) -> tuple[int, dict[str, int]]:
    outcome = run_account(store, connector)
    assert outcome.state == "ok", outcome.error
    return outcome.added, outcome.skipped


def test_enron_style_archive_nested_folders_and_maildir_layouts(tmp_path: Path) -> None:
    root = tmp_path / "archive"
    (root / "allen-p" / "sent").mkdir(parents=True)
    (root / "allen-p" / "inbox" / "projects").mkdir(parents=True)
    (root / "allen-p" / "sent" / "1.").write_bytes(make_message(1).as_bytes())
    (root / "allen-p" / "inbox" / "1.").write_bytes(make_message(2).as_bytes())
    (root / "allen-p" / "inbox" / "projects" / "7.").write_bytes(make_message(3).as_bytes())
    write_maildir_message(root / "bob", "123.M1.host:2,S", make_message(4).as_bytes())
    write_maildir_message(root / "bob", "124.M1.host", make_message(5).as_bytes(), sub="new")
    write_maildir_message(root / "bob" / ".Sent", "125.M1.host:2,", make_message(6).as_bytes())
    (root / "bob" / "tmp" / "126.M1.host").write_bytes(make_message(7).as_bytes())  # in delivery
    (root / "bob" / "dovecot-uidlist").write_text("3 V1 N1\n")
    batches = collect(MaildirConnector("a", root))
    got = {m.provider_id: m.folder for m in messages(batches)}
    assert got == {
        "allen-p/sent/1.": "allen-p/sent",
        "allen-p/inbox/1.": "allen-p/inbox",
        "allen-p/inbox/projects/7.": "allen-p/inbox/projects",
        "bob/123.M1.host": "bob",
        "bob/124.M1.host": "bob",
        "bob/.Sent/125.M1.host": "bob/Sent",
    }
    assert skipped(batches) == {}


def test_incremental_rescan_adds_new_files_and_deletes_vanished_ones(tmp_path: Path) -> None:
    root = tmp_path / "Mail"
    paths = [
        write_maildir_message(root, f"{i}.M1.host", make_message(i).as_bytes()) for i in range(4)
    ]
    store = close_after_test(Store.memory())
    assert sync_store(store, MaildirConnector("a", root))[0] == 4
    # a flag change renames the file and moving new/ -> cur/ keeps the name: neither is new mail
    paths[0].rename(paths[0].with_name(paths[0].name + ":2,S"))
    write_maildir_message(root, "9.M1.host", make_message(9).as_bytes())
    paths[1].unlink()
    outcome = run_account(store, MaildirConnector("a", root))
    assert (outcome.added, outcome.deleted, outcome.kept) == (1, 0, 1)
    assert stored_ids(store, "a") == sorted(f"msg{i}@test.example" for i in (0, 2, 3, 9))
    assert store.counts()["messages"] == 5  # the deleted file's message stays in the history
    again = run_account(store, MaildirConnector("a", root))
    assert (again.added, again.deleted, again.batches) == (0, 0, 0)


def test_moves_spam_and_vanished_folders(tmp_path: Path) -> None:
    """Moved to another folder: one message, no history row. Moved to Junk: spam, removed. A
    folder that vanished as a whole: kept and reported (issue 15, item 11)."""
    root = tmp_path / "Mail"
    a = write_maildir_message(root, "1.M1.host:2,S", make_message(1).as_bytes())
    b = write_maildir_message(root, "2.M1.host:2,S", make_message(2).as_bytes())
    for i in (3, 4):
        write_maildir_message(root / ".Old", f"{i}.M1.host:2,S", make_message(i).as_bytes())
    store = close_after_test(Store.memory())
    assert sync_store(store, MaildirConnector("a", root))[0] == 4
    (root / ".Archive" / "cur").mkdir(parents=True)
    (root / ".Junk" / "cur").mkdir(parents=True)
    a.rename(root / ".Archive" / "cur" / a.name)
    b.rename(root / ".Junk" / "cur" / b.name)
    shutil.rmtree(root / ".Old")
    outcome = run_account(store, MaildirConnector("a", root))
    assert (outcome.added, outcome.merged, outcome.deleted, outcome.kept) == (0, 1, 2, 2)
    assert stored_ids(store, "a") == ["msg1@test.example"]
    kept = {r[0] for r in store.conn.execute("SELECT message_id FROM messages")}
    assert kept == {"msg1@test.example", "msg3@test.example", "msg4@test.example"}
    assert [n.text for n in store.notices("a")] == [
        "folder Old is gone; its 2 messages stay in your history"
    ]


def test_a_changed_file_replaces_its_record(tmp_path: Path) -> None:
    root = tmp_path / "Mail"
    path = write_maildir_message(root, "1.M1.host", make_message(1).as_bytes())
    store = close_after_test(Store.memory())
    sync_store(store, MaildirConnector("a", root))
    path.write_bytes(make_message(1, subject="Edited subject, longer").as_bytes())
    os.utime(path, (1_800_000_000, 1_800_000_000))
    run_account(store, MaildirConnector("a", root))
    rows = store.conn.execute("SELECT subject FROM messages").fetchall()
    assert rows == [("Edited subject, longer",)]


def test_missing_path_is_a_clear_source_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="does not exist"):
        collect(MaildirConnector("a", tmp_path / "nope"))
    outcome = run_account(
        close_after_test(Store.memory()), MaildirConnector("a", tmp_path / "nope")
    )
    assert outcome.state == "failing" and "does not exist" in (outcome.error or "")


def test_trash_and_spam_folders_are_skipped_and_counted_once(tmp_path: Path) -> None:
    root = tmp_path / "Mail"
    write_maildir_message(root, "1.M1.host", make_message(1).as_bytes())
    write_maildir_message(root / ".Trash", "2.M1.host", make_message(2).as_bytes())
    (root / "deleted_items").mkdir()
    (root / "deleted_items" / "1.").write_bytes(make_message(3).as_bytes())
    store = close_after_test(Store.memory())
    added, skips = sync_store(store, MaildirConnector("a", root))
    assert (added, skips) == (1, {"in trash or spam folder": 2})
    assert sync_store(store, MaildirConnector("a", root)) == (0, {})


# -- bad input ------------------------------------------------------------------------------------
def one(root: Path, name: str, data: bytes) -> Path:
    return write_maildir_message(root, name, data)


def test_binary_empty_garbled_and_truncated_files_are_skipped_with_reasons(tmp_path: Path) -> None:
    root = tmp_path / "Mail"
    one(root, "good.M1.host", make_message(1).as_bytes())
    one(root, "png.M1.host", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 40)
    one(root, "empty.M1.host", b"")
    one(root, "garbled.M1.host", "éàü garbage ¤¤ no headers at all\n".encode("latin-1") * 50)
    one(root, "trunc.M1.host", b"From: Bob <bob@example.com>\nTo: me@exa")
    batches = collect(MaildirConnector("a", root))
    got = {m.provider_id: m for m in messages(batches)}
    assert set(got) == {"good.M1.host", "trunc.M1.host"}
    trunc = got["trunc.M1.host"]
    assert trunc.sender is not None and trunc.sender.email == "bob@example.com"
    assert trunc.date_from_provider  # no Date header: the file's mtime
    assert skipped(batches) == {"binary file": 1, "no headers": 2}


def test_charsets_undeclared_and_misdeclared(tmp_path: Path) -> None:
    root = tmp_path / "Mail"
    head = b"From: J\xfcrgen <juergen@example.de>\nTo: me@example.com\nDate: Mon, 4 Mar 2024 10:00:00 +0100\n"
    one(root, "raw.M1.host", head + b"Subject: Gr\xfc\xdfe aus K\xf6ln\n\nbody\n")
    one(root, "misdeclared.M1.host", head + b"Subject: =?us-ascii?Q?Gr=FC=DFe?=\n\nbody\n")
    utf8_as_latin = "Grüße".encode().decode("latin-1").encode("latin-1")
    one(root, "utf8raw.M1.host", head + b"Subject: " + utf8_as_latin + b"\n\nbody\n")
    got = {m.provider_id: m for m in messages(collect(MaildirConnector("a", root)))}
    assert got["raw.M1.host"].subject == "Grüße aus Köln"
    assert got["raw.M1.host"].sender is not None and got["raw.M1.host"].sender.name == "Jürgen"
    assert got["misdeclared.M1.host"].subject == "Grüße"
    assert got["utf8raw.M1.host"].subject == "Grüße"


def test_missing_and_duplicate_message_ids(tmp_path: Path) -> None:
    root = tmp_path / "Mail"
    no_id = make_message(1)
    del no_id["Message-ID"]
    one(root, "noid.M1.host", no_id.as_bytes())
    # the same Message-ID reused for a different message (damaged exports do this)
    one(root, "dup1.M1.host", make_message(2, message_id="<same@x>").as_bytes())
    reused = make_message(3, message_id="<same@x>", sender="carol@other.example")
    one(root, "dup2.M1.host", reused.as_bytes())
    # a true copy filed in a second folder is one message with two sources
    write_maildir_message(
        root / ".Archive", "copy.M1.host", make_message(2, message_id="<same@x>").as_bytes()
    )
    store = close_after_test(Store.memory())
    added, skips = sync_store(store, MaildirConnector("a", root))
    assert skips == {}
    assert store.counts()["messages"] == 3 and store.counts()["message_sources"] == 4
    assert added == 3


def test_missing_and_absurd_dates_fall_back_or_skip(tmp_path: Path) -> None:
    root = tmp_path / "Mail"
    base = b"From: bob@example.com\nTo: me@example.com\nMessage-ID: <%d@x>\n"
    one(root, "nodate.M1.host", base % 1 + b"Subject: a\n\nbody\n")
    received = (
        b"Received: from mx.example.com by mx2.example.com; Tue, 05 Mar 2024 10:00:00 +0000\n"
    )
    one(root, "rcvd.M1.host", received + base % 2 + b"Date: Mon, 1 Jan 1706 00:00:00 +0000\n\nb\n")
    hopeless = one(root, "hopeless.M1.host", base % 3 + b"Date: 31 Dec 1979 16:00:00 -0800\n\nb\n")
    future = one(root, "future.M1.host", base % 4 + b"Date: Sat, 1 Jan 2095 00:00:00 +0000\n\nb\n")
    for p in (hopeless, future):
        os.utime(p, (0, 0))  # the file time is absurd too (1970)
    mtime = datetime(2023, 6, 1, tzinfo=UTC).timestamp()
    os.utime(root / "cur" / "nodate.M1.host", (mtime, mtime))
    batches = collect(MaildirConnector("a", root))
    got = {m.provider_id: m for m in messages(batches)}
    assert got["nodate.M1.host"].date == datetime(2023, 6, 1, tzinfo=UTC)
    assert got["rcvd.M1.host"].date == datetime(2024, 3, 5, 10, tzinfo=UTC)
    assert skipped(batches) == {"unparseable date": 2}


def test_megabyte_header_block_is_cut_and_parsed(tmp_path: Path) -> None:
    root = tmp_path / "Mail"
    junk = b"".join(b"X-Junk-%d: %s\n" % (i, b"a" * 900) for i in range(1200))  # ~1 MB
    msg = make_message(1).as_bytes()
    one(root, "huge.M1.host", msg.replace(b"\nTo:", b"\n" + junk + b"To:", 1))
    one(root, "huge2.M1.host", junk + msg)
    batches = collect(MaildirConnector("a", root))
    got = {m.provider_id: m for m in messages(batches)}
    assert got["huge.M1.host"].sender is not None
    assert "huge2.M1.host" not in got  # From/To lie beyond the cap
    assert skipped(batches) == {"no addresses": 1}


def test_unreadable_files_are_counted_and_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from keepwarm.connectors.local import maildir as mod

    root = tmp_path / "Mail"
    one(root, "ok.M1.host", make_message(1).as_bytes())
    locked = one(root, "locked.M1.host", make_message(2).as_bytes())
    (root / "cur" / "dangling.M1.host").symlink_to(tmp_path / "gone")
    real = mod.read_head

    def fake(path: str | Path) -> bytes:
        if str(path) == str(locked):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(mod, "read_head", fake)
    store = close_after_test(Store.memory())
    assert sync_store(store, MaildirConnector("a", root)) == (1, {"unreadable": 2})
    monkeypatch.setattr(mod, "read_head", real)  # permissions fixed: picked up next time
    assert sync_store(store, MaildirConnector("a", root)) == (1, {"unreadable": 1})


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_chmod_000_file_and_folder_are_unreadable(tmp_path: Path) -> None:
    root = tmp_path / "Mail"
    one(root, "ok.M1.host", make_message(1).as_bytes())
    one(root, "locked.M1.host", make_message(2).as_bytes()).chmod(0)
    (root / "closed").mkdir()
    (root / "closed").chmod(0)
    try:
        batches = collect(MaildirConnector("a", root))
        assert len(messages(batches)) == 1
        assert skipped(batches) == {"unreadable": 2}
    finally:
        (root / "closed").chmod(0o700)


def test_symlink_loops_are_counted_not_followed(tmp_path: Path) -> None:
    root = tmp_path / "Mail"
    (root / "inbox").mkdir(parents=True)
    (root / "inbox" / "1.").write_bytes(make_message(1).as_bytes())
    (root / "inbox" / "up").symlink_to("..")
    (root / "self").symlink_to("self")
    (root / "link-to-inbox").symlink_to("inbox")  # the same folder twice
    batches = collect(MaildirConnector("a", root))
    assert [m.provider_id for m in messages(batches)] == ["inbox/1."]
    assert skipped(batches) == {"symlink loop": 3}


def test_body_is_never_read_into_the_record(tmp_path: Path) -> None:
    root = tmp_path / "Mail"
    body = "From: evil@example.com\nSubject: secret body line\n\nsecret text\n"
    one(root, "1.M1.host", make_message(1, body=body).as_bytes())
    (m,) = messages(collect(MaildirConnector("a", root)))
    assert "secret" not in repr(m) and "evil" not in repr(m)


def test_damaged_cursor_means_one_full_rescan_without_duplicates(tmp_path: Path) -> None:
    root = tmp_path / "Mail"
    for i in range(3):
        one(root, f"{i}.M1.host", make_message(i).as_bytes())
    store = close_after_test(Store.memory())
    sync_store(store, MaildirConnector("a", root))
    with store.atomic():
        store.conn.execute("UPDATE accounts SET cursor = '{\"v\": 99}'")
    outcome = run_account(store, MaildirConnector("a", root))
    assert outcome.state == "ok" and outcome.full_resync and outcome.added == 0
    assert len(stored_ids(store, "a")) == 3


# -- property: importing is idempotent ------------------------------------------------------------
_senders = st.sampled_from(["alice@example.com", "Bob <bob@example.org>", "carol@example.net"])
_spec = st.tuples(
    st.integers(0, 40),  # message number: repeats make copies of one message
    _senders,
    st.booleans(),  # has a Message-ID
    st.sampled_from(["", "Re: ", "Fwd: "]),
    st.sampled_from(["cur", "new"]),
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_spec, min_size=1, max_size=12), st.integers(1, 5))
def test_importing_twice_or_rescanning_is_idempotent(
    specs: list[tuple[int, str, bool, str, str]], batch_size: int
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "Mail"
        for i, (n, sender, has_id, prefix, sub) in enumerate(specs):
            msg = make_message(n, sender=sender, subject=f"{prefix}topic {n % 7}")
            if not has_id:
                del msg["Message-ID"]
            write_maildir_message(
                root / (".F" if i % 2 else ""), f"{i}.M.host", msg.as_bytes(), sub
            )
        store = close_after_test(Store.memory())
        first = run_account(store, MaildirConnector("a", root, batch_size=batch_size))
        snapshot = store.counts()
        assert first.added == snapshot["messages"]
        second = run_account(store, MaildirConnector("a", root, batch_size=batch_size))
        assert (second.added, second.deleted) == (0, 0) and store.counts() == snapshot
        # a fresh import of the same folder under the same account, from no cursor
        store.clear_cursor("a")
        third = run_account(store, MaildirConnector("a", root, batch_size=batch_size))
        assert (third.added, third.deleted) == (0, 0) and store.counts() == snapshot


def test_a_nul_byte_in_the_body_does_not_drop_the_message(tmp_path: Path) -> None:
    """Binary or not is decided on the header block, not on the first 4 KB (issue 15, item 7)."""
    root = tmp_path / "Mail"
    data = make_message(1, body="short body\n").as_bytes()
    one(root, "nul.M1.host", data.replace(b"short body", b"short\x00body"))
    nul_header = make_message(2).as_bytes().replace(b"Subject: ", b"Subject: a\x00", 1)
    one(root, "nulhdr.M1.host", nul_header)
    batches = collect(MaildirConnector("a", root))
    got = {m.provider_id: m for m in messages(batches)}
    assert set(got) == {"nul.M1.host", "nulhdr.M1.host"}, skipped(batches)
    assert got["nulhdr.M1.host"].subject == "aMessage number 2"
    assert skipped(batches) == {}


# -- the cursor: written now and then, so its bytes grow linearly ---------------------------------
def cursor_bytes(root: Path, n: int, batch_size: int = 10) -> tuple[int, int]:
    """Bytes of every cursor an import of ``n`` new files writes, and of the last one."""
    for i in range(len(list(root.glob("cur/*"))), n):
        one(root, f"{i}.M1.host", make_message(i).as_bytes())
    batches = collect(MaildirConnector("a", root, batch_size=batch_size))
    written = [b.cursor for b in batches if not b.keep_cursor]
    assert written and written[-1] is not None and not batches[-1].keep_cursor
    return sum(len(c or "") for c in written), len(written[-1])


def test_cursor_bytes_written_over_an_import_grow_linearly(tmp_path: Path) -> None:
    """Each batch used to write every file's stamp so far: 200 batches of 10 files wrote 2.3 MB
    of cursors, 309 times the last one (and 4 times as much for twice the files). A batch now
    writes the cursor when the entries added since the last one written reach a share of it:
    76 KB, 10 times the last one."""
    small, _ = cursor_bytes(tmp_path / "small", 1000)
    total, last = cursor_bytes(tmp_path / "big", 2000)
    assert total < 15 * last, (total, last)
    assert total < 3 * small, (total, small)


def dump(store: Store) -> tuple[list[tuple[object, ...]], ...]:
    """What the store keeps of account ``a``: its sources and its history rows."""
    present = store.conn.execute(
        """SELECT s.provider_id, s.folder, m.message_id, m.subject FROM message_sources s
           JOIN messages m ON m.id = s.message WHERE s.account = 'a' ORDER BY 1"""
    ).fetchall()
    gone = store.conn.execute(
        """SELECT m.message_id, g.folder, g.reason FROM gone_message_sources g
           JOIN messages m ON m.id = g.message ORDER BY 1, 2"""
    ).fetchall()
    messages = store.conn.execute("SELECT message_id FROM messages ORDER BY 1").fetchall()
    return present, gone, messages


def change_maildir(root: Path) -> None:
    """New files, deleted ones, files moved to another folder, files changed in place."""
    for i in range(80, 110):
        one(root / (".F" if i % 2 else ""), f"{i}.M1.host", make_message(i).as_bytes())
    for i in range(0, 12):
        (root / "cur" / f"{i}.M1.host").unlink()
    for i in range(12, 20):
        (root / "cur" / f"{i}.M1.host").rename(root / ".Moved" / "cur" / f"{i}.M1.host")
    for i in range(20, 25):
        msg = make_message(i, subject=f"Edited message {i}, longer than before")
        (root / "cur" / f"{i}.M1.host").write_bytes(msg.as_bytes())


def test_an_import_killed_after_any_batch_resumes_to_the_same_store(tmp_path: Path) -> None:
    """Killed after any batch (stored with its cursor, or keeping the last one written), of a
    first import or of a re-scan with new, deleted, moved and changed files: the next run ends
    with exactly what an uninterrupted import stores, nothing twice."""
    root = tmp_path / "Mail"
    for i in range(80):
        one(root, f"{i}.M1.host", make_message(i).as_bytes())
    (root / ".Moved" / "cur").mkdir(parents=True)

    def run(store: Store) -> list[Batch]:
        batches: list[Batch] = []
        outcome = run_account(
            store,
            MaildirConnector("a", root, batch_size=4),
            on_batch=lambda _a, _p, b: batches.append(b),
        )
        assert outcome.state == "ok", outcome.error
        return batches

    reference = close_after_test(Store.memory())
    first = run(reference)
    change_maildir(root)
    second = run(reference)
    expected = dump(reference)
    for before, batches in (([], first), (first, second)):
        assert any(b.keep_cursor for b in batches) and len(batches) > 10
        for k in range(1, len(batches)):
            store = close_after_test(Store.memory())
            for b in before + batches[:k]:  # as if killed after batch k
                store.apply_batch("a", "maildir", b)
            run(store)
            if before:
                assert dump(store) == expected, f"re-scan killed after batch {k}"
            else:
                assert dump(store)[0] == expected[0], f"import killed after batch {k}"
