"""One daemon per database: an ``flock`` on a lock file next to it, holding the owner's pid.

The kernel drops the lock when the process dies (even on ``kill -9``), so a stale file never
blocks a restart. The file also tells ``keepwarm status`` whether a daemon is running.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from keepwarm.daemon.errors import AlreadyRunning as AlreadyRunning


def lock_path_for(store_path: Path) -> Path:
    return store_path.with_name(store_path.name + ".lock")


@dataclass(frozen=True)
class DaemonInfo:
    pid: int
    started_at: float
    config: str | None


class InstanceLock:
    """Held for the life of ``keepwarm run``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self, config: str | None = None) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            info = _parse(os.pread(fd, 4096, 0))
            os.close(fd)
            raise AlreadyRunning(self.path, info.pid if info else None) from None
        data = json.dumps({"pid": os.getpid(), "started_at": time.time(), "config": config})
        os.ftruncate(fd, 0)
        os.pwrite(fd, data.encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            try:
                os.ftruncate(self._fd, 0)
            finally:
                os.close(self._fd)
                self._fd = None


def _parse(raw: bytes) -> DaemonInfo | None:
    try:
        d: Any = json.loads(raw.decode() or "null")
        if isinstance(d, dict) and isinstance(d.get("pid"), int):
            return DaemonInfo(int(d["pid"]), float(d.get("started_at") or 0), d.get("config"))
    except (ValueError, UnicodeDecodeError):
        pass
    return None


def running_daemon(path: Path) -> DaemonInfo | None:
    """The daemon holding the lock at ``path``, or None if none is running."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _parse(os.pread(fd, 4096, 0)) or DaemonInfo(0, 0.0, None)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


@contextmanager
def exclusive(path: Path) -> Iterator[bool]:
    """Try to hold an exclusive ``flock`` on ``path`` for the block: yields False (at once) when
    another process (or another open of the file) holds it. The kernel drops it on any exit."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)  # closing the last descriptor releases the lock
