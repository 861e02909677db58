"""The reliability defects a fault campaign found (issue 15), through the real ``keepwarm`` CLI:
concurrent senders, a damaged or read-only database, broken configs. Each must end in one clear
line (no traceback) and never in a digest delivered twice or a record lost."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from fakes.faults import damage_tables, damage_text, read_only
from fakes.smtp import PASSWORD, USER, smtp_server
from localmail import make_message, write_maildir_message

KEEPWARM = str(Path(sys.executable).parent / "keepwarm")


def write_config(tmp: Path, extra: str = "") -> Path:
    cfg = tmp / "config.toml"
    cfg.write_text(
        textwrap.dedent(
            f"""\
            [me]
            name = "Jane Doe"
            addresses = ["jane@example.com"]
            timezone = "Europe/Berlin"
            [store]
            path = "{tmp / "state" / "kw.db"}"
            """
        )
        + textwrap.dedent(extra)
    )
    cfg.chmod(0o600)
    return cfg


def keepwarm(cfg: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KEEPWARM_CONFIG": str(cfg), "KW_TEST_SMTP_PASSWORD": PASSWORD}
    return subprocess.run(
        [KEEPWARM, *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def no_traceback(proc: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr


# -- item 1 -----------------------------------------------------------------------------------------
def test_concurrent_digest_send_processes_deliver_once(tmp_path: Path) -> None:
    with smtp_server(tmp_path) as srv:
        cfg = write_config(
            tmp_path,
            f"""\
            [delivery]
            method = "smtp"
            [delivery.smtp]
            host = "127.0.0.1"
            port = {srv.port}
            username = "{USER}"
            password_env = "KW_TEST_SMTP_PASSWORD"
            ca_file = "{srv.ca_file}"
            """,
        )
        assert keepwarm(cfg, "status").returncode == 0  # creates the database
        env = {**os.environ, "KEEPWARM_CONFIG": str(cfg), "KW_TEST_SMTP_PASSWORD": PASSWORD}
        procs = [
            subprocess.Popen(
                [KEEPWARM, "digest", "--send", "--as-of", "2026-11-24"],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(8)
        ]
        outs = [p.communicate(timeout=120) for p in procs]
        assert [p.returncode for p in procs] == [0] * 8, outs
        assert len(srv.handler.received) == 1
    lines = sorted(o[0].strip() for o in outs)
    delivered = [x for x in lines if x.endswith("delivered")]
    assert len(delivered) == 1, lines
    for line in lines:
        assert line in (
            "digest for 2026-11-24 delivered",
            "digest for 2026-11-24 was already delivered; use --force to send it again",
            "digest for 2026-11-24 is already being delivered by another keepwarm process; "
            "not sending it twice",
        ), line


# -- items 3 and 4: a damaged or read-only database ---------------------------------------------------
def synced(tmp: Path, n: int = 40) -> tuple[Path, Path]:
    """A config with one maildir account, synced once; returns (config, maildir)."""
    mail = tmp / "Mail"
    for i in range(n):
        data = make_message(i, sender=f"p{i}@example.org", to="jane@example.com").as_bytes()
        write_maildir_message(mail, f"{i}.M1.host:2,S", data)
    cfg = write_config(
        tmp,
        f"""        [delivery]
        outbox = "{tmp / "outbox"}"
        [[accounts]]
        name = "mail"
        kind = "maildir"
        path = "{mail}"
        """,
    )
    first = keepwarm(cfg, "sync")
    assert first.returncode == 0 and "40 imported" in first.stdout, first.stderr
    return cfg, mail


COMMANDS = (
    ("status",),
    ("people",),
    ("person", "p1@example.org"),
    ("digest",),
    ("digest", "--send"),
    ("sync",),
    ("snooze", "--list"),
)


def one_line_or_success(proc: subprocess.CompletedProcess[str], words: str) -> bool:
    """True when the command failed with exactly one line saying ``words``."""
    no_traceback(proc)
    if proc.returncode == 0:
        return False
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], proc.stderr
    return True


@pytest.mark.parametrize(
    ("where", "reads_it"),
    [("accounts", "sync"), ("messages", "digest"), ("addresses", "people"), ("cursor", "sync")],
)
def test_damaged_pages_end_every_command_in_one_line(
    tmp_path: Path, where: str, reads_it: str
) -> None:
    """SQLite reports damaged pages (the file header intact) only when a query reaches them:
    every command then says so in one line, the same as for a truncated file (item 3)."""
    cfg, mail = synced(tmp_path)
    db = tmp_path / "state" / "kw.db"
    if where == "cursor":  # the stored position of the account is no longer UTF-8
        assert damage_text(db, b'"kind":"maildir"') == 1
    else:
        damage_tables(db, [where])
    failed = [
        " ".join(args)
        for args in (*COMMANDS, ("import", "maildir", str(mail)))
        if one_line_or_success(keepwarm(cfg, *args), "is damaged")
    ]
    assert reads_it in failed, failed
    doctor = keepwarm(cfg, "doctor")
    no_traceback(doctor)
    if where != "cursor":  # a value that is not UTF-8 is no damage to SQLite's structure
        assert doctor.returncode == 1 and "[FAIL] database:" in doctor.stdout, doctor.stdout
        assert "is damaged" in doctor.stdout and "move it aside" in doctor.stdout


def test_a_truncated_database_says_the_same(tmp_path: Path) -> None:
    cfg, _mail = synced(tmp_path)
    db = tmp_path / "state" / "kw.db"
    damage_text(db, b"")  # folds the WAL in
    db.write_bytes(db.read_bytes()[:1000])
    for args in COMMANDS:
        assert one_line_or_success(keepwarm(cfg, *args), "is damaged"), args


@pytest.mark.parametrize("when", ["at start", "in a sync"])
def test_the_daemon_stops_without_a_traceback_on_a_damaged_database(
    tmp_path: Path, when: str
) -> None:
    """Exit status 2: the units do not restart into the same wall (RestartPreventExitStatus)."""
    cfg, mail = synced(tmp_path)
    db = tmp_path / "state" / "kw.db"
    if when == "at start":
        damage_text(db, b'"kind":"maildir"')
    else:  # the damage is met when the new mail is stored
        for i in range(100, 140):
            write_maildir_message(mail, f"{i}.M1.host:2,S", make_message(i).as_bytes())
        damage_tables(db, ["messages", "message_sources"])
    proc = keepwarm(cfg, "run", timeout=60)
    no_traceback(proc)
    assert proc.returncode == 2, proc.stderr
    assert "is damaged" in proc.stderr and "move it aside" in proc.stderr, proc.stderr


def test_a_read_only_state_directory_is_named_in_one_line(tmp_path: Path) -> None:
    """keepwarm run crashed with a traceback on its lock file; other commands said 'unable to
    open database file' (item 4)."""
    cfg, mail = synced(tmp_path)
    state = tmp_path / "state"
    with read_only(state):
        for args in (*COMMANDS, ("run",), ("import", "maildir", str(mail))):
            proc = keepwarm(cfg, *args, timeout=60)
            assert one_line_or_success(proc, f"cannot write to its state directory {state}"), args
            assert "read-only file system" in proc.stderr or os.getuid() != 0
        doctor = keepwarm(cfg, "doctor")
    no_traceback(doctor)
    assert (
        "[FAIL] database directory: keepwarm cannot write to its state directory" in doctor.stdout
    )
    assert "[ok  ] database:" in doctor.stdout  # the data itself is fine
    assert keepwarm(cfg, "status").returncode == 0  # and everything works again afterwards


