"""Helpers for tests that run ``keepwarm run`` as a real process."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from aiosmtpd.controller import Controller

TESTS = Path(__file__).resolve().parent.parent


def wait_until(cond: Callable[[], Any], timeout: float = 60.0, step: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(step)


class NotifySocket:
    """A test-owned NOTIFY_SOCKET: a thread collects every datagram, as systemd would."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="kw-")  # short: AF_UNIX paths are limited to 108 bytes
        self.path = os.path.join(self.dir, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.1)
        self.messages: list[str] = []
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._closed.is_set():
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except (TimeoutError, BlockingIOError):
                continue
            except OSError:
                return

    def poll(self) -> list[str]:
        return list(self.messages)

    def count(self, line: str) -> int:
        return sum(1 for m in self.poll() if line in m.split("\n"))

    def wait_for(self, line: str, n: int = 1, timeout: float = 20.0) -> None:
        wait_until(lambda: self.count(line) >= n, timeout)

    def close(self) -> None:
        self._closed.set()
        self._thread.join(2)
        self.sock.close()
        os.unlink(self.path)
        os.rmdir(self.dir)


class Sink:
    """An SMTP server on loopback that keeps every message."""

    def __init__(self) -> None:
        self.messages: list[bytes] = []
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope.content)
        return "250 OK"

    def subjects(self) -> list[str]:
        out = []
        for m in self.messages:
            for line in m.decode("utf-8", "replace").splitlines():
                if line.lower().startswith("subject:"):
                    out.append(line.split(":", 1)[1].strip())
        return out

    def stop(self) -> None:
        self.controller.stop()


def make_maildir(root: Path, n: int) -> Path:
    md = root / "Mail"
    for sub in ("cur", "new", "tmp"):
        (md / sub).mkdir(parents=True, exist_ok=True)
    base = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    for i in range(n):
        date = (base + timedelta(hours=i)).strftime("%a, %d %b %Y %H:%M:%S +0000")
        text = (
            f"From: Person {i} <person{i}@example.org>\r\n"
            "To: Me <me@example.com>\r\n"
            f"Subject: note {i}\r\n"
            f"Date: {date}\r\n"
            f"Message-ID: <m{i}@example.org>\r\n\r\nbody\r\n"
        )
        (md / "cur" / f"{1700000000 + i}.{i}.host:2,S").write_text(text)
    return md


def local_clock(zone: str, delta: timedelta = timedelta(0)) -> str:
    return (datetime.now(ZoneInfo(zone)) + delta).strftime("%H:%M")


def write_config(
    path: Path,
    *,
    maildir: Path,
    smtp_port: int,
    zone: str = "Europe/Berlin",
    digest_time: str = "07:30",
    window: str = "12h",
    interval: str = "1h",
) -> Path:
    path.write_text(
        f"""
[me]
name = "Test Person"
addresses = ["me@example.com"]
timezone = "{zone}"

[daemon]
sync_interval = "{interval}"
jitter = "30s"
log_level = "info"

[digest]
time = "{digest_time}"
catch_up_window = "{window}"

[delivery]
method = "smtp"

[delivery.smtp]
host = "127.0.0.1"
port = {smtp_port}
security = "none"

[[accounts]]
name = "archive"
kind = "maildir"
path = "{maildir}"
"""
    )
    path.chmod(0o600)
    return path


class Daemon:
    """One ``keepwarm run`` process with its own state directory and stderr log."""

    def __init__(
        self,
        config: Path,
        state: Path,
        notify: NotifySocket | None = None,
        *,
        watchdog_usec: int | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.log = state.parent / f"daemon-{time.monotonic_ns()}.log"
        env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "JOURNAL_STREAM")}
        env.update(
            PYTHONPATH=str(TESTS),
            XDG_STATE_HOME=str(state),
            KEEPWARM_CONFIG=str(config),
            **(extra_env or {}),
        )
        env.pop("STATE_DIRECTORY", None)
        if notify is not None:
            env["NOTIFY_SOCKET"] = notify.path
        if watchdog_usec:
            env["WATCHDOG_USEC"] = str(watchdog_usec)
        self._logf = self.log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "fakes.daemon_process", "run"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=self._logf,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 15.0) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            self._logf.close()

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.signal(signal.SIGTERM)
        return self.wait()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.wait()


def db_rows(db: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if not db.exists():
        return []
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute(sql, params).fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        conn.close()
