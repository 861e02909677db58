"""Benchmark: Gmail backfill from the local emulator under the real per-user quota.

Prints quota units per message (ideal about 5: one messages.get each, plus list pages), the
achieved units/s as a share of the quota (target >= 90%, zero messages permanently failed),
messages/s, and the calls and units of an incremental sync with no change (target: one call).

20,000 messages x 5 units at 6,000 units/min take about 17 minutes, so the default is a smaller
mailbox; pass --count 20000 for the full run, or --quota to scale time (both are printed).

    .venv/bin/python bench/google_sync.py [--count 3000] [--quota 6000] [--concurrency 10]
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
    args = ap.parse_args()

    lifetime = 600 + args.count * 5 / args.quota * 60 * 2  # the emulator stops itself after this
    with (
        GoogleEmulator(gmail_units_per_minute=args.quota, max_lifetime=lifetime) as emu,
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

        print(f"mailbox: {args.count:,} messages; quota {args.quota:,} units/user/min; max_concurrency {args.concurrency}")  # fmt: skip
        t0 = time.monotonic()
        outcome = run_account(store, connector())
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
