"""Benchmark of the cadence engine: the demo year, and a synthetic 1,000,000-interaction history.

Usage: ``.venv/bin/python bench/engine.py [--messages N] [--addresses N] [--skip-demo] [--stages]``

Targets: demo year under 1 s; 1,000,000 interactions over 20,000 addresses under 4 s (issue 19;
issue 3's was 10 s) with peak RSS under 500 MB. Each measurement runs in a fresh subprocess so its
peak RSS is its own; the figures printed cover reading the store (daemon/store/history.py) and the
engine (analyze).

The synthetic run is timed twice: first with no column block kept (daemon/store/blocks.py; the
messages read from SQL and kept, as by the first command after an import), then as every later
command reads them. Then, on the same store, what ``keepwarm people --json`` does after
start-up, stage by stage: your decisions, the messages read once for identity's counts and the
engine, identity resolution, the per-person figures, the engine's report (decisions, the rest of
the engine) and the output. bench/cli_scale.py times the real command in a fresh process.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchlib import drop_column_blocks

ME = "me@example.com"
SYNTHETIC_END = datetime(2026, 6, 1, tzinfo=UTC)


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# -- synthetic history ----------------------------------------------------------------------------
def generate(path: Path, n_messages: int, n_addresses: int, seed: int = 7) -> None:
    """Write a synthetic store: Zipf-like contact popularity, threads, lists, meetings."""
    from keepwarm.daemon.store import Store
    from keepwarm.daemon.store.migrations import fill_thread_keys

    rng = random.Random(seed)
    store = Store.open(path)
    store.close()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA journal_mode=OFF")
    emails = [ME] + [f"user{i}@org{i % 900}.example" for i in range(1, n_addresses)]
    conn.executemany(
        "INSERT INTO addresses (id, email, name) VALUES (?, ?, ?)",
        [(i + 1, e, f"User {i}") for i, e in enumerate(emails)],
    )
    weights = [1.0 / (i**1.1) for i in range(1, n_addresses)]
    end = SYNTHETIC_END
    start = end - timedelta(days=3 * 365)
    span = int((end - start).total_seconds())
    t0 = int(start.timestamp())
    subjects = [f"topic {i}" for i in range(40_000)]
    batch_m: list[tuple[object, ...]] = []
    batch_a: list[tuple[int, int, int]] = []
    contacts = rng.choices(range(2, n_addresses + 1), weights=weights, k=n_messages)
    for mid in range(1, n_messages + 1):
        other = contacts[mid - 1]
        out = rng.random() < 0.45
        sender = 1 if out else other
        date_ = t0 + rng.randrange(span)
        subj = rng.choice(subjects)
        reply = rng.random() < 0.5
        markers = "list-id" if rng.random() < 0.05 else None
        batch_m.append(
            (
                mid,
                f"<{mid}@synthetic>",
                f"k{mid}",
                date_,
                sender,
                ("Re: " if reply else "") + subj,
                subj,
                f"<{mid - 1}@synthetic>" if reply and mid > 1 else None,
                None,
                None,
                None,
                markers,
                1,
            )
        )
        batch_a.append((mid, 0, sender))
        recipient = other if out else 1
        batch_a.append((mid, 1, recipient))
        if rng.random() < 0.3:
            extra = rng.randrange(2, n_addresses + 1)
            if extra not in (sender, recipient):
                batch_a.append((mid, 2, extra))
        if len(batch_m) >= 50_000:
            _flush(conn, batch_m, batch_a)
    _flush(conn, batch_m, batch_a)
    fill_thread_keys(conn)  # what the store works out for each message it writes
    _events(conn, rng, t0, span, n_addresses, max(1000, n_messages // 50))
    conn.commit()
    conn.close()


def _flush(
    conn: sqlite3.Connection, ms: list[tuple[object, ...]], addrs: list[tuple[int, int, int]]
) -> None:
    conn.executemany(
        """INSERT INTO messages (id, message_id, content_key, date, sender, subject, norm_subject,
               in_reply_to, refs, thread_hint, list_id, markers, n_recipients)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        ms,
    )
    conn.executemany(
        "INSERT OR IGNORE INTO message_addresses (message, role, address) VALUES (?, ?, ?)", addrs
    )
    ms.clear()
    addrs.clear()


