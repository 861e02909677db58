"""End to end through the CLI: device-code sign-in, and kill -9 during a 20,000-message backfill."""

from __future__ import annotations

import os
import signal
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from fakes.graph_api import GraphEmulator
from leakcheck import close_after_test
from ms_world import sign_in

from keepwarm.daemon.cli import cli


@pytest.fixture
def emu() -> Iterator[GraphEmulator]:
    with GraphEmulator() as e:
        yield e


def write_config(tmp_path: Path, emu: GraphEmulator, *, calendar: bool = True) -> Path:
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        f"""
[me]
name = "Test User"
addresses = ["{emu.user}"]
timezone = "Europe/Berlin"

[store]
path = "{tmp_path / "keepwarm.db"}"

[[accounts]]
name = "office"
kind = "microsoft"
client_id = "{emu.client_id}"
tenant = "{emu.tenant}"
calendar = {"true" if calendar else "false"}
authority_host = "{emu.url}"
graph_endpoint = "{emu.graph_endpoint}"
token_file = "{tmp_path / "tokens" / "office.json"}"
timeout = "10s"
""",
        encoding="utf-8",
    )
    return cfg


def test_auth_microsoft_device_code_end_to_end(emu: GraphEmulator, tmp_path: Path) -> None:
    cfg = write_config(tmp_path, emu)
    emu.add_bulk(25)
    emu.add_event(subject="Kickoff")

    def approve_when_asked() -> None:
        for _ in range(200):
            if emu.device_codes:
                time.sleep(0.2)  # msal is polling now: pending at least once
                emu.approve_all()
                return
            time.sleep(0.05)

    approver = threading.Thread(target=approve_when_asked)
    approver.start()
    result = CliRunner().invoke(cli, ["--config", str(cfg), "auth", "microsoft", "office"])
    approver.join()
    assert result.exit_code == 0, result.output
    assert "https://microsoft.com/devicelogin" in result.output
    assert "enter the code" in result.output
    assert f"Signed in as {emu.user}" in result.output
    token = tmp_path / "tokens" / "office.json"
    assert stat.S_IMODE(token.stat().st_mode) == 0o600
    assert emu.token_requests["urn:ietf:params:oauth:grant-type:device_code"] >= 2

    result = CliRunner().invoke(cli, ["--config", str(cfg), "sync", "office"])
    assert result.exit_code == 0, result.output
    assert "26 imported" in result.output  # 25 messages and 1 event
    result = CliRunner().invoke(cli, ["--config", str(cfg), "status"])
    assert "office (microsoft): up to date" in result.output


def test_auth_microsoft_rejects_other_kinds(emu: GraphEmulator, tmp_path: Path) -> None:
    cfg = write_config(tmp_path, emu)
    result = CliRunner().invoke(cli, ["--config", str(cfg), "auth", "microsoft", "nope"])
    assert result.exit_code == 2 and "no account named" in result.output


def test_sync_without_sign_in_tells_the_fix(emu: GraphEmulator, tmp_path: Path) -> None:
    cfg = write_config(tmp_path, emu)
    result = CliRunner().invoke(cli, ["--config", str(cfg), "sync", "office"])
    assert result.exit_code == 1
    assert "keepwarm auth microsoft office" in result.output
    result = CliRunner().invoke(cli, ["--config", str(cfg), "status"])
    assert "auth required" in result.output.replace("_", " ")
    assert "keepwarm auth microsoft office" in result.output


def _stored(db: Path) -> list[str]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        rows = conn.execute(
            """SELECT m.message_id FROM message_sources s JOIN messages m ON m.id = s.message"""
        ).fetchall()
    finally:
        conn.close()
    return sorted(r[0] for r in rows)


