"""Faults for the reliability tests and ``bench/faults.py``: damaged database pages (the file
header left intact), a read-only state directory, and hostile input made from real messages."""

from __future__ import annotations

import os
import random
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _roots(db: Path) -> tuple[int, dict[str, int]]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        size = int(con.execute("PRAGMA page_size").fetchone()[0])
        roots = {str(n): int(r) for n, r in con.execute("SELECT name, rootpage FROM sqlite_master")}
    finally:
        con.close()
    return size, roots


def checkpoint(db: Path) -> None:
    """Fold the WAL into the main file, so damage written there is what SQLite reads."""
    con = sqlite3.connect(db)
    try:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        con.close()


def damage_tables(db: Path, tables: list[str], rng: random.Random | None = None) -> None:
    """Overwrite the second half of each table's root page (its cells) with junk."""
    checkpoint(db)
    size, roots = _roots(db)
    with open(db, "r+b") as fh:
        for t in tables:
            fh.seek((roots[t] - 1) * size + size // 2)
            fh.write(rng.randbytes(size // 2) if rng else b"\xff" * (size // 2))


def damage_text(db: Path, needle: bytes) -> int:
    """Replace every occurrence of ``needle`` in the file with bytes that are not UTF-8."""
    checkpoint(db)
    data = db.read_bytes()
    count = data.count(needle)
    db.write_bytes(data.replace(needle, b"\xff" * len(needle)))
    return count


def damage_random_pages(db: Path, rng: random.Random, pages: int = 3) -> None:
    """Junk over random pages other than the first (the header and the schema stay intact)."""
    checkpoint(db)
    size, _ = _roots(db)
    total = db.stat().st_size // size
    with open(db, "r+b") as fh:
        for page in rng.sample(range(2, total + 1), min(pages, max(0, total - 1))):
            fh.seek((page - 1) * size + rng.randrange(0, size // 2))
            fh.write(rng.randbytes(size // 4))


@contextmanager
def read_only(path: Path) -> Iterator[None]:
    """``path`` read-only for keepwarm: a read-only bind mount as root (root ignores modes),
    mode 0555 otherwise."""
    if os.getuid() != 0:
        mode = path.stat().st_mode
        path.chmod(0o555)
        try:
            yield
        finally:
            path.chmod(mode)
        return
    subprocess.run(["mount", "--bind", str(path), str(path)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(path)], check=True)
        yield
    finally:
        subprocess.run(["umount", str(path)], check=True)
