"""The daemon's main loop in-process, with injected connectors and digest job (real clock).

The loop runs in the test's main thread (signals need it); a helper thread drives the scenario
and ends it with SIGTERM to this process, which the daemon's handler turns into a clean stop.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from keepwarm.connectors.base import (
    Address,
    AuthRequired,
    Batch,
    MessageMeta,
    Progress,
    TransientError,
)
from keepwarm.daemon import config as cfgmod
from keepwarm.daemon.config import Account, Config
from keepwarm.daemon.service import Service
from keepwarm.daemon.systemd import Notifier


@dataclass
class Outcome:
    state: str
    local_date: Any
    error: str | None = None
    transient: bool = False


class Source:
    """A connector whose behaviour the test changes while the daemon runs."""

    def __init__(self, account: str, kind: str, token: Path | None) -> None:
        self.account, self.kind, self.token = account, kind, token
        self.fail_transient = 0

    def sync(self, cursor: str | None) -> Iterator[Batch]:
        if self.token is not None and not self.token.exists():
            raise AuthRequired("the token is missing", fix=f"keepwarm auth google {self.account}")
        if self.fail_transient:
            self.fail_transient -= 1
            raise TransientError("server busy", retry_after=3600)
        if cursor is None:
            msg = MessageMeta(
                account=self.account,
                provider_id="1",
                date=datetime(2026, 1, 5, 9, tzinfo=UTC),
                sender=Address("a@example.org"),
                to=(Address("me@example.com"),),
                message_id="m1@example.org",
            )
            yield Batch(messages=[msg], cursor="1")


def _config(tmp_path: Path, digest_time: str) -> Config:
    path = tmp_path / "config.toml"
    path.write_text(
        f"""