# -- item 11: deleted mail and vanished folders ------------------------------------------------------
def test_a_vanished_folder_is_kept_and_told_in_status_and_the_digest(tmp_path: Path) -> None:
    """Deleting a folder at the source silently removed its messages and the account still said
    'ok'. Now its mail stays in the history and status and the digest say what happened."""
    cfg, mail = synced(tmp_path)
    old = mail / ".Old"
    for i in range(200, 203):
        write_maildir_message(old, f"{i}.M1.host:2,S", make_message(i).as_bytes())
    assert "3 imported" in keepwarm(cfg, "sync").stdout
    shutil.rmtree(old)
    (mail / "cur" / "0.M1.host:2,S").unlink()  # one message deleted by the user
    synced_again = keepwarm(cfg, "sync")
    assert synced_again.returncode == 0, synced_again.stderr
    assert "4 deleted at the source, kept in your history" in synced_again.stdout
    status = keepwarm(cfg, "status")
    assert "notice (" in status.stdout
    assert "folder Old is gone; its 3 messages stay in your history" in status.stdout
    assert "history: 4 messages deleted at the source are kept" in status.stdout
    assert "messages   43" in status.stdout
    digest = keepwarm(cfg, "digest")
    assert "note: folder Old is gone; its 3 messages stay in your history" in digest.stdout
    # forgetting deleted mail is the user's choice; a vanished folder is still kept
    cfg.write_text(
        cfg.read_text().replace("[delivery]", "[privacy]\nforget_deleted = true\n[delivery]")
    )
    assert keepwarm(cfg, "sync").returncode == 0
    assert "messages   42" in keepwarm(cfg, "status").stdout
