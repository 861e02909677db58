"""Maildir ingest benchmark: messages/s, peak RSS and database bytes per message.

Builds ``bench/.work/maildir-N`` (gitignored) from the real messages in ../shared/data,
replicated until there are N (default 100,000) files; each copy gets a unique Message-ID (only
that header line is rewritten). Then imports it through the real maildir connector and store,
times a no-change re-scan, and, when ``notmuch`` is on PATH, runs ``notmuch new`` on the same
maildir for comparison.

Copies of one message that differ only in their Message-ID are, by design, recognised as copies
(the store's content key: date, sender, recipients, subject) and stored once with one source row
per file. ``--distinct`` also shifts each copy's Date header by its copy number in seconds, so
every file is a distinct message: the worst case for database size.

    .venv/bin/python bench/ingest.py [-n 100000] [--distinct] [--profile]
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from datetime import timedelta
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path

from keepwarm.connectors.local.maildir import MaildirConnector
from keepwarm.daemon.store import Store
from keepwarm.daemon.sync import run_account

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data"
WORK = REPO / "bench" / ".work"
CORPORA = ("enron-maildir-sample", "spamassassin-ham", "enron-pst-eml-messy")
_MSGID = re.compile(rb"^message-id:[^\n]*(?:\n[ \t][^\n]*)*\n", re.IGNORECASE | re.MULTILINE)
_DATE = re.compile(rb"^date:([^\n]*)\n", re.IGNORECASE | re.MULTILINE)


def sources() -> list[bytes]:
    out = []
    for corpus in CORPORA:
        for p in sorted((DATA / corpus).rglob("*")):
            if p.is_file():
                out.append(p.read_bytes())
    if not out:
        sys.exit(f"no messages found under {DATA}: the shared corpora are missing")
    return out


def _split(data: bytes) -> tuple[bytes, bytes]:
    for sep in (b"\r\n\r\n", b"\n\n"):
        i = data.find(sep)
        if i != -1:
            return data[: i + len(sep) // 2], data[i + len(sep) // 2 :]
    return data, b""


def replicate(data: bytes, i: int, distinct: bool) -> bytes:
    head, body = _split(data)
    new_id = b"Message-ID: <bench-%d@keepwarm.bench>\n" % i
    head, n = _MSGID.subn(lambda _m: new_id, head, count=1)
    if n == 0:
        head = new_id + head
    if distinct:
        m = _DATE.search(head)
        if m:
            try:
                when = parsedate_to_datetime(m.group(1).decode("latin-1").strip())
                shifted = format_datetime(when + timedelta(seconds=i)).encode()
                head = head[: m.start()] + b"Date: " + shifted + b"\n" + head[m.end() :]
            except (TypeError, ValueError, OverflowError):
                pass
    return head + body


def build(n: int, distinct: bool) -> Path:
    root = WORK / f"maildir-{n}{'-distinct' if distinct else ''}"
    marker = root / ".complete"
    if marker.exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    msgs = sources()
    t0 = time.perf_counter()
    for sub in ("cur", "new", "tmp"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (root / "cur" / f"{1700000000 + i}.M{i}P1.bench:2,S").write_bytes(
            replicate(msgs[i % len(msgs)], i, distinct)
        )
    marker.write_text(str(n))
    print(
        f"built {root} ({n:,} files from {len(msgs):,} real messages) in {time.perf_counter() - t0:.1f} s"
    )
    return root


def db_size(path: Path, store: Store) -> int:
    store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return sum(p.stat().st_size for p in (path, Path(str(path) + "-wal")) if p.exists())


def notmuch(root: Path, ours_rate: float) -> None:
    exe = shutil.which("notmuch")
    if exe is None:
        print("notmuch: not on PATH, comparison skipped")
        return
    cfg = WORK / "notmuch-config"
    cfg.write_text(
        f"[database]\npath={root}\n[new]\ntags=new\n[maildir]\nsynchronize_flags=false\n"
    )
    shutil.rmtree(root / ".notmuch", ignore_errors=True)
    env = {**os.environ, "NOTMUCH_CONFIG": str(cfg)}
    t0 = time.perf_counter()
    subprocess.run([exe, "new", "--quiet"], env=env, check=True)
    dt = time.perf_counter() - t0
    files = sum(1 for _ in (root / "cur").iterdir())
    rate = files / dt
    print(f"notmuch new: {files:,} messages in {dt:.1f} s = {rate:,.0f} msg/s")
    print(f"keepwarm / notmuch: {ours_rate / rate:.1f}x")
    shutil.rmtree(root / ".notmuch", ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("-n", type=int, default=100_000, help="messages in the maildir")
    ap.add_argument("--distinct", action="store_true", help="make every copy a distinct message")
    ap.add_argument("--profile", action="store_true", help="cProfile the import (slower)")
    ap.add_argument("--no-notmuch", action="store_true")
    args = ap.parse_args()
    root = build(args.n, args.distinct)
    db = WORK / "ingest.db"
    for p in (db, Path(str(db) + "-wal"), Path(str(db) + "-shm")):
        p.unlink(missing_ok=True)
    store = Store.open(db)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0, c0 = time.perf_counter(), time.process_time()
    if args.profile:
        import cProfile
        import pstats

        prof = cProfile.Profile()
        outcome = prof.runcall(run_account, store, MaildirConnector("bench", root))
        pstats.Stats(prof).sort_stats("cumulative").print_stats(30)
    else:
        outcome = run_account(store, MaildirConnector("bench", root))
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    files = outcome.added + outcome.merged + sum(outcome.skipped.values())
    rate = files / dt
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    counts = store.counts()
    size = db_size(db, store)
    print(f"import: {files:,} files in {dt:.1f} s = {rate:,.0f} msg/s ({outcome.summary()})")
    print(
        f"import CPU time: {cpu:.1f} s = {files / cpu:,.0f} msg/s per CPU-second (load average now {os.getloadavg()[0]:.1f})"
    )
    print(
        f"stored: {counts['messages']:,} messages, {counts['message_sources']:,} sources, {counts['addresses']:,} addresses"
    )
    print(f"peak RSS: {rss / 1024:.0f} MB (before import {rss_before / 1024:.0f} MB)")
    print(
        f"database: {size / 1e6:.1f} MB = {size / max(1, counts['message_sources']):.0f} bytes per imported file, "
        f"{size / max(1, counts['messages']):.0f} bytes per stored message"
    )
    t1 = time.perf_counter()
    again = run_account(store, MaildirConnector("bench", root))
    print(f"re-scan without changes: {time.perf_counter() - t1:.2f} s ({again.summary()})")
    store.close()
    if not args.no_notmuch:
        notmuch(root, rate)


if __name__ == "__main__":
    main()
