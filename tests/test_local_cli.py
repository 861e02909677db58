"""keepwarm import: summary lines, stable account names, no config, interruption and kill -9."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner
from leakcheck import close_after_test
from localmail import make_message, write_maildir_message

from keepwarm.connectors import registry
from keepwarm.daemon.cli import cli
from keepwarm.daemon.commands.local import ImportKinds, default_account_name
from keepwarm.daemon.store import Store


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        textwrap.dedent(
            f"""\
            [me]
            name = "Me"
            addresses = ["me@example.com"]
            timezone = "Europe/Berlin"
            [store]
            path = "{tmp_path / "kw.db"}"
            """
        )
    )
    return path


def maildir(root: Path, n: int, start: int = 0) -> Path:
    for i in range(start, start + n):
        write_maildir_message(root, f"{i}.M1.host:2,S", make_message(i).as_bytes())
    junk = root / "cur" / "junk.M1.host"
    if not junk.exists():
        junk.write_bytes(b"\x00\x01\x02binary")
    return root


def test_import_prints_the_summary_and_a_rerun_adds_nothing(cfg: Path, tmp_path: Path) -> None:
    root = maildir(tmp_path / "Mail", 5)
    runner = CliRunner()
    first = runner.invoke(cli, ["--config", str(cfg), "import", "maildir", str(root)])
    assert first.exit_code == 0, first.output
    assert first.output.strip() == "5 imported, 1 skipped: 1 binary file"
    second = runner.invoke(cli, ["--config", str(cfg), "import", "maildir", str(root)])
    assert second.exit_code == 0 and second.output.strip() == "0 imported"
    maildir(root, 2, start=5)
    third = runner.invoke(cli, ["--config", str(cfg), "import", "maildir", str(root)])
    assert third.output.strip() == "2 imported"
    store = close_after_test(Store.open(tmp_path / "kw.db"))
    assert store.counts()["messages"] == 7
    assert [s.name for s in store.account_states()] == [default_account_name("maildir", root)]


def test_import_kinds_are_the_importable_kinds_found_when_needed(cfg: Path) -> None:
    """The KIND choice: every kind that declares itself importable, in the registry's order,
    in the usage line, the help and the error for another word."""
    kinds = registry.kinds_where(lambda k: k.importable)
    assert ImportKinds().choices == kinds and "maildir" in kinds
    shown = "{" + "|".join(kinds) + "}"
    res = CliRunner().invoke(cli, ["--config", str(cfg), "import", "mail", "x"])
    assert res.exit_code == 2 and shown in res.output
    assert f"'mail' is not one of {', '.join(repr(k) for k in kinds)}" in res.output
    assert shown in CliRunner().invoke(cli, ["import", "--help"]).output


def test_default_account_name_is_stable_and_readable(tmp_path: Path) -> None:
    p = tmp_path / "All mail Including Spam and Trash.mbox"
    assert default_account_name("mbox", p) == default_account_name("mbox", p)
    assert default_account_name("mbox", p).startswith("mbox-all-mail-including-spam-")
    assert default_account_name("mbox", p) != default_account_name("mbox", tmp_path / "x.mbox")


def test_import_without_a_config_tells_the_user_to_run_init(tmp_path: Path) -> None:
    root = maildir(tmp_path / "Mail", 1)
    result = CliRunner().invoke(
        cli, ["--config", str(tmp_path / "none.toml"), "import", "maildir", str(root)]
    )
    assert result.exit_code == 2
    assert "keepwarm init" in result.output and "Traceback" not in result.output


def test_import_of_a_missing_path_is_a_clear_error(cfg: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["--config", str(cfg), "import", "maildir", str(tmp_path / "nope")]
    )
    assert result.exit_code == 2  # the user's input: a mistyped path
    assert "does not exist" in result.output and "Traceback" not in result.output
    (tmp_path / "a-file").write_text("not a maildir")
    result = CliRunner().invoke(
        cli, ["--config", str(cfg), "import", "maildir", str(tmp_path / "a-file")]
    )
    assert result.exit_code == 1 and "is not a folder" in result.output
    status = json.loads(CliRunner().invoke(cli, ["--config", str(cfg), "status", "--json"]).output)
    assert status["accounts"] == []  # neither import left an account behind


def test_named_account_of_another_kind_is_refused(cfg: Path, tmp_path: Path) -> None:
    root = maildir(tmp_path / "Mail", 1)
    runner = CliRunner()
    assert (
        runner.invoke(
            cli, ["--config", str(cfg), "import", "maildir", str(root), "--account", "x"]
        ).exit_code
        == 0
    )
    (tmp_path / "c.mbox").write_bytes(b"")
    result = runner.invoke(
        cli, ["--config", str(cfg), "import", "mbox", str(tmp_path / "c.mbox"), "--account", "x"]
    )
    assert result.exit_code == 2 and "already holds maildir data" in result.output


KILLER = """
import os, signal, sys
from keepwarm.connectors.local.maildir import MaildirConnector
from keepwarm.daemon.store import Store
from keepwarm.daemon.sync import run_account

class DiesAfterTwoBatches(MaildirConnector):
    def sync(self, cursor):
        for i, batch in enumerate(super().sync(cursor)):
            if i == 2:
                os.kill(os.getpid(), signal.SIGKILL)  # mid-import, batch 3 in hand
            yield batch

