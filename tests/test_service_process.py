"""``keepwarm run`` end to end: the real process, a maildir, an SMTP sink and a NOTIFY_SOCKET.

Time is never faked here. The digest is triggered by configuring ``[digest].time`` relative to
the real clock: a few seconds ahead (``HH:MM:SS``, the scheduled path), or the current minute, which has just
passed (the catch-up path: the daemon starts as if the machine had been asleep at that time).
"Two days" are simulated with two time zones exactly 24 hours apart (Etc/GMT+12 and Etc/GMT-12):
the same wall-clock time falls on two consecutive local dates, so a daemon restarted with the
second zone is, honestly, on the next day of the ledger.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from fakes.daemon_harness import (
    Daemon,
    NotifySocket,
    Sink,
    db_rows,
    local_clock,
    make_maildir,
    wait_until,
    write_config,
)


@pytest.fixture
def sink() -> Iterator[Sink]:
    s = Sink()
    yield s
    s.stop()


@pytest.fixture
def notify() -> Iterator[NotifySocket]:
    n = NotifySocket()
    yield n
    n.close()


def _db(tmp_path: Path) -> Path:
    return tmp_path / "state" / "keepwarm" / "keepwarm.db"


def test_ready_watchdog_digest_on_time_reload_and_clean_stop(
    tmp_path: Path, sink: Sink, notify: NotifySocket
) -> None:
    zone = "Europe/Berlin"
    md = make_maildir(tmp_path, 30)
    due = (datetime.now(ZoneInfo(zone)) + timedelta(seconds=10)).replace(microsecond=0)
    cfg = write_config(
        tmp_path / "config.toml",
        maildir=md,
        smtp_port=sink.port,
        zone=zone,
        digest_time=due.strftime("%H:%M:%S"),
    )
    daemon = Daemon(cfg, tmp_path / "state", notify, watchdog_usec=600_000)
    try:
        notify.wait_for("READY=1")
        assert any(m.startswith("READY=1\nSTATUS=") for m in notify.messages)
        notify.wait_for("WATCHDOG=1", n=3)
        wait_until(lambda: db_rows(_db(tmp_path), "SELECT count(*) FROM messages") == [(30,)])
        wait_until(
            lambda: any("STATUS=synced archive just now; next digest" in m for m in notify.poll())
        )
        assert sink.messages == []  # not before its time

        # The digest arrives at its configured local time, once, on the scheduled path.
        wait_until(lambda: sink.messages, timeout=40)
        day = datetime.now(ZoneInfo(zone)).date().isoformat()
        wait_until(lambda: f"digest for {day} sent" in daemon.output())
        assert datetime.now(ZoneInfo(zone)) >= due
        assert db_rows(_db(tmp_path), "SELECT local_date, state FROM digests") == [(day, "sent")]
        assert "catching up" not in daemon.output()

        # SIGHUP with a broken config: keeps running the old one and logs every problem.
        good = cfg.read_text()
        cfg.write_text(
            good.replace('timezone = "Europe/Berlin"', 'timezone = "Mars/Olympus"').replace(
                'sync_interval = "1h"', 'sync_interval = "often"'
            )
        )
        daemon.signal(signal.SIGHUP)
        wait_until(lambda: "reload failed" in daemon.output())
        notify.wait_for("RELOADING=1")
        assert any(m.startswith("RELOADING=1\nMONOTONIC_USEC=") for m in notify.messages)
        notify.wait_for("READY=1", n=2)
        wait_until(lambda: "Mars/Olympus" in daemon.output() and "often" in daemon.output())
        assert daemon.proc.poll() is None
        cfg.write_text(good)
        daemon.signal(signal.SIGHUP)
        wait_until(lambda: "config reloaded" in daemon.output())
        assert len(sink.messages) == 1  # a reload does not send it again
        pings = notify.count("WATCHDOG=1")
        notify.wait_for("WATCHDOG=1", n=pings + 2)
    finally:
        rc = daemon.stop()
    assert rc == 0, daemon.output()
    assert notify.count("STOPPING=1") == 1
    assert len(sink.messages) == 1
    out = daemon.output()
    assert "me@example.com" not in out and "person1@example.org" not in out  # no addresses at INFO
    assert "note 1" not in out  # nor subjects


def test_missed_morning_is_caught_up_once_and_two_days_give_two_digests(
    tmp_path: Path, sink: Sink
) -> None:
    md = make_maildir(tmp_path, 5)
    cfg = tmp_path / "config.toml"
    day1, day2 = "Etc/GMT+12", "Etc/GMT-12"  # 24 h apart: same clock time, consecutive dates
    clock = local_clock(day1, timedelta(minutes=-1))  # just passed: a missed morning
    assert local_clock(day2, timedelta(minutes=-1)) == clock
    dates = []
    for zone, catch_up in ((day1, True), (day1, False), (day2, True), (day2, False), (day1, False)):
        write_config(cfg, maildir=md, smtp_port=sink.port, zone=zone, digest_time=clock)
        daemon = Daemon(cfg, tmp_path / "state")
        day = datetime.now(ZoneInfo(zone)).date().isoformat()
        dates.append(day)
        wait_until(lambda d=daemon: "started" in d.output())
        if catch_up:
            assert f"catching up the digest of {day}" in daemon.output()
            wait_until(lambda d=daemon, day=day: f"digest for {day} sent" in d.output())
        else:  # the ledger says it was sent: planned for the next day, nothing to catch up
            assert "catching up" not in daemon.output()
            assert f"next digest {clock}" not in daemon.output()
        assert daemon.stop() == 0, daemon.output()
    assert len(sink.messages) == 2, sink.subjects()
    ledger = db_rows(_db(tmp_path), "SELECT local_date, state FROM digests ORDER BY local_date")
    assert ledger == [(dates[0], "sent"), (dates[2], "sent")]
    assert dates[2] > dates[0]


def test_kill_9_during_a_sync_then_restart_loses_and_duplicates_nothing(
    tmp_path: Path, sink: Sink
) -> None:
    n = 200
    md = make_maildir(tmp_path, n)
    cfg = write_config(
        tmp_path / "config.toml",
        maildir=md,
        smtp_port=sink.port,
        digest_time=local_clock("Europe/Berlin", timedelta(hours=6)),
    )
    db = _db(tmp_path)
    # 20 batches of 10 at 0.5 s each: the kill lands mid-import even on a loaded machine.
    slow = {"KEEPWARM_TEST_BATCH_DELAY": "0.5"}
    daemon = Daemon(cfg, tmp_path / "state", extra_env=slow)
    try:
        wait_until(lambda: (db_rows(db, "SELECT count(*) FROM messages") or [(0,)])[0][0] >= 30)
    finally:
        daemon.kill()
    partial = db_rows(db, "SELECT count(*) FROM messages")[0][0]
    assert 0 < partial < n

    daemon = Daemon(cfg, tmp_path / "state")
    try:
        wait_until(lambda: db_rows(db, "SELECT count(*) FROM messages") == [(n,)])
        # the sync records its outcome, then the service its next attempt (a second write: a
        # stop in between leaves the next attempt to the restart, which syncs at once)
        done = "SELECT state, next_attempt_at IS NOT NULL FROM accounts"
        wait_until(lambda: db_rows(db, done) == [("ok", 1)])
    finally:
        assert daemon.stop() == 0
    assert db_rows(db, "SELECT count(*) FROM message_sources") == [(n,)]
    assert db_rows(db, "SELECT count(DISTINCT message_id) FROM messages") == [(n,)]
    (next_at,) = db_rows(db, "SELECT next_attempt_at FROM accounts")[0]
    assert next_at is not None and next_at > time.time() + 30 * 60  # the next interval


def test_sigterm_finishes_the_batch_in_hand_and_exits_0(
    tmp_path: Path, sink: Sink, notify: NotifySocket
) -> None:
    md = make_maildir(tmp_path, 200)
    cfg = write_config(
        tmp_path / "config.toml",
        maildir=md,
        smtp_port=sink.port,
        digest_time=local_clock("Europe/Berlin", timedelta(hours=6)),
    )
    db = _db(tmp_path)
    daemon = Daemon(cfg, tmp_path / "state", notify, extra_env={"KEEPWARM_TEST_BATCH_DELAY": "0.2"})
    try:
        notify.wait_for("READY=1")
        wait_until(lambda: (db_rows(db, "SELECT count(*) FROM messages") or [(0,)])[0][0] >= 20)
        daemon.signal(signal.SIGTERM)
        rc = daemon.wait(15)
    finally:
        daemon.kill()
    assert rc == 0, daemon.output()
    assert notify.count("STOPPING=1") == 1
    count = db_rows(db, "SELECT count(*) FROM messages")[0][0]
    assert count < 200 and count % 10 == 0  # whole batches only
    assert "SIGTERM received" in daemon.output()


def test_a_second_instance_is_refused_with_the_running_pid(tmp_path: Path, sink: Sink) -> None:
    md = make_maildir(tmp_path, 3)
    cfg = write_config(tmp_path / "config.toml", maildir=md, smtp_port=sink.port)
    first = Daemon(cfg, tmp_path / "state", extra_env={"JOURNAL_STREAM": "8:12345"})
    try:
        wait_until(lambda: "started" in first.output())
        # Under systemd: syslog priorities, no timestamps (journald adds its own).
        assert first.output().startswith("<6>keepwarm.daemon: ")
        second = Daemon(cfg, tmp_path / "state")
        rc = second.wait(15)
        assert rc != 0
        assert f"already running (pid {first.pid}" in second.output()
        assert first.proc.poll() is None
    finally:
        assert first.stop() == 0


def test_a_wedged_connector_stops_the_watchdog_pings(
    tmp_path: Path, sink: Sink, notify: NotifySocket
) -> None:
    md = make_maildir(tmp_path, 40)
    cfg = write_config(tmp_path / "config.toml", maildir=md, smtp_port=sink.port)
    daemon = Daemon(
        cfg,
        tmp_path / "state",
        notify,
        watchdog_usec=500_000,
        extra_env={"KEEPWARM_TEST_WEDGE": "1"},
    )
    try:
        notify.wait_for("WATCHDOG=1", n=2)
        wait_until(lambda: db_rows(_db(tmp_path), "SELECT count(*) FROM messages") == [(10,)])
        # The pings stop: no WATCHDOG=1 for four watchdog intervals (waited for, not slept on,
        # so a loaded machine or a late-reading notify socket cannot race the check).
        _wait_for_quiet(notify, "WATCHDOG=1", quiet=2.0, timeout=30.0)
    finally:
        daemon.kill()


def test_sigterm_is_prompt_while_a_source_is_being_read(
    tmp_path: Path, sink: Sink, notify: NotifySocket
) -> None:
    """A sync that is reading its source (parsing a calendar, waiting on a server) has nothing
    uncommitted: SIGTERM stops at once instead of waiting out the grace period (issue 15,
    item 2: SIGTERM took 21 s during an endless .ics expansion)."""
    md = make_maildir(tmp_path, 40)
    cfg = write_config(tmp_path / "config.toml", maildir=md, smtp_port=sink.port)
    daemon = Daemon(cfg, tmp_path / "state", notify, extra_env={"KEEPWARM_TEST_WEDGE": "1"})
    try:
        notify.wait_for("READY=1")
        wait_until(lambda: db_rows(_db(tmp_path), "SELECT count(*) FROM messages") == [(10,)])
        daemon.signal(signal.SIGTERM)
        rc = daemon.wait(8)  # the grace period for a batch being stored is 20 s
    finally:
        daemon.kill()
    assert rc == 0, daemon.output()
    assert "did not reach the end of its batch" not in daemon.output()
    assert "nothing of it is uncommitted" in daemon.output()


def _wait_for_quiet(notify: NotifySocket, line: str, quiet: float, timeout: float) -> None:
    """Return once ``line`` has not arrived for ``quiet`` seconds; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    seen, since = notify.count(line), time.monotonic()
    while time.monotonic() - since < quiet:
        if time.monotonic() > deadline:
            raise AssertionError(f"{line} kept arriving for {timeout} s")
        time.sleep(0.05)
        n = notify.count(line)
        if n != seen:
            seen, since = n, time.monotonic()


def test_refuses_to_start_when_private_files_are_readable_by_others(
    tmp_path: Path, sink: Sink
) -> None:
    md = make_maildir(tmp_path, 1)
    cfg = write_config(tmp_path / "config.toml", maildir=md, smtp_port=sink.port)
    cfg.chmod(0o644)
    daemon = Daemon(cfg, tmp_path / "state")
    assert daemon.wait(15) == 2
    out = daemon.output()
    assert "refusing to start" in out and f"chmod 600 {cfg}" in out
