"""Idle cost of ``keepwarm run``: resident memory after start-up and CPU time while idle.

Starts the real daemon (the ``keepwarm`` console script of this environment) against a
temporary config with a small local maildir and file delivery, waits for READY=1 on a private
NOTIFY_SOCKET (with a 5-minute watchdog, as the shipped unit sets), lets the first sync finish,
then measures VmRSS and the CPU time (user + system) the process uses over the idle period.

    .venv/bin/python bench/idle.py              # 60 idle seconds
    .venv/bin/python bench/idle.py --seconds 10

Targets: under 100 MB RSS, under 0.5 s CPU per 60 idle seconds.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def write_fixture(root: Path, messages: int) -> Path:
    md = root / "Mail"
    for sub in ("cur", "new", "tmp"):
        (md / sub).mkdir(parents=True)
    for i in range(messages):
        (md / "cur" / f"{1700000000 + i}.{i}.bench:2,S").write_text(
            f"From: P{i} <p{i}@example.org>\r\nTo: me@example.com\r\nSubject: s{i}\r\n"
            f"Date: Mon, 05 Jan 2026 09:{i % 60:02d}:00 +0000\r\n"
            f"Message-ID: <b{i}@example.org>\r\n\r\nx\r\n"
        )
    later = (datetime.now(ZoneInfo("Europe/Berlin")) + timedelta(hours=6)).strftime("%H:%M")
    cfg = root / "config.toml"
    cfg.write_text(
        f"""[me]
name = "Bench"
addresses = ["me@example.com"]
timezone = "Europe/Berlin"
[digest]
time = "{later}"
[delivery]
method = "file"
[[accounts]]
name = "archive"
kind = "maildir"
path = "{md}"
"""
    )
    cfg.chmod(0o600)
    return cfg


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="idle period to measure")
    ap.add_argument("--messages", type=int, default=200, help="messages in the test maildir")
    args = ap.parse_args()
    exe = Path(sys.executable).parent / "keepwarm"
    with tempfile.TemporaryDirectory(prefix="kw-bench-") as tmp:
        root = Path(tmp)
        cfg = write_fixture(root, args.messages)
        notify_path = str(root / "notify")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(notify_path)
        sock.settimeout(30)
        env = dict(os.environ, NOTIFY_SOCKET=notify_path, WATCHDOG_USEC="300000000")
        env.update(XDG_STATE_HOME=str(root / "state"), KEEPWARM_CONFIG=str(cfg))
        env.pop("STATE_DIRECTORY", None)
        t0 = time.monotonic()
        proc = subprocess.Popen([str(exe), "run"], env=env, stderr=subprocess.PIPE)
        try:
            seen = ""
            while "READY=1" not in seen:
                seen += sock.recv(4096).decode() + "\n"
            ready = time.monotonic() - t0
            # The first sync runs right after READY; wait for its status line.
            while "synced" not in seen and "failing" not in seen:
                seen += sock.recv(4096).decode() + "\n"
            time.sleep(1)
            rss = rss_mb(proc.pid)
            cpu0 = cpu_seconds(proc.pid)
            time.sleep(args.seconds)
            cpu = cpu_seconds(proc.pid) - cpu0
            rss_end = rss_mb(proc.pid)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
            sock.close()
    print(f"ready after        {ready:.2f} s (start-up, config and store open)")
    print(
        f"RSS after start-up {rss:.1f} MB (after {args.seconds:.0f} s idle: {rss_end:.1f} MB; target < 100 MB)"
    )
    print(
        f"CPU while idle     {cpu:.3f} s over {args.seconds:.0f} s "
        f"(= {cpu * 60 / args.seconds:.3f} s per 60 s; target < 0.5 s)"
    )
    return 0 if rss < 100 and cpu * 60 / args.seconds < 0.5 else 1


if __name__ == "__main__":
    sys.exit(main())