[me]
name = "T"
addresses = ["me@example.com"]
timezone = "Europe/Berlin"
[store]
path = "{tmp_path / "kw.db"}"
[digest]
time = "{digest_time}"
[delivery]
method = "file"
outbox = "{tmp_path / "outbox"}"
[[accounts]]
name = "work"
kind = "gmail"
token_file = "{tmp_path / "token.json"}"
[[accounts]]
name = "busy"
kind = "maildir"
path = "{tmp_path}"
"""
    )
    path.chmod(0o600)
    return cfgmod.load(path)


def _run(service: Service, scenario: Callable[[], None]) -> int:
    errors: list[BaseException] = []

    def drive() -> None:
        try:
            scenario()
        except BaseException as exc:
            errors.append(exc)
        finally:
            os.kill(os.getpid(), signal.SIGTERM)

    service.start()
    t = threading.Thread(target=drive)
    t.start()
    rc = service.run()
    t.join(10)
    if errors:
        raise errors[0]
    return rc


def _until(cond: Callable[[], bool], timeout: float = 15) -> None:
    ev = threading.Event()
    deadline = datetime.now() + timedelta(seconds=timeout)
    while not cond():
        if datetime.now() > deadline:
            raise AssertionError("condition not met in time")
        ev.wait(0.05)


def test_parked_account_resumes_when_its_token_appears_and_backoff_honours_retry_after(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="keepwarm")
    later = (datetime.now(UTC) + timedelta(hours=6)).astimezone(cfgmod.ZoneInfo("Europe/Berlin"))
    config = _config(tmp_path, later.strftime("%H:%M"))
    sources: dict[str, Source] = {}

    def factory(account: Account, cfg: Config) -> Source:
        token = cfg.token_path(account) if account.kind == "gmail" else None
        src = sources.get(account.name) or Source(account.name, account.kind, token)
        if account.name == "busy" and account.name not in sources:
            src.fail_transient = 1
        sources[account.name] = src
        return src

    service = Service(
        str(config.path),
        config,
        notifier=Notifier(None, watchdog_usec=300_000),  # wakes the loop often; no socket
        connector_factory=factory,  # type: ignore[arg-type]
        digest_job=lambda *a, **k: Outcome("sent", None),
    )
    token = tmp_path / "token.json"

    def scenario() -> None:
        _until(lambda: service.accounts["work"].state == "auth_required")
        _until(lambda: service.accounts["busy"].state == "backoff")
        job = service.accounts["work"].job
        assert job is not None and job.parked
        busy = service.accounts["busy"].job
        assert busy is not None
        assert busy.due - datetime.now(UTC) > timedelta(minutes=55)  # Retry-After: 3600
        token.write_text("{}")
        token.chmod(0o600)
        _until(lambda: service.accounts["work"].state == "ok")

    assert _run(service, scenario) == 0
    text = caplog.text
    assert "account work: not synced yet -> auth required" in text
    assert "to fix: keepwarm auth google work" in text
    assert "account work: credentials changed; trying again" in text
    assert "account work: auth required -> ok" in text
    assert "account busy: not synced yet -> backing off: server busy" in text
    assert text.count("-> backing off") == 1  # a transition is logged once, not every retry
    from keepwarm.daemon.store import Store

    store = Store.open(config.store_path)
    try:
        rows = dict(store.conn.execute("SELECT name, next_attempt_at FROM accounts").fetchall())
    finally:
        store.close()
    assert rows["busy"] >= datetime.now(UTC).timestamp() + 55 * 60


def _digest_due_a_minute_ago(
    tmp_path: Path, answers: list[tuple[str, str | None, bool]]
) -> tuple[Service, list[str], Any]:
    """A daemon with no accounts whose digest was due a minute ago (the catch-up path); the
    digest job answers ``(state, error, transient)`` from ``answers`` in turn, then the last."""
    earlier = datetime.now(cfgmod.ZoneInfo("Europe/Berlin")) - timedelta(minutes=1)
    config = _config(tmp_path, earlier.strftime("%H:%M"))
    config = cfgmod.loads(
        config.path.read_text().split("[[accounts]]")[0],
        config.path,  # type: ignore[union-attr]
    )
    calls: list[str] = []

    def digest(cfg: Config, store: Any, *, now: datetime, send: bool = True) -> Outcome:
        calls.append("x")
        state, error, transient = answers[min(len(calls), len(answers)) - 1]
        return Outcome(state, now.astimezone(cfg.zone).date(), error, transient)

    service = Service(
        str(config.path), config, notifier=Notifier(None, watchdog_usec=300_000), digest_job=digest
    )
    return service, calls, earlier.date()


def test_a_transient_digest_failure_is_retried_and_a_permanent_one_is_not(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="keepwarm")
    service, calls, today = _digest_due_a_minute_ago(
        tmp_path,
        [("failed", "connection refused", True), ("failed", "the template is broken", False)],
    )

    def scenario() -> None:
        _until(lambda: "retrying in" in caplog.text)
        assert service.digest.plan is not None and service.digest.plan.catch_up
        job = service.digest.job
        assert job is not None
        job.plan(datetime.now(UTC))  # do not wait out the backoff
        _until(lambda: len(calls) == 2)
        _until(lambda: "not retrying today" in caplog.text)

    assert _run(service, scenario) == 0
    assert "retrying in" in caplog.text
    plan = service.digest.plan
    assert plan is not None and not plan.catch_up
    assert plan.local_date > today  # given up for today: next is tomorrow


def test_a_digest_another_process_is_delivering_is_looked_at_again_later(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """'digest --send' from the command line holds the delivery: the daemon neither fails nor
    gives up the day; it looks again a few minutes later and then finds it sent (item 1)."""
    caplog.set_level(logging.INFO, logger="keepwarm")
    service, calls, today = _digest_due_a_minute_ago(
        tmp_path,
        [("in_progress", "already being delivered", True), ("already_sent", None, False)],
    )

    def scenario() -> None:
        _until(lambda: "being delivered by another keepwarm process" in caplog.text)
        plan, job = service.digest.plan, service.digest.job
        assert plan is not None and plan.catch_up and plan.local_date == today
        assert job is not None and service.digest.failures == 0
        job.plan(datetime.now(UTC))  # do not wait out the five minutes
        _until(lambda: len(calls) == 2)
        _until(lambda: "already sent earlier" in caplog.text)

    assert _run(service, scenario) == 0
    assert "failed" not in caplog.text


class Backfill:
    """Many small batches, as a first import of a big mailbox."""

    kind = "maildir"

    def __init__(self, account: str) -> None:
        self.account = account

    def sync(self, cursor: str | None) -> Iterator[Batch]:
        start = int(cursor or 0)
        for i in range(start, 50):
            msg = MessageMeta(
                account=self.account,
                provider_id=str(i),
                date=datetime(2026, 1, 5, 9, tzinfo=UTC) + timedelta(minutes=i),
                sender=Address(f"p{i}@example.org"),
                to=(Address("me@example.com"),),
                message_id=f"b{i}@example.org",
                subject=f"secret subject {i}",
            )
            yield Batch(messages=[msg], cursor=str(i + 1), progress=Progress(i + 1, 50))


def test_long_syncs_log_progress_and_the_status_line_says_what_happened(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from keepwarm.daemon import service as svcmod

    monkeypatch.setattr(svcmod, "PROGRESS_EVERY", 0.0)
    caplog.set_level(logging.INFO, logger="keepwarm")
    config = _config(tmp_path, "07:30")
    config = cfgmod.loads(
        config.path.read_text()
        .replace('kind = "gmail"', 'kind = "maildir"\npath = "/"')  # type: ignore[union-attr]
        .replace(f'token_file = "{tmp_path / "token.json"}"', ""),
        config.path,
    )
    service = Service(
        str(config.path),
        config,
        notifier=Notifier(None, watchdog_usec=300_000),
        connector_factory=lambda a, c: Backfill(a.name),  # type: ignore[arg-type,misc]
        digest_job=lambda *a, **k: Outcome("sent", None),
    )

    def scenario() -> None:
        _until(lambda: all(rt.state == "ok" for rt in service.accounts.values()))

    assert _run(service, scenario) == 0
    assert "account work: 50 of about 50 records synced so far" in caplog.text
    assert "secret subject" not in caplog.text and "example.org" not in caplog.text
    line = service.status_line()
    # today's 07:30 when the test runs before it (Berlin time), else tomorrow's, with its weekday
    assert line.startswith("synced ") and re.search(
        r" just now; next digest (Mon |Tue |Wed |Thu |Fri |Sat |Sun )?07:30 Europe/Berlin", line
    ), line


class JumpClock:
    """Wall clock that the test moves forward, as a suspend and resume does."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


