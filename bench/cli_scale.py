"""The real ``keepwarm`` command on big stores: wall time and peak RSS of each command, each run in
a fresh process, as a user would wait for it.

Usage: ``.venv/bin/python bench/cli_scale.py [--sizes 100000,1000000] [--repeat 3] [--only CMD]``

Targets (issue 19): every command that reads the history (``people``, ``person``, ``digest``,
``status``) under 1 s on 100,000 messages and under 5 s on 1,000,000 (plus 20,000 events and
20,000 addresses), peak RSS under 400 MB on 1,000,000; start-up (``--version``, ``--help``,
``status`` on an empty store) under 150 ms over bare Python.

The stores are synthetic (``bench/engine.py``'s generator: Zipf-like popularity, threads, lists,
meetings) plus one imported maildir account whose files are the messages' sources. They are built
once and cached outside the repository, in ``$KEEPWARM_BENCH_CACHE`` (default
``~/.cache/keepwarm-bench``); a change of :data:`STORE_VERSION` rebuilds them. Each command runs
``--repeat`` times, alternating with the others so that a burst of load from elsewhere on the
machine does not hit one command only; the minimum and the median are printed. Every history
command runs with ``--as-of`` the synthetic history's last day. The first ``people --json`` runs
with no column block kept (daemon/store/blocks.py: as after an import) and is printed apart; the
commands timed after it take the kept blocks, as a user's commands do between syncs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from benchlib import ENV, KEEPWARM, Run, cache_root, compile_package, drop_column_blocks, load, run
from engine import SYNTHETIC_END, config_text, generate

STORE_VERSION = "2"  # bump when the generated store changes (2: threading keys as numbers)
ACCOUNT = "archive"
AS_OF = (SYNTHETIC_END - timedelta(days=1)).date().isoformat()  # its last full day


def build(n: int, addresses: int) -> Path:
    """The cached store of ``n`` messages: ``DIR/config.toml`` and ``DIR/keepwarm.db``."""
    root = cache_root() / f"cli-{n}-{addresses}-v{STORE_VERSION}"
    marker = root / ".complete"
    if marker.exists() and marker.read_text() == STORE_VERSION:
        return root
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    db = root / "keepwarm.db"
    t = time.perf_counter()
    generate(db, n, addresses)
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA synchronous=OFF")
    done = int(SYNTHETIC_END.timestamp())
    conn.execute(
        """INSERT INTO accounts (name, kind, cursor, state, last_attempt_at, last_ok_at)
           VALUES (?, 'maildir', '{}', 'ok', ?, ?)""",
        (ACCOUNT, done, done),
    )
    conn.execute(
        """INSERT INTO message_sources (account, provider_id, message, folder)
           SELECT ?, 'cur/' || id || '.bench:2,S', id, '' FROM messages""",
        (ACCOUNT,),
    )
    conn.commit()
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("ANALYZE")
    conn.close()
    os.chmod(db, 0o600)
    (root / "config.toml").write_text(config_text(db))
    marker.write_text(STORE_VERSION)
    print(f"built {root} ({n:,} messages) in {time.perf_counter() - t:.0f} s", flush=True)
    return root


def commands(root: Path, person: str) -> dict[str, list[str]]:
    cfg = ["--config", str(root / "config.toml")]
    return {
        "status": [KEEPWARM, *cfg, "status"],
        "people --json": [KEEPWARM, *cfg, "people", "--json", "--as-of", AS_OF],
        "people": [KEEPWARM, *cfg, "people", "--as-of", AS_OF],
        "person --why": [KEEPWARM, *cfg, "person", person, "--why", "--as-of", AS_OF],
        "digest": [KEEPWARM, *cfg, "digest", "--as-of", AS_OF],
    }


def measure(named: dict[str, list[str]], repeat: int, env: dict[str, str]) -> dict[str, list[Run]]:
    runs: dict[str, list[Run]] = {k: [] for k in named}
    for _ in range(repeat):  # alternate: noise from other work spreads over every command
        for name, argv in named.items():
            runs[name].append(run(argv, env))
    return runs


def summary(rs: list[Run]) -> str:
    walls = [r.wall for r in rs]
    return (
        f"min {min(walls):6.2f} s, median {statistics.median(walls):6.2f} s, "
        f"peak RSS {max(r.rss_mb for r in rs):5.0f} MB"
    )


def startup(repeat: int, env: dict[str, str]) -> None:
    with tempfile.TemporaryDirectory(prefix="kw-start-") as tmp:
        db = Path(tmp) / "keepwarm.db"
        cfg = Path(tmp) / "config.toml"
        cfg.write_text(config_text(db))
        named = {
            "bare python": [sys.executable, "-c", "pass"],
            "--version": [KEEPWARM, "--version"],
            "--help": [KEEPWARM, "--help"],
            "status (empty store)": [KEEPWARM, "--config", str(cfg), "status"],
        }
        runs = measure(named, repeat, env)
    bare = min(r.wall for r in runs["bare python"])
    print(f"start-up ({repeat} runs each, alternating; target < 150 ms over bare python):")
    for name, rs in runs.items():
        over = (
            ""
            if name == "bare python"
            else f", {1000 * (min(r.wall for r in rs) - bare):4.0f} ms over bare python"
        )
        print(f"  {name:22} {summary(rs)}{over}")


def warm(root: Path) -> None:
    """The database file in the page cache, as after a user's first command."""
    with open(root / "keepwarm.db", "rb") as f:
        while f.read(1 << 24):
            pass


