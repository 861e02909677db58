"""A re-scan of a maildir where nothing changed: directory stamps instead of a full listing.

The last full scan remembers every directory's mtime and inode; the next scan stats only those
directories and stops there when none changed. These tests check that no change is ever missed
for it: a file added to one folder, a directory modified in the same clock tick as the scan
(coarse mtime granularity), a file rewritten in place, a file that could not be read.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from leakcheck import close_after_test
from localmail import make_message, write_maildir_message

from keepwarm.connectors.local import maildir as mod
from keepwarm.connectors.local.maildir import MaildirConnector
from keepwarm.daemon.store import Store
from keepwarm.daemon.sync import run_account

HOUR_AGO = time.time() - 3600


def build(root: Path) -> None:
    write_maildir_message(root, "1.M1.host:2,S", make_message(1).as_bytes())
    write_maildir_message(root / ".Work", "2.M1.host:2,", make_message(2).as_bytes())
    (root / "archive" / "2001").mkdir(parents=True)
    (root / "archive" / "2001" / "3.").write_bytes(make_message(3).as_bytes())


def settle(root: Path, when: float = HOUR_AGO) -> None:
    """Every directory under ``root`` last modified at ``when`` (long before the next scan)."""
    for folder, _dirs, _files in os.walk(root):
        os.utime(folder, (when, when))


def synced(root: Path) -> Store:
    """A store after one full scan of a settled maildir made by :func:`build`."""
    build(root)
    settle(root)
    store = close_after_test(Store.memory())
    assert sync(store, root) == 3
    return store


def stored(store: Store) -> set[str]:
    return {r[0] for r in store.conn.execute("SELECT provider_id FROM message_sources")}


def sync(store: Store, root: Path) -> int:
    outcome = run_account(store, MaildirConnector("a", root))
    assert outcome.state == "ok", outcome.error
    return outcome.added


def no_listing(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(self: mod.Lister) -> None:
        raise AssertionError("the maildir was listed again")

    monkeypatch.setattr(mod.Lister, "run", boom)


def test_nothing_changed_means_no_listing_and_no_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "Mail"
    store = synced(root)
    cursor = store.cursor("a")
    with monkeypatch.context() as m:
        no_listing(m)
        assert list(MaildirConnector("a", root).sync(cursor)) == []
        outcome = run_account(store, MaildirConnector("a", root))
        assert (outcome.state, outcome.batches, outcome.added) == ("ok", 0, 0)
    assert store.cursor("a") == cursor


def test_a_file_added_to_one_folder_is_found(tmp_path: Path) -> None:
    root = tmp_path / "Mail"
    store = synced(root)
    (root / "archive" / "2001" / "4.").write_bytes(make_message(4).as_bytes())
    assert sync(store, root) == 1
    assert "archive/2001/4." in stored(store)


def test_a_flag_change_or_a_move_to_another_folder_is_seen(tmp_path: Path) -> None:
    root = tmp_path / "Mail"
    store = synced(root)
    os.rename(root / "cur" / "1.M1.host:2,S", root / "cur" / "1.M1.host:2,RS")
    assert sync(store, root) == 0 and "1.M1.host" in stored(store)
    settle(root)
    sync(store, root)  # the settled folders remembered again
    os.rename(root / "cur" / "1.M1.host:2,RS", root / ".Work" / "cur" / "1.M1.host:2,RS")
    sync(store, root)
    assert ".Work/1.M1.host" in stored(store) and "1.M1.host" not in stored(store)


def test_a_folder_changed_in_the_same_clock_tick_as_the_scan_is_listed_again(
    tmp_path: Path,
) -> None:
    """On a file system with coarse timestamps (FAT: 2 s), a folder modified in the tick of
    the scan keeps its mtime when it is modified again: such stamps are never trusted."""
    root = tmp_path / "Mail"
    build(root)
    settle(root)
    now = time.time()
    os.utime(root / "archive" / "2001", (now, now))  # modified just before the scan
    store = close_after_test(Store.memory())
    sync(store, root)
    (root / "archive" / "2001" / "4.").write_bytes(make_message(4).as_bytes())
    os.utime(root / "archive" / "2001", (now, now))  # the clock did not tick: same mtime
    assert sync(store, root) == 1
    assert "archive/2001/4." in stored(store)


def test_a_new_maildir_inside_a_hidden_folder_is_found(tmp_path: Path) -> None:
    root = tmp_path / "Mail"
    build(root)
    (root / ".Drafts").mkdir()  # not (yet) a maildir: nothing to read in it
    settle(root)
    store = close_after_test(Store.memory())
    sync(store, root)
    write_maildir_message(root / ".Drafts", "5.M1.host:2,", make_message(5).as_bytes())
    assert sync(store, root) == 1 and ".Drafts/5.M1.host" in stored(store)


def test_a_file_rewritten_in_place_is_seen_by_the_daily_full_scan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "Mail"
    store = synced(root)
    path = root / "archive" / "2001" / "3."
    path.write_bytes(make_message(3, subject="Rewritten in place").as_bytes())
    os.utime(path, (1_800_000_000, 1_800_000_000))
    later = time.time() + mod.FULL_SCAN_EVERY + 60
    monkeypatch.setattr(mod.time, "time", lambda: later)
    sync(store, root)
    subjects = {r[0] for r in store.conn.execute("SELECT subject FROM messages")}
    assert "Rewritten in place" in subjects


def test_a_file_that_could_not_be_read_is_tried_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "Mail"
    build(root)
    settle(root)
    real = mod.read_head

    def fails(path: str | Path) -> bytes:
        if str(path).endswith("3."):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    store = close_after_test(Store.memory())
    with monkeypatch.context() as m:
        m.setattr(mod, "read_head", fails)
        assert sync(store, root) == 2
    assert sync(store, root) == 1 and "archive/2001/3." in stored(store)


def test_a_damaged_directory_record_is_one_full_rescan(tmp_path: Path) -> None:
    root = tmp_path / "Mail"
    store = synced(root)
    cursor = store.cursor("a")
    assert cursor is not None
    damaged = cursor.replace('"stamps":"', '"stamps":"!')
    assert damaged != cursor
    with store.atomic():
        store.conn.execute("UPDATE accounts SET cursor = ? WHERE name = 'a'", (damaged,))
    outcome = run_account(store, MaildirConnector("a", root))
    assert outcome.state == "ok" and outcome.full_resync
    assert stored(store) == {"1.M1.host", ".Work/2.M1.host", "archive/2001/3."}
