"""What every keepwarm package may import (``connectors``, ``daemon`` and ``digests`` alike): the
base error, the shared vocabulary, the records both sides read (attendees), private files, the
package-name guard, the collector's pause. Imports nothing of keepwarm itself."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


def check_package_name(name: str, expected: str, file: str) -> None:
    """Refuse a keepwarm package imported under another name (``daemon`` would shadow
    python-daemon and its kind, and two copies of one module would each keep their own state)."""
    if name != expected:  # pragma: no cover - a broken invocation
        raise ImportError(
            f"{file} was imported as {name!r}; import {expected} instead "
            "(run the tests with 'pytest', not 'python -m pytest')"
        )


@contextmanager
def gc_paused() -> Iterator[None]:
    """Python's cyclic garbage collector paused, then restored as it was (also a decorator).

    For a command's work over a big history: the history, identity and the engine's report are
    hundreds of thousands of acyclic objects, and the collector's repeated full scans of them
    cost more than the work itself (0.2 s of a 1M-message ``keepwarm people``)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
