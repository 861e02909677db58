"""Benchmark: backfill 20,000 Outlook messages from the Graph emulator, then a no-change sync.

Run from the repo root:  .venv/bin/python bench/graph_sync.py [--messages N] [--latency SECONDS]

Prints Graph requests per 1,000 messages, messages/s for the backfill (store on disk, real msal,
real HTTP on loopback), and the requests and time of an incremental sync with no change.
``--latency`` adds a per-request server delay to model a real network round trip.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
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
    ap.add_argument("--latency", type=float, default=0.0, help="server delay per request (s)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp, GraphEmulator() as emu:
        projects = emu.create_folder("Projects", "inbox")
        emu.add_bulk(args.messages, folders=("inbox", "sentitems", "archive", projects))
        for i in range(args.events):
            emu.add_event(subject=f"Meeting {i}")
        emu.latency = args.latency
        token = Path(tmp) / "office.json"
        sign_in(emu, token)
        store = Store.open(Path(tmp) / "keepwarm.db")

        before = emu.graph_requests
        t0 = time.perf_counter()
        out = run_account(store, connector_for(emu, token, timeout=30))
        backfill_s = time.perf_counter() - t0
        backfill_req = emu.graph_requests - before
        assert out.state == "ok", out
        stored = store.counts()["messages"]

        before = emu.graph_requests
        t0 = time.perf_counter()
        out = run_account(store, connector_for(emu, token, timeout=30))
        incr_s = time.perf_counter() - t0
        incr_req = emu.graph_requests - before
        assert out.state == "ok" and out.added == 0, out
        store.close()

    print(f"messages backfilled        {stored:,} (+{args.events} events), latency {args.latency}s")
    print(f"backfill                   {backfill_s:.2f} s, {backfill_req} Graph requests")
    print(f"requests per 1,000 msgs    {backfill_req * 1000 / max(stored, 1):.2f}")
    print(f"messages/s                 {stored / backfill_s:,.0f}")
    print(f"no-change incremental      {incr_req} Graph requests, {incr_s * 1000:.0f} ms")


if __name__ == "__main__":
    main()
