"""The daemon's parts in-process: sd_notify, the instance lock, doctor and status."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from click.testing import CliRunner
from fakes.daemon_harness import Sink, make_maildir, write_config

from keepwarm.daemon.cli import cli
from keepwarm.daemon.lock import AlreadyRunning, InstanceLock, lock_path_for, running_daemon
from keepwarm.daemon.store import Store
from keepwarm.daemon.systemd import Notifier


# -- sd_notify ------------------------------------------------------------------------------------
def _abstract_listener() -> tuple[socket.socket, str]:
    name = f"kw-test-{os.getpid()}-{id(object())}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(b"\0" + name.encode())
    sock.settimeout(2)
    return sock, "@" + name


def test_notifier_speaks_to_an_abstract_socket_and_consumes_the_environment() -> None:
    sock, addr = _abstract_listener()
    env = {"NOTIFY_SOCKET": addr, "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}
    n = Notifier.from_environment(env)
    assert env == {}  # children do not inherit them
    assert n.watchdog_interval == 30.0
    try:
        assert n.ready("starting up")
        assert sock.recv(512) == b"READY=1\nSTATUS=starting up"
        n.reloading()
        lines = sock.recv(512).decode().split("\n")
        assert lines[0] == "RELOADING=1" and lines[1].startswith("MONOTONIC_USEC=")
        assert int(lines[1].split("=")[1]) > 0
        n.status("synced a 3 min ago")
        n.status("synced a 3 min ago")  # unchanged: not sent again
        n.watchdog()
        n.stopping()
        assert sock.recv(512) == b"STATUS=synced a 3 min ago"
        assert sock.recv(512) == b"WATCHDOG=1"
        assert sock.recv(512) == b"STOPPING=1"
    finally:
        n.close()
        sock.close()


def test_notifier_is_silent_without_a_socket_and_ignores_another_pids_watchdog() -> None:
    n = Notifier.from_environment({})
    assert not n.enabled and not n.ready() and not n.watchdog()
    other = Notifier.from_environment(
        {"NOTIFY_SOCKET": "/nonexistent", "WATCHDOG_USEC": "1000", "WATCHDOG_PID": "1"}
    )
    try:
        assert other.watchdog_interval is None
        assert not other.ready()  # an unreachable socket is not an error
    finally:
        other.close()


# -- the lock -------------------------------------------------------------------------------------
def test_second_lock_is_refused_with_the_holders_pid(tmp_path: Path) -> None:
    path = lock_path_for(tmp_path / "keepwarm.db")
    first = InstanceLock(path)
    first.acquire("/etc/keepwarm/config.toml")
    try:
        assert oct(path.stat().st_mode & 0o777) == "0o600"
        info = running_daemon(path)
        assert info is not None and info.pid == os.getpid()
        with pytest.raises(AlreadyRunning, match=f"pid {os.getpid()}"):
            InstanceLock(path).acquire()
    finally:
        first.release()
    assert running_daemon(path) is None
    again = InstanceLock(path)
    again.acquire()
    again.release()


# -- doctor ---------------------------------------------------------------------------------------
@pytest.fixture
def sink() -> Iterator[Sink]:
    s = Sink()
    yield s
    s.stop()


def _env(tmp_path: Path) -> dict[str, str]:
    return {"XDG_STATE_HOME": str(tmp_path / "state"), "STATE_DIRECTORY": ""}


def test_doctor_passes_on_a_healthy_setup(tmp_path: Path, sink: Sink) -> None:
    md = make_maildir(tmp_path, 2)
    cfg = write_config(tmp_path / "config.toml", maildir=md, smtp_port=sink.port)
    res = CliRunner().invoke(cli, ["--config", str(cfg), "doctor"], env=_env(tmp_path))
    assert res.exit_code == 0, res.output
    out = res.output
    assert "[ok  ] config:" in out
    assert "[ok  ] source of archive:" in out
    assert f"[ok  ] SMTP 127.0.0.1:{sink.port}: connected" in out
    assert "[ok  ] time zone: Europe/Berlin" in out
    assert "[ok  ] schedule: next digest" in out
    assert "[warn] daemon: not running" in out


def test_doctor_reports_each_failure_with_its_fix(tmp_path: Path) -> None:
    md = make_maildir(tmp_path, 2)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    cfg = write_config(tmp_path / "config.toml", maildir=md, smtp_port=closed)
    cfg.write_text(
        cfg.read_text()
        + f"""