def _count(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
        try:
            return int(conn.execute("SELECT count(*) FROM message_sources").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.OperationalError:
        return 0


def _keepwarm(cfg: Path, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "XDG_STATE_HOME": str(cfg.parent / "state")}
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from keepwarm.daemon.cli import main; main()",
            "--config",
            str(cfg),
            *args,
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


@pytest.mark.slow
def test_kill_9_during_a_20000_message_backfill_then_resume(
    emu: GraphEmulator, tmp_path: Path
) -> None:
    projects = emu.create_folder("Projects", "inbox")
    emu.add_bulk(20_000, folders=("inbox", "sentitems", projects, "archive"))
    emu.max_page = 250  # Graph may send fewer than preferred
    emu.latency = 0.01
    cfg = write_config(tmp_path, emu, calendar=False)
    sign_in(emu, tmp_path / "tokens" / "office.json", calendar=False)
    db = tmp_path / "keepwarm.db"

    with _keepwarm(cfg, "sync", "office") as proc:
        deadline = time.monotonic() + 60
        while _count(db) < 3000 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, "the backfill finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    partial = _count(db)
    assert 0 < partial < 20_000

    with _keepwarm(cfg, "sync", "office") as proc:
        _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()
    stored = _stored(db)
    assert stored == sorted(emu.expected_message_ids())
    assert len(stored) == len(set(stored)) == 20_000


def test_digest_sent_through_graph_sendmail_once(emu: GraphEmulator, tmp_path: Path) -> None:
    cfg = write_config(tmp_path, emu)
    with cfg.open("a", encoding="utf-8") as fh:
        fh.write('\n[delivery]\nmethod = "microsoft"\naccount = "office"\n')
    emu.add_bulk(60)
    sign_in(emu, tmp_path / "tokens" / "office.json", send=True)
    runner = CliRunner()
    result = runner.invoke(cli, ["--config", str(cfg), "sync", "office"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(cli, ["--config", str(cfg), "digest", "--send"])
    assert result.exit_code == 0, result.output
    assert len(emu.sent) == 1
    headers = emu.sent[0]["headers"]
    assert headers["Auto-Submitted"] == "auto-generated"
    assert headers["To"] == emu.user
    result = runner.invoke(cli, ["--config", str(cfg), "digest", "--send"])
    assert result.exit_code == 0, result.output
    assert len(emu.sent) == 1  # at most one digest a day
    # the copy in Sent Items is recognised as keepwarm's own digest on the next sync
    result = runner.invoke(cli, ["--config", str(cfg), "sync", "office"])
    assert result.exit_code == 0, result.output
    conn = sqlite3.connect(tmp_path / "keepwarm.db")
    markers = [
        r[0] for r in conn.execute("SELECT markers FROM messages WHERE message_id LIKE 'digest.%'")
    ]
    conn.close()
    assert markers == ["keepwarm-digest sent-folder"]  # in Sent Items, and our own digest


def test_digest_without_mail_send_permission_says_how_to_fix(
    emu: GraphEmulator, tmp_path: Path
) -> None:
    from keepwarm.daemon.config import load
    from keepwarm.daemon.graph_delivery import graph_delivery
    from keepwarm.digests.deliver import DeliveryError

    cfg = write_config(tmp_path, emu)
    with cfg.open("a", encoding="utf-8") as fh:
        fh.write('\n[delivery]\nmethod = "microsoft"\naccount = "office"\n')
    sign_in(emu, tmp_path / "tokens" / "office.json")  # signed in before Mail.Send was wanted
    delivery = close_after_test(graph_delivery(load(cfg)))
    from email.message import EmailMessage

    msg = EmailMessage()
    msg["To"] = emu.user
    msg.set_content("x")
    from datetime import date

    with pytest.raises(DeliveryError) as exc:
        delivery.deliver(msg, local_date=date(2026, 1, 2), html="", before_data=lambda: None)
    assert not exc.value.transient
    assert "keepwarm auth microsoft office" in str(exc.value)


def test_mailbox_not_enabled_for_rest_is_an_account_error_with_the_fix(
    emu: GraphEmulator, tmp_path: Path
) -> None:
    """An unlicensed or on-premises mailbox answers 404 MailboxNotEnabledForRESTAPI to every
    mailbox request: not "ok, 0 messages" but an error with the fix in sync, status, doctor and
    the digest's data section."""
    cfg = write_config(tmp_path, emu, calendar=False)
    sign_in(emu, tmp_path / "tokens" / "office.json", calendar=False)
    emu.add_bulk(5)
    emu.mailbox_enabled = False
    runner = CliRunner()
    env = {"XDG_STATE_HOME": str(tmp_path / "state"), "STATE_DIRECTORY": ""}
    result = runner.invoke(cli, ["--config", str(cfg), "sync", "office"], env=env)
    assert result.exit_code == 1, result.output
    assert "MailboxNotEnabledForRESTAPI" in result.output
    assert "Exchange Online licence" in result.output
    assert "Traceback" not in result.output
    for command in (["status"], ["doctor"], ["digest"]):
        result = runner.invoke(cli, ["--config", str(cfg), *command], env=env)
        assert "Exchange Online licence" in result.output, (command, result.output)
    result = runner.invoke(cli, ["--config", str(cfg), "doctor"], env=env)
    assert "[FAIL] sync of office: failing" in result.output
    emu.mailbox_enabled = True  # the admin assigned a licence: the next sync is ok
    result = runner.invoke(cli, ["--config", str(cfg), "sync", "office"], env=env)
    assert result.exit_code == 0 and "5 imported" in result.output, result.output
