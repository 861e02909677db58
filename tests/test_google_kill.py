"""kill -9 during a 20,000-message Gmail backfill, then restart: the store ends with exactly the
emulator's set (nothing lost, nothing duplicated) and the restart does not start over."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakes.google_api import GMAIL_METADATA, GoogleEmulator
from fakes.google_world import write_token

KEEPWARM = str(Path(sys.executable).parent / "keepwarm")
TOTAL = 20_000


@pytest.fixture
def emu() -> Iterator[GoogleEmulator]:
    with GoogleEmulator(gmail_units_per_minute=100_000_000) as e:
        yield e
        e.check()


def config(tmp: Path, emu: GoogleEmulator) -> Path:
    token = write_token(emu, tmp / "tokens" / "mail.json", (GMAIL_METADATA,))
    cfg = tmp / "config.toml"
    cfg.write_text(
        f"""
[me]
name = "Me"
addresses = ["me@example.com"]
timezone = "UTC"

[store]
path = "{tmp / "kw.db"}"

[[accounts]]
name = "mail"
kind = "gmail"
token_file = "{token}"
api_endpoint = "{emu.api_endpoint}"
token_uri = "{emu.token_uri}"
quota_units_per_minute = 1000000
timeout = "20s"
"""
    )
    return cfg


def stored(db: Path) -> list[str]:
    con = sqlite3.connect(db)
    try:
        rows = con.execute(
            "SELECT m.message_id FROM message_sources s JOIN messages m ON m.id = s.message"
        ).fetchall()
    finally:
        con.close()
    return sorted(r[0] for r in rows)


def test_kill_9_during_backfill_then_restart(tmp_path: Path, emu: GoogleEmulator) -> None:
    emu.add_mail(TOTAL, record=False, step_ms=30_000)
    cfg = config(tmp_path, emu)
    env = {**os.environ, "KEEPWARM_CONFIG": str(cfg)}
    with subprocess.Popen(
        [KEEPWARM, "sync", "mail"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    ) as proc:
        deadline = time.monotonic() + 120
        while emu.calls["gmail.users.messages.get"] < TOTAL // 3 and time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    fetched_before = emu.calls["gmail.users.messages.get"]
    partial = stored(tmp_path / "kw.db")
    assert 0 < len(partial) < TOTAL and len(partial) == len(set(partial))

    done = subprocess.run(
        [KEEPWARM, "sync", "mail"], env=env, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stderr
    assert stored(tmp_path / "kw.db") == sorted(emu.message_ids())
    refetched = emu.calls["gmail.users.messages.get"] - fetched_before
    assert refetched <= TOTAL - len(partial) + 500, "the restart resumed instead of starting over"
