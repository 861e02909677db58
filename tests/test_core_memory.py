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


_LARGE = """
import sys
from keepwarm.core import memory

def resident_kb():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))

if sys.argv[1] == "set":
    memory.large_blocks_from_the_system()
first = bytearray(8 << 20)  # mapped for itself; freeing it raises glibc's threshold by default
del first
second = bytearray(8 << 20)  # by default now from the heap
pin = bytearray(1000)  # a live block after it: the heap cannot shrink from its end
before = resident_kb()
del second
print(before - resident_kb())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_large_freed_blocks_leave_the_resident_set() -> None:
    """Set, a freed 8 MB block goes back to the system; by default glibc keeps it in the heap
    once a block that big has been freed (run in fresh processes: the setting is global)."""
    import subprocess

    def freed_kb(mode: str) -> int:
        out = subprocess.run(
            [sys.executable, "-c", _LARGE, mode], capture_output=True, text=True, check=True
        )
        return int(out.stdout)

    assert freed_kb("set") > 7_000
    assert freed_kb("default") < 1_000
