"""A big maildir or mbox import is parsed in worker processes while the caller stores: the
batches, cursors, skips and stored records are exactly those of a serial import."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from leakcheck import close_after_test
from localmail import double_unless_seven, make_message, mbox_entry, write_maildir_message

from keepwarm.connectors.base import Batch
from keepwarm.connectors.local import workers
from keepwarm.connectors.local.common import MailFileConnector
from keepwarm.connectors.local.maildir import MaildirConnector
from keepwarm.connectors.local.mbox import PARALLEL_BYTES, MboxConnector
from keepwarm.connectors.local.workers import PARALLEL_MIN, each
from keepwarm.daemon.store import Store
from keepwarm.daemon.sync import run_account

N = PARALLEL_MIN + 150  # enough to start workers


@pytest.fixture
def pools(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The worker pools started (their sizes)."""
    started: list[int] = []

    class Counted(workers.ProcessPoolExecutor):
        def __init__(self, n: int, **kw: object) -> None:
            started.append(n)
            super().__init__(n, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(workers, "ProcessPoolExecutor", Counted)
    return started


def variety(n: int) -> bytes:
    """Messages of several kinds: plain, lists, X-To names, no date, binary junk."""
    if n % 97 == 0:
        return bytes(range(256)) * 4  # not mail: skipped as binary
    extra: dict[str, str] = {}
    if n % 5 == 0:
        extra["List-Id"] = "<team.lists.example.com>"
    if n % 7 == 0:
        extra["X-To"] = "Doe, Jane </O=ACME/OU=NA/CN=RECIPIENTS/CN=JDOE>, Bob Smith"
    msg = make_message(
        n,
        sender=f"person{n % 40}@example.com",
        to=f"me@example.com, jdoe@acme.example, smith{n % 3}@acme.example",
        extra=extra,
    )
    data = msg.as_bytes()
    if n % 53 == 0:
        data = data.replace(b"Date:", b"X-Old-Date:")  # falls back to the file time
    return data


def batches(connector: MailFileConnector) -> list[tuple[object, ...]]:
    out = []
    for b in connector.sync(None):  # type: ignore[attr-defined]
        assert isinstance(b, Batch)
        out.append((b.messages, b.deletions, b.cursor, b.skipped, b.progress))
    return out


def stored(connector: MailFileConnector) -> list[tuple[object, ...]]:
    store = close_after_test(Store.memory())
    run_account(store, connector)  # type: ignore[arg-type]
    return store.conn.execute(
        """SELECT m.message_id, m.date, m.subject, m.markers, s.provider_id,
                  (SELECT group_concat(a.email || ':' || a.name || ':' || ma.role, ',')
                   FROM message_addresses ma JOIN addresses a ON a.id = ma.address
                   WHERE ma.message = m.id)
           FROM messages m JOIN message_sources s ON s.message = m.id ORDER BY s.provider_id"""
    ).fetchall()


def test_a_big_maildir_is_read_in_workers_exactly_as_serially(
    tmp_path: Path, pools: list[int]
) -> None:
    root = tmp_path / "Mail"
    for n in range(N):
        write_maildir_message(root, f"{1700000000 + n}.M{n}P1.host:2,S", variety(n))
    parallel = MaildirConnector("a", root, workers=2)
    serial = MaildirConnector("a", root, workers=1)
    assert batches(parallel) == batches(serial)
    assert pools == [2]
    assert stored(parallel) == stored(serial)
    assert len(stored(serial)) > N * 0.9


def test_a_big_mbox_is_read_in_workers_exactly_as_serially(
    tmp_path: Path, pools: list[int]
) -> None:
    path = tmp_path / "all.mbox"
    with path.open("wb") as fh:
        for n in range(N):
            fh.write(mbox_entry(make_message(n, body="x" * PARALLEL_BYTES)))
    parallel = MboxConnector("a", path, workers=2)
    serial = MboxConnector("a", path, workers=1)
    assert batches(parallel) == batches(serial)
    assert pools == [2]
    assert stored(parallel) == stored(serial)
    assert len(stored(serial)) == N


def test_results_come_in_order_and_a_worker_error_reaches_the_caller() -> None:
    got = list(each(double_unless_seven, range(7), parallel=True, workers=2))
    assert got == [(x, x * 2) for x in range(7)]
    with pytest.raises(ValueError, match="a bug in the parser"):
        list(each(double_unless_seven, range(3000), parallel=True, workers=2))


SCRIPT = """
import time
from keepwarm.connectors.local import workers

def chunks():
    yield [1]
    yield [2]
    print("READY", flush=True)
    time.sleep(120)  # killed here, with the workers waiting for more work

if __name__ == "__main__":
    for _ in workers.in_order(len, chunks(), workers=2):
        pass
"""


def _children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                status = (d / "status").read_text()
            except OSError:
                continue
            if f"\nPPid:\t{pid}\n" in status:
                out.append(int(d.name))
    return out


def _running(pid: int) -> bool:
    try:
        status = (Path("/proc") / str(pid) / "status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


def test_workers_exit_when_the_importer_is_killed(tmp_path: Path) -> None:
    """kill -9 of an importing process leaves no worker behind (they waited for work forever,
    holding the importer's output pipes: a fault campaign hung on them)."""
    import signal
    import subprocess
    import sys
    import time

    script = tmp_path / "importer.py"
    script.write_text(SCRIPT)
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    kids: list[int] = []
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "READY"
        kids = _children(proc.pid)
        assert kids, "the pool started no worker"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 30
        while any(_running(k) for k in kids) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [k for k in kids if _running(k)]
        assert proc.stdout.read() == ""  # the pipe closed: nobody holds it any more
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
        for k in kids:  # orphans have a new parent: the list taken before the kill
            if _running(k):
                os.kill(k, signal.SIGKILL)
