"""Run the real ``keepwarm`` CLI in a subprocess, with test stand-ins for pieces not yet on main.

Used as ``python -m fakes.daemon_process --config X run`` (PYTHONPATH=tests). Production code is
not changed: this module only fills gaps in the registries before handing over to the CLI.

- If no ``maildir`` connector is registered, a small test reader is registered for that kind
  (files in cur/ and new/, sorted by name; the cursor is the last file name stored).
- ``KEEPWARM_TEST_BATCH_DELAY`` (seconds) slows every batch of the maildir connector, real or
  stand-in, so a test can kill the process in the middle of a sync.
- ``KEEPWARM_TEST_WEDGE=1`` makes a sync hang after its first batch (a wedged connector).
- If ``keepwarm.daemon.digest_job`` does not exist yet, a stand-in with its interface sends a
  plain message over ``[delivery.smtp]`` and keeps the ``digests`` ledger (once per local date).
"""

from __future__ import annotations

import os
import smtplib
import sys
import time
import types
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any

from keepwarm.connectors.base import Batch, Connector, Progress
from keepwarm.connectors.headers import message_from_headers, parse_header_block

BATCH = 10


class StandInMaildir:
    kind = "maildir"

    def __init__(self, account: str, path: Path) -> None:
        self.account = account
        self.path = path

    def sync(self, cursor: str | None) -> Iterator[Batch]:
        files = sorted(
            p
            for sub in ("cur", "new")
            if (self.path / sub).is_dir()
            for p in (self.path / sub).iterdir()
        )
        files.sort(key=lambda p: p.name)
        todo = [p for p in files if cursor is None or p.name > cursor]
        done = len(files) - len(todo)
        for i in range(0, len(todo), BATCH):
            chunk = todo[i : i + BATCH]
            batch = Batch(progress=Progress(done + i + len(chunk), len(files)))
            for p in chunk:
                headers = parse_header_block(p.read_bytes())
                meta = message_from_headers(headers, account=self.account, provider_id=p.name)
                if isinstance(meta, str):
                    batch.skipped[meta] = batch.skipped.get(meta, 0) + 1
                else:
                    batch.messages.append(meta)
            batch.cursor = chunk[-1].name
            yield batch


class Slowed:
    def __init__(self, inner: Connector, delay: float, wedge: bool) -> None:
        self.inner = inner
        self.kind = inner.kind
        self.account = inner.account
        self.delay = delay
        self.wedge = wedge

    def sync(self, cursor: str | None) -> Iterator[Batch]:
        for n, batch in enumerate(self.inner.sync(cursor)):
            if self.wedge and n == 1:
                while True:
                    time.sleep(3600)
            time.sleep(self.delay)
            yield batch


def install_connector() -> None:
    from keepwarm.daemon import accounts

    real = accounts._BUILDERS.get("maildir")
    delay = float(os.environ.get("KEEPWARM_TEST_BATCH_DELAY", "0") or 0)
    wedge = os.environ.get("KEEPWARM_TEST_WEDGE") == "1"

    def build(account: Any, config: Any) -> Connector:
        inner: Connector = (
            real(account, config)
            if real is not None
            else StandInMaildir(account.name, Path(account.opt("path")))
        )
        if not (delay or wedge):
            return inner
        if hasattr(inner, "batch_size"):
            inner.batch_size = BATCH  # the real connector: small batches, so a sync has many
        return Slowed(inner, delay, wedge)

    accounts._BUILDERS["maildir"] = build


@dataclass
class Outcome:
    state: str
    local_date: str
    subject: str | None = None
    path: Path | None = None
    error: str | None = None
    transient: bool = False


def stand_in_run_digest(
    config: Any,
    store: Any,
    *,
    now: datetime,
    send: bool = True,
    out: Any = None,
    force: bool = False,
) -> Outcome:
    day = now.astimezone(config.zone).date().isoformat()
    row = store.conn.execute("SELECT state FROM digests WHERE local_date = ?", (day,)).fetchone()
    if row is not None and row[0] == "sent" and not force:
        return Outcome("already_sent", day)
    msgid = make_msgid(domain="keepwarm.test")
    subject = f"keepwarm digest {day}"
    with store.atomic():
        store.conn.execute(
            "INSERT INTO digests (local_date, message_id, state, method, attempts, created_at, subject)"
            " VALUES (?, ?, 'intent', 'smtp', 1, ?, ?) ON CONFLICT(local_date) DO UPDATE SET"
            " attempts = attempts + 1",
            (day, msgid, int(time.time()), subject),
        )
    msg = EmailMessage()
    msg["From"] = config.digest.get("from") or config.addresses[0]
    msg["To"] = config.digest_to
    msg["Subject"] = subject
    msg["Message-ID"] = msgid
    msg.set_content(f"digest for {day}\n")
    try:
        with smtplib.SMTP(config.smtp.host, config.smtp.port, timeout=10) as s:
            s.send_message(msg)
    except OSError as exc:
        return Outcome("failed", day, error=str(exc), transient=True)
    with store.atomic():
        store.conn.execute(
            "UPDATE digests SET state = 'sent', sent_at = ? WHERE local_date = ?",
            (int(datetime.now(UTC).timestamp()), day),
        )
    return Outcome("sent", day, subject=subject)


def install_digest() -> None:
    try:
        import keepwarm.daemon.digest_job  # noqa: F401
    except ImportError:
        mod = types.ModuleType("keepwarm.daemon.digest_job")
        mod.run_digest = stand_in_run_digest  # type: ignore[attr-defined]
        sys.modules["keepwarm.daemon.digest_job"] = mod


def main() -> None:
    install_connector()
    install_digest()
    from keepwarm.daemon.cli import main as cli_main

    sys.argv = ["keepwarm", *sys.argv[1:]]
    cli_main()


if __name__ == "__main__":
    main()