[[accounts]]
name = "work"
kind = "gmail"
api_endpoint = "http://127.0.0.1:{closed}"

[[accounts]]
name = "old"
kind = "mbox"
path = "{tmp_path / "missing.mbox"}"
"""
    )
    db = tmp_path / "state" / "keepwarm" / "keepwarm.db"
    Store.open(db).close()
    db.chmod(0o644)
    res = CliRunner().invoke(cli, ["--config", str(cfg), "doctor"], env=_env(tmp_path))
    assert res.exit_code == 1, res.output
    out = res.output
    assert f"[FAIL] permissions of database: {db} is mode 0644" in out
    assert f"fix: chmod 600 {db}" in out
    assert "[FAIL] token of work: no token file" in out and "fix: keepwarm auth google work" in out
    assert f"[FAIL] reachability of work: cannot connect to 127.0.0.1:{closed}" in out
    assert "[FAIL] source of old:" in out and "does not exist" in out
    assert f"[FAIL] SMTP 127.0.0.1:{closed}:" in out
    assert "[ok  ] source of archive:" in out


def test_doctor_reports_every_config_problem(tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text('[me]\nname = "x"\naddresses = ["nope"]\ntimezone = "Mars/Base"\n')
    res = CliRunner().invoke(cli, ["--config", str(cfg), "doctor"], env=_env(tmp_path))
    assert res.exit_code == 1
    assert "[FAIL] config:" in res.output and "2 problems" in res.output
    assert "me.addresses" in res.output and "me.timezone" in res.output


class _Auth:
    def __call__(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and data.password == b"s3cret"
        return AuthResult(success=ok, handled=False)


@pytest.mark.parametrize(("password", "ok"), [("s3cret", True), ("wrong", False)])
def test_doctor_tries_the_smtp_login(tmp_path: Path, password: str, ok: bool) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = Controller(
        Sink.__new__(Sink),
        hostname="127.0.0.1",
        port=port,
        authenticator=_Auth(),
        auth_require_tls=False,
    )
    server.start()
    try:
        pw = tmp_path / "smtp-password"
        pw.write_text(password + "\n")
        pw.chmod(0o600)
        md = make_maildir(tmp_path, 1)
        cfg = write_config(tmp_path / "config.toml", maildir=md, smtp_port=port)
        text = cfg.read_text().replace(
            'security = "none"', f'security = "none"\nusername = "me"\npassword_file = "{pw}"'
        )
        cfg.write_text(text)
        res = CliRunner().invoke(cli, ["--config", str(cfg), "doctor"], env=_env(tmp_path))
    finally:
        server.stop()
    if ok:
        assert f"[ok  ] SMTP 127.0.0.1:{port}: login accepted" in res.output, res.output
        assert res.exit_code == 0
    else:
        assert f"[FAIL] SMTP 127.0.0.1:{port}: login refused" in res.output, res.output
        assert "app password" in res.output and res.exit_code == 1


# -- status ---------------------------------------------------------------------------------------
def test_status_shows_health_next_attempt_and_the_running_daemon(tmp_path: Path) -> None:
    md = make_maildir(tmp_path, 1)
    cfg = write_config(tmp_path / "config.toml", maildir=md, smtp_port=25)
    db = tmp_path / "state" / "keepwarm" / "keepwarm.db"
    store = Store.open(db)
    store.set_account_state(
        "archive",
        "maildir",
        "backoff",
        error="disk busy",
        now=1_800_000_000.0,
        next_attempt_at=1_800_000_600.0,
    )
    store.close()
    runner = CliRunner()
    res = runner.invoke(cli, ["--config", str(cfg), "status", "--json"], env=_env(tmp_path))
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    (acct,) = data["accounts"]
    assert acct["health"] == "backing off" and acct["last_error"] == "disk busy"
    assert acct["next_attempt"].startswith("2027-01-15T09:")
    assert data["daemon"] == {"running": False, "pid": None, "started": None}
    assert data["next_digest"].endswith("+01:00") or data["next_digest"].endswith("+02:00")
    lock = InstanceLock(lock_path_for(db))
    lock.acquire()
    try:
        res = runner.invoke(cli, ["--config", str(cfg), "status"], env=_env(tmp_path))
    finally:
        lock.release()
    assert f"daemon     running (pid {os.getpid()}" in res.output
    assert (
        "archive (maildir): backing off" in res.output and "next attempt 2027-01-15" in res.output
    )
