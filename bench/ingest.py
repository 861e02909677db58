"""Maildir ingest: keepwarm beside a plain-Python baseline, ``notmuch new`` and ``mu index`` on
the same real messages, alternating, with ratios; then a re-import with nothing changed.

Builds a maildir of N files (default 100,000) in the benchmark cache (``~/.cache/keepwarm-bench``,
see bench/benchlib.py) from the real messages in ../shared/data, replicated until there are N;
each copy gets a unique Message-ID (only that header line is rewritten). Copies that differ only
in their Message-ID are, by design, recognised as copies (the store's content key: date, sender,
recipients, subject) and stored once with one source row per file; ``--distinct`` also shifts each
copy's Date header by its copy number in seconds, so every file is a distinct message.

Each round runs, one after the other: ``keepwarm import maildir`` (the real command, a fresh
process and database), the baseline (each file's header block parsed by ``BytesHeaderParser``,
its addresses, date and Message-IDs taken out, ``executemany`` into SQLite: what a
straightforward Python importer of the same facts does), ``notmuch new`` and
``mu index`` (fresh databases; skipped when not installed: ``make bench`` installs them). The
figures are wall-clock messages per second; CPU seconds count the process and its workers. The
machine's load is printed: other work on it slows every tool alike.

Target (issue 19): keepwarm >= 10,000 msg/s on 2 cores; a re-import with nothing changed <= 50 ms
(the daemon pays it on every sync of a local account).

    .venv/bin/python bench/ingest.py [-n 100000] [--rounds 2] [--distinct] [--only keepwarm]
"""

from __future__ import annotations

import argparse
import re
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path

from benchlib import ENV, KEEPWARM, Run, cache_root, compile_package, load, run

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data"
CORPORA = ("enron-maildir-sample", "spamassassin-ham", "enron-pst-eml-messy")
_MSGID = re.compile(rb"^message-id:[^\n]*(?:\n[ \t][^\n]*)*\n", re.IGNORECASE | re.MULTILINE)
_DATE = re.compile(rb"^date:([^\n]*)\n", re.IGNORECASE | re.MULTILINE)
TOOLS = ("keepwarm", "baseline", "notmuch", "mu")


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
    """The cached maildir of ``n`` files (``cur/``, ``new/``, ``tmp/``)."""
    root = cache_root() / f"maildir-{n}{'-distinct' if distinct else ''}"
    if (root.parent / f"{root.name}.complete").exists():
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
    (root.parent / f"{root.name}.complete").write_text(str(n))
    print(
        f"built {root} ({n:,} files from {len(msgs):,} real messages) in {time.perf_counter() - t0:.0f} s"
    )
    return root


# -- the plain-Python baseline --------------------------------------------------------------------
def baseline(root: Path, db: Path) -> None:
    """A straightforward importer of the same facts: each file's header block parsed by the
    standard library, its addresses, date and Message-IDs taken out, stored in bulk."""
    import email.policy
    from email.parser import BytesHeaderParser
    from email.utils import getaddresses, parsedate_to_datetime

    parser = BytesHeaderParser(policy=email.policy.compat32)
    conn = sqlite3.connect(db)
    conn.executescript(
        """CREATE TABLE messages (id INTEGER PRIMARY KEY, path TEXT UNIQUE, message_id TEXT,
               date INTEGER, subject TEXT, in_reply_to TEXT, refs TEXT);
           CREATE TABLE message_addresses (message INTEGER, role INTEGER, address TEXT,
               name TEXT);"""
    )
    messages: list[tuple[object, ...]] = []
    addresses: list[tuple[object, ...]] = []
    mid = 0
    for folder in ("cur", "new"):
        for path in sorted((root / folder).iterdir()):
            with open(path, "rb") as fh:
                head = fh.read(16384)
            cut = head.find(b"\n\n")
            h = parser.parsebytes(head[: cut if cut != -1 else len(head)])
            try:
                date = int(parsedate_to_datetime(str(h.get("date", ""))).timestamp())
            except (TypeError, ValueError, IndexError):
                date = None
            mid += 1
            messages.append(
                (
                    mid,
                    path.name,
                    str(h.get("message-id", "")).strip(" <>"),
                    date,
                    str(h.get("subject", "")),
                    str(h.get("in-reply-to", "")).strip(" <>"),
                    str(h.get("references", "")),
                )
            )
            for role, field in enumerate(("from", "to", "cc")):
                values = [str(v) for v in h.get_all(field) or []]
                for name, addr in getaddresses(values):
                    if "@" in addr:
                        addresses.append((mid, role, addr.lower(), name))
            if len(messages) >= 1000:
                _flush(conn, messages, addresses)
    _flush(conn, messages, addresses)
    conn.close()


