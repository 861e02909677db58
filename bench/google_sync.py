"""Benchmark: Gmail backfill from the local emulator under the real per-user limits.

The emulator enforces the per-user quota (6,000 units a sliding minute) *and* a per-user
concurrency limit (requests and batch parts in flight; real Gmail refuses parts with 429 "Too
many concurrent requests for user" at 50-100 parts and sometimes above 20), and every request or
batch takes ``--latency`` seconds. Prints quota units per message (ideal about 5), the achieved
units/s as a share of the quota (target >= 90%, zero messages permanently failed), messages/s,
the parts refused for concurrency and where the adaptive batch window settled, and the calls
and units of an incremental sync with no change (target: one call).

20,000 messages x 5 units at 6,000 units/min take about 17 minutes, so the default is a smaller
mailbox; pass --count 20000 for the full run, or --quota to scale time (both are printed).

    .venv/bin/python bench/google_sync.py [--count 3000] [--quota 6000] [--concurrency 10]
                                          [--user-concurrency 20] [--latency 0.5]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from fakes.google_api import GMAIL_METADATA, GoogleEmulator  # noqa: E402
from fakes.google_world import gmail_connector, write_token  # noqa: E402

from keepwarm.connectors.google.quota import RetryPolicy  # noqa: E402
from keepwarm.daemon.store import Store  # noqa: E402
from keepwarm.daemon.sync import run_account  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--count", type=int, default=3000, help="messages in the mailbox (default 3000)"
    )
    ap.add_argument("--quota", type=int, default=6000, help="Gmail units per user per minute (default 6000, the real limit)")  # fmt: skip
    ap.add_argument("--concurrency", type=int, default=10, help="max_concurrency (default 10)")
    ap.add_argument("--user-concurrency", type=int, default=20, help="the emulator's per-user concurrency limit, in requests and batch parts (default 20)")  # fmt: skip
    ap.add_argument("--latency", type=float, default=0.5, help="seconds each request or batch takes (default 0.5)")  # fmt: skip
    args = ap.parse_args()

    lifetime = 600 + args.count * 5 / args.quota * 60 * 2  # the emulator stops itself after this
    with (
        GoogleEmulator(
            gmail_units_per_minute=args.quota,
            max_lifetime=lifetime,
            gmail_concurrency=args.user_concurrency,
            latency=args.latency,
        ) as emu,
        tempfile.TemporaryDirectory() as tmp,
    ):
        emu.add_mail(args.count, record=False, step_ms=60_000)
        token = write_token(emu, Path(tmp) / "token.json", (GMAIL_METADATA,))
        store = Store.open(Path(tmp) / "bench.db")

        def connector():  # type: ignore[no-untyped-def]
            return gmail_connector(
                emu, token, units_per_minute=args.quota, concurrency=args.concurrency,
                max_concurrency=args.concurrency, timeout=60.0, retry=RetryPolicy(),
            )  # fmt: skip

        print(f"mailbox: {args.count:,} messages; quota {args.quota:,} units/user/min; per-user concurrency {args.user_concurrency}; latency {args.latency}s; max_concurrency {args.concurrency}")  # fmt: skip
        t0 = time.monotonic()
        first = connector()
        outcome = run_account(store, first)
        elapsed = time.monotonic() - t0
        stored = store.counts()["message_sources"]
        units, calls = emu.units_used, sum(emu.calls.values())
        failed = args.count - stored
        print(f"backfill: {outcome.state}, {stored:,} stored, {failed:,} permanently failed, {elapsed:.1f} s")  # fmt: skip
        print(f"  quota units per message: {units / max(stored, 1):.2f} (ideal ~5)")
        share = (units / elapsed) / (args.quota / 60)
        print(
            f"  achieved {units / elapsed:.1f} units/s = {share:.0%} of the quota (target >= 90%)"
        )
        print(f"  messages/s: {stored / elapsed:.1f}")
        print(f"  HTTP requests {emu.http_requests:,}, API calls {calls:,}, 429s from quota {emu.quota_rejections}")  # fmt: skip
        w = first.window
        print(f"  parts refused for concurrency: {emu.concurrency_rejections} ({emu.concurrency_rejections / max(stored, 1):.1%} of messages); most in flight {emu.max_inflight}")  # fmt: skip
        print(f"  batch window: {w.refusals} halvings, settled at {w.size:.0f} parts in flight (batches of {w.batch()})")  # fmt: skip
        print(f"  time in back-off: bucket waited {first.client.limits.bucket.waited:.1f} s (pacing included)")  # fmt: skip

        before_calls, before_units, before_http = (
            emu.calls.copy(),
            emu.units_used,
            emu.http_requests,
        )
        run_account(store, connector())
        diff = emu.calls - before_calls
        print(f"incremental, no change: {sum(diff.values())} call(s) {dict(diff)}, {emu.units_used - before_units} units, {emu.http_requests - before_http} HTTP request(s) (target 1 call)")  # fmt: skip
        store.close()
        emu.check()


if __name__ == "__main__":
    main()