def _events(
    conn: sqlite3.Connection, rng: random.Random, t0: int, span: int, n_addr: int, n: int
) -> None:
    for eid in range(1, n + 1):
        start = t0 + rng.randrange(span)
        people = rng.sample(range(2, min(n_addr, 400) + 1), rng.randint(1, 4))
        conn.execute(
            """INSERT INTO events (id, dedupe_key, start, "end", organizer, my_response, n_attendees, title)
               VALUES (?, ?, ?, ?, 1, 'accepted', ?, ?)""",
            (eid, f"e{eid}", start, start + 3600, len(people) + 1, f"meeting {eid}"),
        )
        rows = [(eid, 1, "accepted", 1, 0, 0, 1)] + [
            (eid, p, rng.choice(["accepted", "declined", "needsAction"]), 0, 0, 0, 0)
            for p in people
        ]
        conn.executemany(
            """INSERT INTO event_attendees (event, address, response, organizer, optional, resource, is_self)
               VALUES (?, ?, ?, ?, ?, ?, ?)""",
            rows,
        )


def measure_synthetic(path: Path, now: datetime) -> dict[str, Any]:
    """Queries + engine over the synthetic store; every address is a person, ME is self."""
    from keepwarm.daemon.store.history import load_history
    from keepwarm.digests.cadence import Directory, EngineSettings, analyze

    conn = sqlite3.connect(path)
    cpu = time.process_time()
    t = time.perf_counter()
    history = load_history(conn, until=now, events_until=now + timedelta(days=1), stream=True)
    t_load = time.perf_counter() - t
    directory = Directory({}, {}, frozenset({ME}))
    t = time.perf_counter()
    report = analyze(history, directory, EngineSettings(), now)
    t_engine = time.perf_counter() - t
    cpu = time.process_time() - cpu
    return {
        "fingerprint": _fingerprint(report),
        "cpu_s": round(cpu, 2),
        "messages": conn.execute(
            "SELECT count(*) FROM messages WHERE date <= ?", (int(now.timestamp()),)
        ).fetchone()[0],
        "events": len(history.events),
        "people": len(report.people),
        "signals": len(report.signals),
        "load_s": round(t_load, 2),
        "engine_s": round(t_engine, 2),
        "total_s": round(t_load + t_engine, 2),
        "peak_rss_mb": round(_rss_mb(), 1),
    }


def config_text(db: Path) -> str:
    """A config for the synthetic store: ME is you, digests go to a file outbox."""
    return (
        f'[me]\nname = "Me"\naddresses = ["{ME}"]\ntimezone = "UTC"\n\n'
        f'[store]\npath = "{db}"\n\n[delivery]\nmethod = "file"\n'
        f'outbox = "{db.parent / "outbox"}"\n'
    )


def measure_command(config_path: Path, now: datetime) -> dict[str, Any]:
    """What ``keepwarm people --json`` does after start-up, stage by stage (wall seconds): your
    decisions, the activity queries, identity resolution, per-person figures, the engine's
    report (decisions, history queries, engine) and the JSON output."""
    from keepwarm.daemon import config as cfgmod
    from keepwarm.daemon import decisions
    from keepwarm.daemon.commands.people import people_json, selected_people
    from keepwarm.daemon.identity import resolve_activity
    from keepwarm.daemon.network import identity_and_messages
    from keepwarm.daemon.people_stats import PeopleView, person_stats
    from keepwarm.daemon.store import Store

    out: dict[str, Any] = {}
    t = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal t
        out[name] = round(time.perf_counter() - t, 2)
        t = time.perf_counter()

    config = cfgmod.load(config_path)
    store = Store.open(config.store_path)
    decided = decisions.decided_config(config, store, now)
    lap("open_and_decisions_s")
    activity, ahead = identity_and_messages(store, decided, now, now)
    lap("messages_and_activity_s")  # one read of the messages: identity's counts and the engine's
    identity = resolve_activity(activity, decided)
    lap("identity_s")
    view = PeopleView(identity, activity, person_stats(identity, activity), now)
    lap("person_figures_s")
    report = decisions.build_report(config, store, now, identity=identity, ahead=ahead)
    lap("report_s")
    # as the command writes it (from 10,000 people with a core free, half in a forked child)
    text = people_json(view, False, report, selected_people(view, False, report))
    lap("output_s")
    out["total_s"] = round(sum(v for k, v in out.items() if k.endswith("_s")), 2)
    out["people"] = text.count('"key"')
    out["peak_rss_mb"] = round(_rss_mb(), 1)
    return out