def _flush(
    conn: sqlite3.Connection,
    messages: list[tuple[object, ...]],
    addresses: list[tuple[object, ...]],
) -> None:
    conn.executemany("INSERT INTO messages VALUES (?, ?, ?, ?, ?, ?, ?)", messages)
    conn.executemany("INSERT INTO message_addresses VALUES (?, ?, ?, ?)", addresses)
    conn.commit()
    messages.clear()
    addresses.clear()


# -- each tool, in a fresh process ----------------------------------------------------------------
def keepwarm_config(work: Path) -> Path:
    work.mkdir(parents=True, exist_ok=True)
    cfg = work / "config.toml"
    cfg.write_text(
        f'[me]\nname = "Bench"\naddresses = ["bench@keepwarm.bench"]\ntimezone = "UTC"\n\n'
        f'[store]\npath = "{work / "keepwarm.db"}"\n'
    )
    return cfg


def fresh(work: Path) -> None:
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    if work.name == "notmuch":
        (work / "db").mkdir()


def tool_runs(root: Path, work: Path) -> dict[str, Callable[[], Run]]:
    """Each tool's first import of ``root``, into a fresh database under ``work/TOOL``."""
    cfg = keepwarm_config(work / "keepwarm")
    runs: dict[str, Callable[[], Run]] = {
        "keepwarm": lambda: run([KEEPWARM, "--config", str(cfg), "import", "maildir", str(root)]),
        "baseline": lambda: run(
            [sys.executable, __file__, "--baseline", str(root), str(work / "baseline" / "b.db")]
        ),
    }
    if shutil.which("notmuch"):
        runs["notmuch"] = lambda: run(["notmuch", "new", "--quiet"], env=notmuch_env(root, work))
    if shutil.which("mu"):

        def mu() -> Run:
            home = f"--muhome={work / 'mu'}"
            run(["mu", "init", "--quiet", f"--maildir={root}", home])
            return run(["mu", "index", "--quiet", home])

        runs["mu"] = mu
    return runs


def notmuch_env(root: Path, work: Path) -> dict[str, str]:
    cfg = work / "notmuch" / "config"
    if not cfg.exists():
        cfg.write_text(
            f"[database]\npath={root}\nmail_root={root}\n[new]\ntags=new\n"
            "[maildir]\nsynchronize_flags=false\n"
        )
    return {**ENV, "NOTMUCH_CONFIG": str(cfg), "NOTMUCH_DATABASE": str(work / "notmuch" / "db")}


def again(root: Path, work: Path) -> dict[str, Callable[[], Run]]:
    """The same tools once more over the unchanged maildir, on the databases they made."""
    cfg = work / "keepwarm" / "config.toml"
    out: dict[str, Callable[[], Run]] = {
        "keepwarm import": lambda: run(
            [KEEPWARM, "--config", str(cfg), "import", "maildir", str(root)]
        ),
        "keepwarm (a daemon's sync)": lambda: run(
            [
                sys.executable,
                __file__,
                "--rescan",
                str(root),
                str(work / "keepwarm" / "keepwarm.db"),
            ]
        ),
    }
    if (work / "notmuch").exists():
        out["notmuch new"] = lambda: run(["notmuch", "new", "--quiet"], env=notmuch_env(root, work))
    if (work / "mu").exists():
        out["mu index --lazy-check"] = lambda: run(
            ["mu", "index", "--quiet", "--lazy-check", f"--muhome={work / 'mu'}"]
        )
    return out


