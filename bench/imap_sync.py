"""Benchmark: backfill 100,000 real messages from a private Dovecot, then an idle incremental sync.

The messages are the real corpora in ../shared/data (SpamAssassin ham, Enron maildir and PST
exports), replicated with unique Message-IDs until there are N of them, written straight into
the test Dovecot's Maildir (INBOX, Archive, Sent) with their dates as file times; each further
copy of a message is dated one more day later, so the store sees distinct messages. Bodies are cut
to 2 KB to keep the disk write short: keepwarm never fetches them.

Run: .venv/bin/python bench/imap_sync.py [--messages 100000]
Prints: Dovecot's own indexing time, the backfill through run_account into an on-disk store
(messages/s, round trips), the connector alone into no store, and the idle incremental sync.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from fakes.dovecot import Dovecot  # noqa: E402
from imapclient import IMAPClient  # noqa: E402

from keepwarm.connectors.headers import header_block, parse_date  # noqa: E402
from keepwarm.connectors.imap.connector import ImapConnector  # noqa: E402
from keepwarm.connectors.imap.session import ImapSettings  # noqa: E402
from keepwarm.daemon.store import Store  # noqa: E402
from keepwarm.daemon.sync import run_account  # noqa: E402

DATA = REPO.parent / "shared" / "data"
FOLDERS = ("", ".Archive", ".Sent")  # Maildir++: INBOX is the root
_DATE = re.compile(rb"^date:[^\r\n]*\r?\n", re.IGNORECASE | re.MULTILINE)
_MSGID = re.compile(
    rb"^message-id:[^\r\n]*(\r?\n[ \t][^\r\n]*)*\r?\n", re.IGNORECASE | re.MULTILINE
)


def corpus() -> list[bytes]:
    files = [
        p
        for sub in ("spamassassin-ham", "enron-maildir-sample", "enron-pst-eml-messy")
        for p in sorted((DATA / sub).rglob("*"))
        if p.is_file() and p.name != "cmds"
    ]
    if not files:
        sys.exit(f"no corpus found under {DATA}")
    return [p.read_bytes() for p in files]


def with_new_id(raw: bytes, n: int) -> bytes:
    head = header_block(raw)
    body = raw[len(head) : len(head) + 2048]
    head = _MSGID.sub(b"", head + b"\n").rstrip(b"\r\n")
    return head + f"\nMessage-ID: <bench.{n}@keepwarm.invalid>".encode() + body


def replica(raw: bytes, copy: int) -> bytes:
    """Copy number ``copy`` of a message: its Date moved ``copy`` days later, so each copy is a
    distinct message for the store (same sender, recipients, subject, another day)."""
    if copy == 0:
        return raw
    head = header_block(raw)
    d = parse_date(_date_of(raw))
    if d is None:
        return raw
    new = format_datetime(d + timedelta(days=copy)).encode()
    head = _DATE.sub(lambda _m: b"Date: " + new + b"\n", head + b"\n", count=1).rstrip(b"\r\n")
    return head + raw[len(header_block(raw)) :]


def load(server: Dovecot, user: str, n: int) -> None:
    base = server.maildir(user)
    for f in FOLDERS:
        for sub in ("cur", "new", "tmp"):
            (base / f / sub).mkdir(parents=True, exist_ok=True)
        if f:
            (base / f / "maildirfolder").touch()
    msgs = corpus()
    fallback = datetime(2001, 6, 1, tzinfo=UTC).timestamp()
    for i in range(n):
        raw = replica(msgs[i % len(msgs)], i // len(msgs))
        data = with_new_id(raw, i)
        d = parse_date(_date_of(raw))
        ts = d.timestamp() if d and d.year > 1990 and d < datetime.now(UTC) else fallback
        folder = FOLDERS[0] if i % 10 < 6 else FOLDERS[1] if i % 10 < 9 else FOLDERS[2]
        path = base / folder / "cur" / f"{int(ts)}.M{i}P1.bench,S={len(data)}:2,S"
        path.write_bytes(data)
        os.utime(path, (ts, ts))
    server.fix_owner(base)


def _date_of(raw: bytes) -> str | None:
    m = re.search(rb"^date:([^\r\n]*)", header_block(raw), re.IGNORECASE | re.MULTILINE)
    return m.group(1).decode("latin-1") if m else None


def index(server: Dovecot, user: str) -> None:
    c = IMAPClient("127.0.0.1", server.port, ssl=False, timeout=600)
    c.login(user, server.users[user])
    for name in ("INBOX", "Archive", "Sent"):
        c.select_folder(name, readonly=True)
    c.logout()


def server_cpu(server: Dovecot) -> float:
    """CPU seconds used so far by Dovecot's finished processes (the master reaps them all)."""
    assert server.proc is not None
    fields = Path(f"/proc/{server.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return sum(int(fields[i]) for i in (11, 12, 13, 14)) / ticks  # utime stime cutime cstime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=100_000)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="keepwarm-bench-imap-"))
    server = Dovecot(root, {"bench": "bench-pw"})
    server.start()
    try:
        t0 = time.perf_counter()
        load(server, "bench", args.messages)
        t1 = time.perf_counter()
        index(server, "bench")
        t2 = time.perf_counter()
        print(f"loaded {args.messages:,} messages into the Maildir in {t1 - t0:.1f}s")
        print(f"dovecot indexed them (first SELECT of each folder) in {t2 - t1:.1f}s")

        settings = ImapSettings(
            host="127.0.0.1",
            port=server.tls_port,
            security="tls",
            username="bench",
            password=lambda: "bench-pw",
            ca_file=server.ca_file,
            backfill=timedelta(days=365 * 40),
        )
        store = Store.open(root / "keepwarm.db")
        conn = ImapConnector("bench", settings)
        t, cpu, scpu = time.perf_counter(), time.process_time(), server_cpu(server)
        outcome = run_account(store, conn)
        time.sleep(0.5)  # let the master reap the imap process
        dt, dcpu = time.perf_counter() - t - 0.5, time.process_time() - cpu
        dscpu = server_cpu(server) - scpu
        n = outcome.added + outcome.merged + sum(outcome.skipped.values())
        print(
            f"backfill end to end (TLS, headers parsed, stored in SQLite): {n:,} messages in "
            f"{dt:.1f}s = {n / dt:,.0f} messages/s, {conn.round_trips} round trips "
            f"({outcome.batches} batches; {outcome.added:,} stored, {outcome.merged:,} merged, "
            f"skipped {outcome.skipped})"
        )
        print(
            f"  CPU: keepwarm {dcpu:.1f}s ({n / dcpu:,.0f} messages per CPU-second), Dovecot "
            f"{dscpu:.1f}s; the two overlap (prefetch), so on an otherwise idle machine the "
            f"backfill needs about {max(dcpu, dscpu):.1f}s = {n / max(dcpu, dscpu):,.0f} messages/s"
        )

        t = time.perf_counter()
        idle = list(conn.sync(store.cursor("bench")))
        print(
            f"incremental sync with no change: {(time.perf_counter() - t) * 1000:.0f} ms, "
            f"{conn.round_trips} round trips after login, {len(idle)} batches"
        )

        conn2 = ImapConnector("bench", dataclasses.replace(settings))
        t, cpu, scpu = time.perf_counter(), time.process_time(), server_cpu(server)
        m = sum(len(b.messages) + sum(b.skipped.values()) for b in conn2.sync(None))
        time.sleep(0.5)
        dt, dcpu = time.perf_counter() - t - 0.5, time.process_time() - cpu
        dscpu = server_cpu(server) - scpu
        print(
            f"connector alone (warm Dovecot cache, no store): {m:,} messages in {dt:.1f}s = "
            f"{m / dt:,.0f} messages/s; CPU: keepwarm {dcpu:.1f}s ({m / dcpu:,.0f} per "
            f"CPU-second), Dovecot {dscpu:.1f}s"
        )
        print(f"(load average while running: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
        store.close()
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
