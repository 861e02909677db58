"""Benchmark identity resolution: a synthetic store of N messages over M addresses.

    .venv/bin/python bench/identity.py [--messages 1000000] [--addresses 20000] [--db PATH]

Prints the time to build the store (not the target), then the time and peak RSS of
``resolve`` and of the full ``keepwarm people`` view (identity + per-person stats).
"""

from __future__ import annotations

import argparse
import random
import resource
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from keepwarm.connectors.base import Address, Batch, MessageMeta
from keepwarm.daemon.config import loads
from keepwarm.daemon.identity import resolve
from keepwarm.daemon.people_stats import load_view
from keepwarm.daemon.store import Store

ME = "me@example.com"
T0 = datetime(2023, 1, 1, tzinfo=UTC)
MARKERS = [(), (), (), (), ("list-id", "list-unsubscribe"), ("precedence:bulk",)]


def build(path: Path, n_messages: int, n_addresses: int, seed: int = 1) -> None:
    rng = random.Random(seed)
    people = [f"p{i}.name@d{i % 997}.example" for i in range(n_addresses)]
    store = Store.open(path)
    batch: list[MessageMeta] = []
    for i in range(n_messages):
        other = people[
            min(int(rng.paretovariate(1.2)) - 1, n_addresses - 1)
            if rng.random() < 0.5
            else rng.randrange(n_addresses)
        ]
        outbound = rng.random() < 0.4
        extra = [
            Address(people[rng.randrange(n_addresses)]) for _ in range(rng.choice((0, 0, 1, 3)))
        ]
        batch.append(
            MessageMeta(
                account="bench",
                provider_id=str(i),
                date=T0 + timedelta(seconds=rng.randrange(3 * 365 * 86400)),
                sender=Address(ME if outbound else other, "" if outbound else other.split("@")[0]),
                to=(Address(other if outbound else ME), *extra),
                message_id=f"{i}@bench",
                subject=f"s{i % 5000}",
                markers=() if outbound else rng.choice(MARKERS),
            )
        )
        if len(batch) == 5000:
            store.apply_batch("bench", "maildir", Batch(messages=batch, cursor=str(i)))
            batch = []
    if batch:
        store.apply_batch("bench", "maildir", Batch(messages=batch))
    store.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=1_000_000)
    ap.add_argument("--addresses", type=int, default=20_000)
    ap.add_argument("--db", type=Path, help="reuse (or build once) the store at this path")
    args = ap.parse_args()
    config = loads(f'[me]\nname = "Me"\naddresses = ["{ME}"]\ntimezone = "UTC"\n')
    with tempfile.TemporaryDirectory() as tmp:
        db = args.db or Path(tmp) / "bench.db"
        t = time.perf_counter()
        if not db.exists():
            build(db, args.messages, args.addresses)
        print(
            f"built store: {args.messages:,} messages, {args.addresses:,} addresses in {time.perf_counter() - t:.1f}s"
        )
        store = Store.open(db)
        t = time.perf_counter()
        resolve(store, config)
        print(f"resolve, first run (cold page cache): {time.perf_counter() - t:.2f}s")
        t = time.perf_counter()
        ident = resolve(store, config)
        t_resolve = time.perf_counter() - t
        t = time.perf_counter()
        view = load_view(store, config, T0 + timedelta(days=900))
        t_view = time.perf_counter() - t
        rel = sum(1 for p in ident.people.values() if p.kind == "person" and p.two_way)
        print(f"resolve: {t_resolve:.2f}s ({len(ident.people):,} clusters, {rel:,} relationships)")
        print(f"people view with stats, as of a date: {t_view:.2f}s ({len(view.stats):,} people)")
        print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
