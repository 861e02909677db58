"""What the benchmarks share: where they cache their inputs, and timing a command in a fresh
process (wall time, CPU time and peak RSS of the process and the workers it waited for)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

BIN = Path(sys.executable).parent
KEEPWARM = str(BIN / "keepwarm")


def cache_root() -> Path:
    """Inputs built once and kept outside the repository: ``$KEEPWARM_BENCH_CACHE``, default
    ``~/.cache/keepwarm-bench``."""
    env = os.environ.get("KEEPWARM_BENCH_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "keepwarm-bench"


# A user's environment: the package's bytecode is compiled (pip does it on install), so a run
# never pays for compiling it; no debug switches.
ENV = {
    k: v
    for k, v in {**os.environ, "KEEPWARM_CONFIG": "/nonexistent", "COLUMNS": "120"}.items()
    if k not in ("PYTHONDONTWRITEBYTECODE", "KEEPWARM_DEBUG")
}


@dataclass
class Run:
    wall: float  # seconds
    cpu: float  # user + system seconds, the process and its waited-for children
    rss_mb: float  # peak RSS of the process (or of its largest child)
    out: str


def run(argv: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> Run:
    """One fresh process, reaped with ``wait4`` for its own resource usage."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t = time.perf_counter()
        proc = subprocess.Popen(argv, env=env or ENV, stdout=out, stderr=err, cwd=cwd)
        _pid, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            sys.exit(f"{' '.join(argv)} failed ({proc.returncode}):\n{err.read().decode()[-3000:]}")
        out.seek(0)
        text = out.read().decode(errors="replace")
    return Run(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, text)


def compile_package() -> None:
    """Compile keepwarm's bytecode as pip does on install (PYTHONDONTWRITEBYTECODE in a
    developer's shell would otherwise make every measured run compile it again)."""
    import keepwarm.daemon

    package = Path(keepwarm.daemon.__file__).parent.parent  # in an editable install: its links
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(package)], check=True, env=ENV)


def load() -> str:
    """The machine's load, to print beside figures that depend on it."""
    return f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"


def drop_column_blocks(db: Path) -> None:
    """Drop the store's kept column blocks (daemon/store/blocks.py), as after an import: the next
    command reads every message from SQL and keeps the blocks again."""
    import sqlite3

    conn = sqlite3.connect(db)
    try:
        conn.execute("DELETE FROM message_blocks")
        conn.execute("DELETE FROM recipient_blocks")
        conn.commit()
    finally:
        conn.close()