def rescan(root: Path, db: Path) -> None:
    """What the daemon does on each sync of the account: its connector against the store (the
    time printed is the run's own, without starting Python)."""
    from keepwarm.connectors.local.maildir import MaildirConnector
    from keepwarm.daemon.store import Store
    from keepwarm.daemon.sync import run_account

    store = Store.open(db)
    (account,) = (r[0] for r in store.conn.execute("SELECT name FROM accounts"))
    t = time.perf_counter()
    outcome = run_account(store, MaildirConnector(account, root))
    print(f"RESCAN {time.perf_counter() - t:.4f} {outcome.summary()}")


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("-n", type=int, default=100_000, help="messages in the maildir")
    ap.add_argument("--rounds", type=int, default=2, help="rounds of every tool, alternating")
    ap.add_argument("--distinct", action="store_true", help="make every copy a distinct message")
    ap.add_argument("--only", action="append", choices=TOOLS, help="run only these tools")
    ap.add_argument("--baseline", nargs=2, metavar=("ROOT", "DB"), help=argparse.SUPPRESS)
    ap.add_argument("--rescan", nargs=2, metavar=("ROOT", "DB"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.baseline:
        baseline(Path(args.baseline[0]), Path(args.baseline[1]))
        return
    if args.rescan:
        rescan(Path(args.rescan[0]), Path(args.rescan[1]))
        return
    root = build(args.n, args.distinct)
    compile_package()
    files = sum(1 for _ in (root / "cur").iterdir())
    results: dict[str, list[Run]] = {}
    with tempfile.TemporaryDirectory(prefix="kw-ingest-") as tmp:
        work = Path(tmp)
        for r in range(args.rounds):
            print(f"round {r + 1} of {args.rounds} ({load()}):", flush=True)
            for name in TOOLS:
                if args.only and name not in args.only:
                    continue
                fresh(work / name)
                runs = tool_runs(root, work)
                if name not in runs:
                    print(f"  {name:9} not installed (make bench installs it)")
                    continue
                got = runs[name]()
                results.setdefault(name, []).append(got)
                print(
                    f"  {name:9} {files / got.wall:8,.0f} msg/s  ({got.wall:6.1f} s wall, "
                    f"{got.cpu:6.1f} s CPU, peak RSS {got.rss_mb:4.0f} MB)",
                    flush=True,
                )
        if "keepwarm" in results:
            print("  keepwarm: " + results["keepwarm"][-1].out.strip().splitlines()[-1][:140])
            summary_of_store(work / "keepwarm" / "keepwarm.db", files)
        print(f"nothing changed since, imported again (best of 3; {load()}):")
        for label, fn in again(root, work).items():
            times = [fn() for _ in range(3)]
            inner = [float(t.out.split()[1]) for t in times if t.out.startswith("RESCAN")]
            shown = min(inner) if inner else min(t.wall for t in times)
            note = " (the sync itself, in a running process)" if inner else " (the whole command)"
            print(f"  {label:28} {1000 * shown:7.0f} ms{note}")
    print(f"median of {args.rounds} round(s), {files:,} files:")
    if not results:
        return
    rate = {k: files / statistics.median(r.wall for r in v) for k, v in results.items()}
    for name, value in rate.items():
        ratio = (
            ""
            if name == "keepwarm" or "keepwarm" not in rate
            else f"  keepwarm is {rate['keepwarm'] / value:.1f}x"
        )
        print(f"  {name:9} {value:8,.0f} msg/s{ratio}")
    if "keepwarm" in rate:
        met = "met" if rate["keepwarm"] >= 10_000 else "NOT MET"
        print(f"target >= 10,000 msg/s on 2 cores: {met} ({load()})")


def summary_of_store(db: Path, files: int) -> None:
    conn = sqlite3.connect(db)
    counts = {
        t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
        for t in ("messages", "message_sources", "addresses")
    }
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    size = sum(p.stat().st_size for p in (db, Path(f"{db}-wal")) if p.exists())
    print(
        f"            stored {counts['messages']:,} messages, {counts['message_sources']:,} "
        f"sources, {counts['addresses']:,} addresses; database {size / 1e6:.1f} MB = "
        f"{size / max(1, files):.0f} bytes per file"
    )


if __name__ == "__main__":
    main()