def test_waking_after_the_catch_up_window_skips_that_days_digest(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="keepwarm")
    zone = cfgmod.ZoneInfo("Europe/Berlin")
    soon = datetime.now(zone) + timedelta(minutes=30)
    if soon.date() != datetime.now(zone).date():
        pytest.skip("too close to local midnight for this scenario")
    config = _config(tmp_path, soon.strftime("%H:%M"))
    config = cfgmod.loads(
        config.path.read_text().split("[[accounts]]")[0],  # type: ignore[union-attr]
        config.path,
    )
    clock = JumpClock()
    calls: list[datetime] = []

    def digest(cfg: Config, store: Any, *, now: datetime, send: bool = True) -> Outcome:
        calls.append(now)
        return Outcome("sent", now.astimezone(zone).date())

    service = Service(
        str(config.path),
        config,
        notifier=Notifier(None, watchdog_usec=300_000),
        digest_job=digest,
        clock=clock,
    )

    def scenario() -> None:
        _until(lambda: service.digest.plan is not None)
        # The machine sleeps through the digest time and 13 h more (window: 12 h).
        clock.offset = timedelta(minutes=30, hours=13)
        _until(lambda: "not sent: woke up after the catch-up window" in caplog.text)

    assert _run(service, scenario) == 0
    assert calls == []
    plan = service.digest.plan
    assert plan is not None and plan.local_date > soon.date()


def test_a_refused_start_closes_what_the_service_opened(tmp_path: Path) -> None:
    """keepwarm run that refuses to start (here: a config others can read) leaves no socket,
    lock or store open; the leak check fails this test otherwise."""
    from keepwarm.daemon.errors import StartupError

    config = _config(tmp_path, "07:30")
    config.path.chmod(0o644)
    service = Service(str(config.path), config)
    with pytest.raises(StartupError, match="refusing to start"):
        service.start()