store = Store.open(sys.argv[1])
run_account(store, DiesAfterTwoBatches("acct", sys.argv[2], batch_size=10))
"""


def test_kill_9_mid_import_leaves_a_consistent_store_and_the_next_run_resumes(
    cfg: Path, tmp_path: Path
) -> None:
    root = maildir(tmp_path / "Mail", 45)
    db = tmp_path / "kw.db"
    proc = subprocess.run([sys.executable, "-c", KILLER, str(db), str(root)], check=False)
    assert proc.returncode == -9
    with contextlib.closing(sqlite3.connect(db)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert conn.execute("SELECT count(*) FROM messages").fetchone() == (20,)
    result = CliRunner().invoke(
        cli, ["--config", str(cfg), "import", "maildir", str(root), "--account", "acct"]
    )
    assert result.exit_code == 0, result.output
    assert result.output.startswith("25 imported")  # the first 20 were not read again
    store = close_after_test(Store.open(db))
    assert store.counts()["messages"] == 45 and store.counts()["message_sources"] == 45


def test_no_progress_output_when_not_a_terminal(cfg: Path, tmp_path: Path) -> None:
    root = maildir(tmp_path / "Mail", 3)
    env = {**os.environ, "KEEPWARM_CONFIG": str(cfg)}
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "keepwarm"), "import", "maildir", str(root)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "3 imported, 1 skipped: 1 binary file" and proc.stderr == ""


def test_first_ctrl_c_stops_after_the_batch_in_hand(tmp_path: Path) -> None:
    import signal
    import threading

    from keepwarm.connectors.local.maildir import MaildirConnector
    from keepwarm.daemon.commands.local import _stop_on_ctrl_c
    from keepwarm.daemon.sync import run_account

    root = maildir(tmp_path / "Mail", 30)
    store = close_after_test(Store.memory())
    stop = threading.Event()

    def press_ctrl_c(*_: object) -> None:
        if not stop.is_set():
            os.kill(os.getpid(), signal.SIGINT)

    with _stop_on_ctrl_c(stop):
        outcome = run_account(
            store, MaildirConnector("a", root, batch_size=10), on_batch=press_ctrl_c, stop=stop
        )
    assert stop.is_set() and outcome.state == "interrupted" and outcome.added == 10
    again = run_account(store, MaildirConnector("a", root, batch_size=10))
    assert again.state == "ok" and again.added == 20 and store.counts()["messages"] == 30


def test_import_mbox_and_rerun(cfg: Path, tmp_path: Path) -> None:
    from localmail import mbox_entry

    path = tmp_path / "All mail.mbox"
    path.write_bytes(b"".join(mbox_entry(make_message(i)) for i in range(4)))
    runner = CliRunner()
    first = runner.invoke(cli, ["--config", str(cfg), "import", "mbox", str(path)])
    assert first.exit_code == 0 and first.output.strip() == "4 imported", first.output
    second = runner.invoke(cli, ["--config", str(cfg), "import", "mbox", str(path)])
    assert second.output.strip() == "0 imported"


def test_import_ics_folder(cfg: Path, tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    soon = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y%m%dT%H%M%SZ")
    (tmp_path / "cal").mkdir()
    (tmp_path / "cal" / "a.ics").write_text(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:u1\r\n"
        f"DTSTART:{soon}\r\nORGANIZER:mailto:bob@example.com\r\n"
        "ATTENDEE;PARTSTAT=ACCEPTED:mailto:me@example.com\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    runner = CliRunner()
    first = runner.invoke(cli, ["--config", str(cfg), "import", "ics", str(tmp_path / "cal")])
    assert first.exit_code == 0 and first.output.strip() == "1 imported", first.output
    store = close_after_test(Store.open(tmp_path / "kw.db"))
    assert store.conn.execute("SELECT my_response FROM events").fetchall() == [("accepted",)]


def test_invalid_addresses_are_not_people_and_are_counted(cfg: Path, tmp_path: Path) -> None:
    """Control characters and encoded-word debris make an address invalid (issue 15, item 10)."""
    root = tmp_path / "Mail"
    write_maildir_message(
        root,
        "1.M1.host:2,S",
        b"From: Bill <bill.rap\x14@enron.com>\nTo: me@example.com, =?utf-8?q?_x@evil.example?=\n"
        b"Date: Tue, 03 Sep 2024 10:12:33 +0200\nMessage-ID: <a1@x>\n\nhi\n",
    )
    write_maildir_message(
        root,
        "2.M1.host:2,S",
        b"From: bill.rap\x14@enron.com\nDate: Tue, 03 Sep 2024 10:12:33 +0200\n\nhi\n",
    )
    r = CliRunner().invoke(cli, ["--config", str(cfg), "import", "maildir", str(root)])
    assert r.exit_code == 0, r.output
    assert (
        r.output.strip()
        == "1 imported (2 invalid addresses left out), 1 skipped: 1 invalid address"
    )
    with contextlib.closing(sqlite3.connect(tmp_path / "kw.db")) as db:
        emails = {e for (e,) in db.execute("SELECT email FROM addresses")}
    assert emails == {"me@example.com"}
