"""core/memory.py: freed heap pages go back to the system where the C library can do it."""

from __future__ import annotations

import sys

import pytest

from keepwarm.core import memory


def _resident_kb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_freed_small_allocations_leave_the_resident_set() -> None:
    """Many small blocks freed in the middle of the heap stay resident until trimmed."""
    blocks = [bytearray(2000) for _ in range(60_000)]  # ~120 MB below the mmap threshold
    keep = blocks[-1]  # a live block at the top: the heap cannot shrink from its end
    del blocks
    before = _resident_kb()
    memory.release_freed_memory()
    after = _resident_kb()
    assert keep is not None
    assert before - after > 50_000, (before, after)


def test_without_malloc_trim_nothing_happens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "_trim", memory._UNSET)
    monkeypatch.setattr(sys, "platform", "darwin")
    memory.release_freed_memory()
    assert memory._trim is None