def measure_stages(path: Path, now: datetime) -> dict[str, float]:
    """CPU seconds of each stage of the engine's message path, run one after the other."""
    import gc
    from zoneinfo import ZoneInfo

    import numpy as np

    from keepwarm.daemon.store.history import load_history
    from keepwarm.digests.cadence import Directory, EngineSettings, analyze
    from keepwarm.digests.cadence import engine as eng
    from keepwarm.digests.cadence import touches as tc
    from keepwarm.digests.cadence.ledger import fold_touches
    from keepwarm.digests.queries import message_source

    gc.disable()  # as analyze does
    conn = sqlite3.connect(path)
    history = load_history(conn, until=now, events_until=now + timedelta(days=1), stream=True)
    source = message_source(history.messages)
    directory = Directory({}, {}, frozenset({ME}))
    settings = EngineSettings()
    ts = int(now.timestamp())
    out: dict[str, float] = {}
    is_self = np.array([e in directory.self_addresses for e in source.emails])
    is_list = np.array(
        [bool(e) and directory.kind_of(directory.key_of(e)) == "list" for e in source.emails]
    )
    t = time.process_time()
    columns = tc.read_messages(source, ts)
    messages = columns.messages
    out["read_messages_and_recipients"] = time.process_time() - t
    index: dict[str, int] = {}
    addr_person = np.array(
        [
            index.setdefault(k, len(index))
            if (k := tc.person_of(directory, e) if e else None)
            else -1
            for e in source.emails
        ]
    )
    t = time.process_time()
    c = tc._classify(messages, columns.recipients, addr_person, is_self, is_list, len(index), 10)
    out["classify"] = time.process_time() - t
    t = time.process_time()
    tc._threads(messages, c)
    out["threads"] = time.process_time() - t
    del messages, c
    touches = tc.find_touches(source, directory, settings.max_recipients, ts, tc.Ahead(columns))
    del columns
    clock = eng._clock(settings, now, ZoneInfo(settings.timezone))
    t = time.process_time()
    fold_touches(touches, clock)
    out["ledgers"] = time.process_time() - t
    del touches
    t = time.process_time()
    analyze(history, directory, settings, now)
    out["analyze_total"] = time.process_time() - t
    return {k: round(v, 2) for k, v in out.items()}


def _fingerprint(report: object) -> str:
    """A digest of the whole report: a speed change must leave it as it was."""
    import dataclasses
    import hashlib

    data = repr(dataclasses.asdict(report))  # type: ignore[call-overload]
    return hashlib.sha256(data.encode()).hexdigest()[:16]


# -- the demo year --------------------------------------------------------------------------------
def measure_demo(directory: Path) -> dict[str, Any]:
    """Identity + queries + engine (daemon/network.build_report) over the imported demo year."""
    from keepwarm.daemon import config as cfgmod
    from keepwarm.daemon.demo import DEMO_TODAY
    from keepwarm.daemon.identity import resolve
    from keepwarm.daemon.network import build_report
    from keepwarm.daemon.store import Store

    config = cfgmod.load(directory / "config.toml")
    store = Store.open(config.store_path)
    now = datetime.combine(DEMO_TODAY, datetime.min.time(), config.zone).astimezone(UTC)
    now += timedelta(hours=8)
    t = time.perf_counter()
    identity = resolve(store, config, now)
    t_identity = time.perf_counter() - t
    t = time.perf_counter()
    report = build_report(config, store, now, identity=identity)
    t_engine = time.perf_counter() - t
    return {
        "fingerprint": _fingerprint(report),
        "messages": store.counts()["messages"],
        "people": len(report.people),
        "signals": len(report.signals),
        "identity_s": round(t_identity, 2),
        "queries_and_engine_s": round(t_engine, 2),
        "total_s": round(t_identity + t_engine, 2),
        "peak_rss_mb": round(_rss_mb(), 1),
    }


def prepare_demo(directory: Path) -> None:
    from keepwarm.daemon import config as cfgmod
    from keepwarm.daemon.demo import DEMO_SEED, DEMO_TODAY, generate, import_direct
    from keepwarm.daemon.store import Store

    manifest = generate(directory, DEMO_SEED, DEMO_TODAY)
    config = cfgmod.load(manifest.config_path)
    store = Store.open(config.store_path)
    import_direct(store, manifest)
    store.close()


