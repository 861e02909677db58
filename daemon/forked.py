"""Text made in two halves on two cores: the second half in a forked child, meanwhile.

``keepwarm people --json`` formats 18,000 records on the 1M bench store (about half a second on
one core). :func:`in_two` makes the first half here while a child process (``os.fork``: it
starts with this process's memory, nothing to send it) makes the second and writes its text to a
pipe; the texts are joined in order. It stays in one process where that cannot pay or is not
safe: few items, one usable core or no free one (the load average), no ``os.fork`` (Windows),
other threads running (a fork copies only the calling thread, with any lock another holds locked
for ever), a fork that fails. The fork has a cost of its own (the page tables, and the pages
either process then writes, reference counts included, are copied): on the 1M bench store it
adds about 0.17 s of CPU to the 0.47 s of making the text, so it pays only with a core free. If the
child fails in any way, its half is made again here: the same text, or the same error as in one
process. The child is always waited for (no zombie), and killed if this process stops first.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

__all__ = ["MIN_ITEMS", "in_two"]

T = TypeVar("T")
MIN_ITEMS = 10_000  # fewer: one process (the fork costs as much as it saves at 5,000 people)
MAX_BUSY_CORES = 0.5  # a load average above the cores less this: no core free for the child
_CHILD_FAILED = 70  # the child's exit status when making its half raised


def in_two(
    make: Callable[[Sequence[T]], str],
    items: Sequence[T],
    joiner: str,
    *,
    min_items: int | None = None,
) -> str:
    """``make(items)``, where ``make`` of a list is ``make`` of its two halves joined by
    ``joiner``: made as two halves at once when two cores can (see the module docstring), from
    ``min_items`` items (:data:`MIN_ITEMS` when None)."""
    least = MIN_ITEMS if min_items is None else min_items
    if len(items) < max(least, 2) or not _can_fork():
        return make(items)
    half = len(items) // 2
    first, second = items[:half], items[half:]
    read, write = os.pipe()
    try:
        pid = os.fork()
    except OSError:  # no more processes, no memory: one process then
        os.close(read)
        os.close(write)
        return make(items)
    if pid == 0:  # the child: its half to the pipe, then out (no clean-up of the parent's state)
        status = _CHILD_FAILED
        try:
            os.close(read)
            with open(write, "wb") as out:
                out.write(make(second).encode("utf-8", "surrogatepass"))
            status = 0
        except BaseException:  # the parent makes this half again: its answer or its error
            pass
        finally:
            os._exit(status)
    os.close(write)
    head, tail, ok = _with_child(pid, read, make, first)
    return head + joiner + (tail if ok else make(second))  # the child failed: its half here


def _can_fork() -> bool:
    """Is a fork safe, and is a second core free for the child? (On a busy machine the fork's
    own cost, its copied page tables and pages, is all it adds.)"""
    if not hasattr(os, "fork") or threading.active_count() > 1:
        return False
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    try:
        busy = os.getloadavg()[0]  # processes running or waiting, over the last minute
    except (AttributeError, OSError):
        busy = 0.0
    return (cores or 1) >= 2 and busy < (cores or 1) - MAX_BUSY_CORES


def _with_child(
    pid: int, read: int, make: Callable[[Sequence[T]], str], first: Sequence[T]
) -> tuple[str, str, bool]:
    """``make(first)`` here, then the child's text from the pipe ``read`` and whether it ended
    well. The child is waited for whatever happens, and killed first if this process stops (an
    error, Ctrl-C)."""
    pipe = open(read, "rb")  # noqa: SIM115 - closed below, whatever happens
    reaped = False
    try:
        head = make(first)
        data = pipe.read()
        _, status = os.waitpid(pid, 0)
        reaped = True
    finally:
        pipe.close()
        if not reaped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        return head, "", False
    return head, data.decode("utf-8", "surrogatepass"), True
