"""Parsing in worker processes while the caller stores: the local connectors' big imports.

Reading and parsing a message's header block costs several times what storing it does, and a
Python process runs on one core. :func:`in_order` hands chunks of work to worker processes (one
per core) and yields their results in the order the chunks were given, so a connector's batches,
cursors and records are exactly those of a serial run: only faster. A few chunks are in flight
at a time, so memory stays flat however big the import.

Workers are started fresh (``spawn``: never a ``fork`` of a process that may run threads), ignore
Ctrl-C (the caller stops them), exit when the importing process is gone (killed with -9, they
would otherwise wait for work forever, holding its output pipes) and only compute: they never
touch the store.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

CHUNK = 250  # items a task: big enough that passing it costs little, small enough to stream
AHEAD = 16  # chunks in flight: the workers keep parsing while the caller stores a batch
PARALLEL_MIN = 2000  # messages: fewer are parsed in the calling process (workers cost to start)


def cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _worker_start() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the import in the caller
    parent = multiprocessing.parent_process()
    if parent is not None:  # a worker never outlives its importer, even one killed with -9
        threading.Thread(target=_exit_with, args=(parent,), daemon=True).start()


def _exit_with(parent: multiprocessing.process.BaseProcess) -> None:
    parent.join()  # returns when the importing process is gone (its sentinel closes)
    os._exit(1)


def in_order(
    work: Callable[[list[T]], list[R]],
    chunks: Iterable[list[T]],
    *,
    workers: int | None = None,
) -> Iterator[tuple[list[T], list[R]]]:
    """Each chunk with ``work(chunk)``, computed in worker processes (one per core, or
    ``workers``), in chunk order; at most :data:`AHEAD` chunks ahead of the caller. ``work`` must be
    picklable (a module-level function, or a method of a picklable object); with one worker or
    one core it runs here. Closing the iterator early stops the workers."""
    n = workers or cores()
    if n < 2:
        for chunk in chunks:
            yield chunk, work(chunk)
        return
    pool = ProcessPoolExecutor(
        n, mp_context=multiprocessing.get_context("spawn"), initializer=_worker_start
    )
    pending: deque[tuple[list[T], Future[list[R]]]] = deque()
    try:
        for chunk in chunks:
            pending.append((chunk, pool.submit(work, chunk)))
            if len(pending) >= AHEAD:
                done, future = pending.popleft()
                yield done, future.result()
        while pending:
            done, future = pending.popleft()
            yield done, future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def chunks_of(items: Iterable[T], size: int = CHUNK) -> Iterator[list[T]]:
    chunk: list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def each(
    work: Callable[[list[T]], list[R]],
    items: Iterable[T],
    *,
    parallel: bool,
    workers: int | None = None,
) -> Iterator[tuple[T, R]]:
    """Every item with its result, in order: computed by :func:`in_order` when ``parallel``
    (a big import: starting the workers costs a fraction of a second), else here."""
    for chunk, results in in_order(work, chunks_of(items), workers=workers if parallel else 1):
        yield from zip(chunk, results, strict=True)