def _child(args: list[str]) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"benchmark child {args[1]} failed:\n{proc.stderr}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=1_000_000)
    ap.add_argument("--addresses", type=int, default=20_000)
    ap.add_argument("--skip-demo", action="store_true")
    ap.add_argument("--db", type=Path, help="Keep the synthetic store here (reused if present).")
    ap.add_argument("--child", nargs=2, metavar=("WHAT", "PATH"), help=argparse.SUPPRESS)
    ap.add_argument("--now", help=argparse.SUPPRESS)
    ap.add_argument(
        "--stages", action="store_true", help="Also time the synthetic run stage by stage (CPU s)."
    )
    args = ap.parse_args()
    if args.child:
        what, path = args.child
        if what == "stages":
            print(json.dumps(measure_stages(Path(path), datetime.fromisoformat(args.now))))
        elif what == "demo":
            print(json.dumps(measure_demo(Path(path))))
        elif what == "command":
            print(json.dumps(measure_command(Path(path), datetime.fromisoformat(args.now))))
        else:
            print(json.dumps(measure_synthetic(Path(path), datetime.fromisoformat(args.now))))
        return
    with tempfile.TemporaryDirectory(prefix="kw-bench-") as tmp:
        if not args.skip_demo:
            demo_dir = Path(tmp) / "demo"
            prepare_demo(demo_dir)
            r = _child(["--child", "demo", str(demo_dir)])
            print(
                f"demo year: {r['messages']:,} messages, {r['people']} people, {r['signals']} signals: "
                f"identity {r['identity_s']} s + queries and engine {r['queries_and_engine_s']} s "
                f"= {r['total_s']} s (target < 1 s), peak RSS {r['peak_rss_mb']} MB; "
                f"report fingerprint {r['fingerprint']}"
            )
        db = args.db or Path(tmp) / "synthetic.db"
        t = time.perf_counter()
        now = SYNTHETIC_END
        if not db.exists():
            generate(db, args.messages, args.addresses)
        else:  # a store kept from an older release: brought up to date as any command would
            from keepwarm.daemon.store import Store

            Store.open(db).close()
        gen = time.perf_counter() - t
        drop_column_blocks(db)  # as after an import: no column block kept yet
        r = _child(["--child", "synthetic", str(db), "--now", now.isoformat()])
        print(
            f"synthetic, first read (no column block kept: read from SQL, then kept): "
            f"queries {r['load_s']} s + engine {r['engine_s']} s = {r['total_s']} s wall, "
            f"{r['cpu_s']} s CPU, peak RSS {r['peak_rss_mb']} MB; report fingerprint {r['fingerprint']}"
        )
        r = _child(["--child", "synthetic", str(db), "--now", now.isoformat()])
        print(
            f"synthetic: {r['messages']:,} messages + {r['events']:,} events over "
            f"{args.addresses:,} addresses (generated in {gen:.0f} s): "
            f"queries {r['load_s']} s + engine {r['engine_s']} s = {r['total_s']} s wall, "
            f"{r['cpu_s']} s CPU (target < 4 s on 1,000,000), peak RSS {r['peak_rss_mb']} MB (target < 500 MB); "
            f"{r['people']:,} people, {r['signals']:,} signals; report fingerprint {r['fingerprint']}"
        )
        cfg = db.parent / f"{db.name}.toml"
        cfg.write_text(config_text(db))
        r = _child(["--child", "command", str(cfg), "--now", now.isoformat()])
        stages = ", ".join(f"{k[:-2]} {v}" for k, v in r.items() if k.endswith("_s"))
        print(
            f"what `keepwarm people --json` does on it (wall s): {stages} s "
            f"(the whole command, start-up included: < 5 s on 1,000,000, bench/cli_scale.py), "
            f"peak RSS {r['peak_rss_mb']} MB; {r['people']:,} people listed"
        )
        if args.stages:
            r = _child(["--child", "stages", str(db), "--now", now.isoformat()])
            print("stages (CPU s): " + ", ".join(f"{k} {v}" for k, v in r.items()))


if __name__ == "__main__":
    main()
