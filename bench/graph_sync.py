"""Benchmark: backfill 20,000 Outlook messages from the Graph emulator, then incremental syncs.

Run from the repo root:  .venv/bin/python bench/graph_sync.py [--messages N] [--latency SECONDS]

The emulator enforces Outlook's four concurrent requests per mailbox, counting the members of a
``$batch`` (Graph hands Outlook four at a time), sends recurring meetings as calendarView/delta
does (occurrences with only their times; the series master holds the people), and ``--latency``
adds a per-request server delay to model a real network round trip.

Prints Graph requests per 1,000 messages, messages/s for the backfill (store on disk, real msal,
real HTTP on loopback), the requests refused for concurrency (target 0), the series masters
fetched, and the requests and time of an incremental sync with no change and of one after
messages moved between folders and deleted (their ``@removed`` entries are looked up with
``$batch`` while the next folders' pages are prefetched).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from fakes.graph_api import GraphEmulator
from ms_world import connector_for, sign_in

from keepwarm.daemon.store import Store
from keepwarm.daemon.sync import run_account


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=20_000)
    ap.add_argument("--events", type=int, default=500)
    ap.add_argument("--series", type=int, default=40, help="weekly recurring meetings")
    ap.add_argument("--changes", type=int, default=300, help="messages moved or deleted later")
    ap.add_argument("--latency", type=float, default=0.0, help="server delay per request (s)")
    args = ap.parse_args()
    now = datetime.now(UTC)
    with tempfile.TemporaryDirectory() as tmp, GraphEmulator() as emu:
        projects = emu.create_folder("Projects", "inbox")
        ids = emu.add_bulk(args.messages, folders=("inbox", "sentitems", "archive", projects))
        for i in range(args.events):
            emu.add_event(subject=f"Meeting {i}")
        for i in range(args.series):  # half began before the two-year window
            emu.add_series(
                subject=f"Weekly {i}",
                start=now - timedelta(days=900 if i % 2 else 300, hours=i),
                count=150,
                organizer=f"lead{i}@partner.example",
                attendees=[(f"lead{i}@partner.example", "accepted", "required")],
            )
        emu.latency = args.latency
        token = Path(tmp) / "office.json"
        sign_in(emu, token)
        store = Store.open(Path(tmp) / "keepwarm.db")

        def timed(label: str) -> tuple[float, int]:
            before = emu.graph_requests
            t0 = time.perf_counter()
            out = run_account(store, connector_for(emu, token, timeout=30))
            assert out.state == "ok", (label, out)
            return time.perf_counter() - t0, emu.graph_requests - before

        backfill_s, backfill_req = timed("backfill")
        stored = store.counts()["messages"]
        events = store.counts()["events"]
        masters = emu.routes["events/{id}"]
        incr_s, incr_req = timed("no change")
        for n, mid in enumerate(ids[: args.changes]):
            if n % 3:
                emu.move_message(mid, "archive" if n % 3 == 1 else "inbox")
            else:
                emu.delete_message(mid)
        change_s, change_req = timed("changes")
        store.close()

    print(f"messages backfilled        {stored:,} (+{events:,} events), latency {args.latency}s")
    print(f"backfill                   {backfill_s:.2f} s, {backfill_req} Graph requests")
    print(f"requests per 1,000 msgs    {backfill_req * 1000 / max(stored, 1):.2f}")
    print(f"messages/s                 {stored / backfill_s:,.0f}")
    print(
        f"series masters fetched     {masters} ({args.series} series, half older than the window)"
    )
    print(f"no-change incremental      {incr_req} Graph requests, {incr_s * 1000:.0f} ms")
    label = f"{args.changes} moved or deleted"
    print(f"{label:<27}{change_req} Graph requests, {change_s * 1000:.0f} ms")
    print(
        f"refused for concurrency    {emu.concurrency_rejections} (most in flight {emu.max_inflight} of 4)"
    )


if __name__ == "__main__":
    main()
