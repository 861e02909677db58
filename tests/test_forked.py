"""keepwarm.daemon.forked.in_two: two halves on two cores, the same text as one process."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest

from keepwarm.daemon import forked

ITEMS = [f"item {i} \u00e9\ud800" for i in range(40)]  # any text, lone surrogates too


def make(part: Sequence[str]) -> str:
    return "\n".join(part)


FORKED: list[int] = []  # the children in_two forked during the test


def no_child_left() -> bool:
    """Every child in_two forked has been waited for (no zombie, nothing running; the test
    process has other children: servers of other tests)."""
    for pid in FORKED:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:  # not a child any more: reaped
            continue
        return False
    return True


@pytest.fixture(autouse=True)
def two_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests decide whether a fork can pay, not the machine's cores; the forks are noted."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr(os, "getloadavg", lambda: (0.2, 0.3, 0.4))  # a core is free
    real_fork = os.fork

    def fork() -> int:
        pid = real_fork()
        if pid:
            FORKED.append(pid)
        return pid

    FORKED.clear()
    monkeypatch.setattr(os, "fork", fork)


def test_two_halves_in_two_processes_make_the_same_text() -> None:
    parent = os.getpid()
    made_in: list[int] = []

    def where(part: Sequence[str]) -> str:
        text = make(part)
        if os.getpid() == parent:
            made_in.append(len(part))
        else:  # the child tells which process it was through its text
            text += f"\n#{os.getpid()}"
        return text

    text = forked.in_two(where, ITEMS, "\n", min_items=2)
    head, _, pid_line = text.rpartition("\n#")
    assert head == make(ITEMS)
    assert int(pid_line) != parent  # the second half came from another process
    assert made_in == [len(ITEMS) // 2]  # this process made only the first half
    assert FORKED and no_child_left()


def test_few_items_one_core_or_no_fork_stay_in_one_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    parent = os.getpid()
    seen: list[int] = []

    def here(part: Sequence[str]) -> str:
        assert os.getpid() == parent
        seen.append(len(part))
        return make(part)

    assert forked.in_two(here, ITEMS, "\n", min_items=len(ITEMS) + 1) == make(ITEMS)
    with monkeypatch.context() as m:
        m.setattr(os, "sched_getaffinity", lambda pid: {0})
        assert forked.in_two(here, ITEMS, "\n", min_items=2) == make(ITEMS)
    with monkeypatch.context() as m:
        m.setattr(os, "getloadavg", lambda: (1.6, 1.0, 0.5))  # both cores busy: no free one
        assert forked.in_two(here, ITEMS, "\n", min_items=2) == make(ITEMS)
    with monkeypatch.context() as m:
        m.delattr(os, "fork")  # Windows
        assert forked.in_two(here, ITEMS, "\n", min_items=2) == make(ITEMS)

    def no_fork() -> int:
        raise OSError("Resource temporarily unavailable")

    with monkeypatch.context() as m:
        m.setattr(os, "fork", no_fork)
        assert forked.in_two(here, ITEMS, "\n", min_items=2) == make(ITEMS)
    assert seen == [len(ITEMS)] * 5  # all of it, here, each time
    assert not FORKED


def test_no_fork_while_another_thread_runs() -> None:
    """A fork copies only this thread (with any lock another holds, locked for ever)."""
    parent = os.getpid()
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        pids: set[int] = set()

        def here(part: Sequence[str]) -> str:
            pids.add(os.getpid())
            return make(part)

        assert forked.in_two(here, ITEMS, "\n", min_items=2) == make(ITEMS)
        assert pids == {parent} and not FORKED
    finally:
        stop.set()
        other.join()


def test_a_failing_child_its_half_is_made_here() -> None:
    """The child fails (here: only there): this process makes the child's half itself."""
    parent = os.getpid()
    second: list[Sequence[str]] = []

    def fails_in_child(part: Sequence[str]) -> str:
        if os.getpid() != parent:
            raise RuntimeError("the child cannot")
        second.append(part)
        return make(part)

    assert forked.in_two(fails_in_child, ITEMS, "\n", min_items=2) == make(ITEMS)
    half = len(ITEMS) // 2
    assert second == [ITEMS[:half], ITEMS[half:]]  # its own half, then the child's
    assert FORKED and no_child_left()


def test_an_error_is_the_error_one_process_raises() -> None:
    """A bad item in the child's half: the same error, raised here; the child is reaped."""

    class BadItem(ValueError):
        pass

    def strict(part: Sequence[str]) -> str:
        if ITEMS[-1] in part:
            raise BadItem(f"bad item: {ITEMS[-1]!r}")
        return make(part)

    with pytest.raises(BadItem, match="bad item"):
        forked.in_two(strict, ITEMS, "\n", min_items=2)
    assert FORKED and no_child_left()


def test_an_error_here_stops_and_reaps_the_child(tmp_path: Path) -> None:
    """This process's half fails (or Ctrl-C): the child, still at work, is killed and reaped."""
    parent = os.getpid()
    finished = tmp_path / "child finished"

    def slow_child(part: Sequence[str]) -> str:
        if os.getpid() != parent:
            threading.Event().wait(5)  # still at work when the parent stops
            finished.touch()
            return make(part)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        forked.in_two(slow_child, ITEMS, "\n", min_items=2)
    assert FORKED and no_child_left()
    assert not finished.exists()  # killed, not waited for until it was done