def first_read(root: Path, argv: list[str], env: dict[str, str]) -> Run:
    """``argv`` with no column block kept (daemon/store/blocks.py), as the first command after
    an import, or after a change in every block: it reads every message from SQL and keeps the
    blocks for the commands after it."""
    run([KEEPWARM, "--config", str(root / "config.toml"), "status"], env)  # migrated first
    drop_column_blocks(root / "keepwarm.db")
    return run(argv, env)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sizes", default="100000,1000000", help="message counts, comma-separated")
    ap.add_argument("--addresses", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--only", action="append", help="time only this command (repeatable)")
    ap.add_argument("--no-startup", action="store_true")
    ap.add_argument("--json", action="store_true", help="also print the figures as JSON")
    args = ap.parse_args()
    env = ENV
    compile_package()
    print(load(), flush=True)
    results: dict[str, dict[str, float]] = {}
    if not args.no_startup:
        startup(max(args.repeat, 5), env)
    for n in (int(s) for s in args.sizes.split(",")):
        root = build(n, args.addresses)
        warm(root)
        with sqlite3.connect(root / "keepwarm.db") as conn:
            counts = {
                t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                for t in ("messages", "events", "addresses")
            }
        named = commands(root, "user1@org1.example")
        if args.only:
            named = {k: v for k, v in named.items() if k in args.only}
        target = 1.0 if n <= 100_000 else 5.0
        print(
            f"{counts['messages']:,} messages, {counts['events']:,} events, "
            f"{counts['addresses']:,} addresses ({args.repeat} runs each, alternating; "
            f"target < {target:g} s{', < 400 MB' if n >= 1_000_000 else ''}):",
            flush=True,
        )
        if "people --json" in named:
            first = first_read(root, named["people --json"], env)
            print(
                f"  {'people --json, first':22} {first.wall:6.2f} s, peak RSS {first.rss_mb:5.0f} MB"
                " (no column block kept yet: read from SQL, then kept)",
                flush=True,
            )
            results[f"{n}:people --json, first"] = {
                "min_s": round(first.wall, 3),
                "median_s": round(first.wall, 3),
                "peak_rss_mb": round(first.rss_mb, 1),
            }
        runs = measure(named, args.repeat, env)
        for name, rs in runs.items():
            ok = min(r.wall for r in rs) < target
            print(f"  {name:22} {summary(rs)}  {'met' if ok else 'NOT MET'}")
            results[f"{n}:{name}"] = {
                "min_s": round(min(r.wall for r in rs), 3),
                "median_s": round(statistics.median(r.wall for r in rs), 3),
                "peak_rss_mb": round(max(r.rss_mb for r in rs), 1),
            }
    if args.json:
        print(json.dumps(results))


if __name__ == "__main__":
    main()
