"""A pytest plugin (loaded by ``-p leakcheck`` in pyproject.toml) that makes every leaked resource
fail the test that leaked it.

The configuration turns warnings into errors (``filterwarnings = ["error", ...]``). A
ResourceWarning for an object that is never closed is raised from its finaliser, so Python reports
it through ``sys.unraisablehook``; pytest collects those after each test phase and, warnings being
errors, fails the phase with ``PytestUnraisableExceptionWarning``. Two gaps remain, and this plugin
closes them:

* An unclosed ``sqlite3.Connection`` warns only from Python 3.13 on. On older Pythons every
  connection opened through ``sqlite3.connect`` is made an instance of a subclass that warns, in
  its finaliser, exactly as 3.13 does, with the traceback of where it was opened when tracemalloc
  runs (``PYTHONTRACEMALLOC=25 pytest ...``).
* An object caught in a reference cycle is finalised whenever the garbage collector next runs,
  which may be during a later test (which would then fail for another test's leak) or never. A
  collection after every test finalises it while the test that leaked it is still the one being
  reported.

``tests/test_leakcheck.py`` runs pytest with this configuration on a test that leaks, to prove
that a leak fails the suite.
"""

from __future__ import annotations

import gc
import sqlite3
import sys
import tracemalloc
import warnings
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any, Protocol, TypeVar

import pytest

if sys.version_info < (3, 13):

    class _WarningConnection(sqlite3.Connection):
        """A connection that warns, like Python 3.13's, when it is finalised unclosed."""

        # Slots, not a __dict__: Python 3.11's tracemalloc cannot find where an object with a
        # managed __dict__ was allocated.
        __slots__ = ("_closed_by_caller",)

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._closed_by_caller = False

        def close(self) -> None:
            self._closed_by_caller = True
            super().close()

        def __del__(self) -> None:
            if self._closed_by_caller:
                return
            allocated = tracemalloc.get_object_traceback(self)
            where = (
                "\nopened at:\n" + "\n".join(allocated.format())
                if allocated is not None
                else " (run with PYTHONTRACEMALLOC=25 to see where it was opened)"
            )
            warnings.warn(
                f"unclosed database in {self!r}{where}", ResourceWarning, stacklevel=1, source=self
            )

    _connect = sqlite3.connect

    def _warning_connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        if len(args) < 6:  # the sixth positional argument is the factory
            kwargs.setdefault("factory", _WarningConnection)
        return _connect(*args, **kwargs)

    sqlite3.connect = _warning_connect


class _Closable(Protocol):
    def close(self) -> None: ...


C = TypeVar("C", bound=_Closable)

_cleanups: list[ExitStack] = []


def close_after_test(resource: C) -> C:
    """``resource``, closed when the running test ends (like unittest's ``addCleanup``): for a
    test helper that hands a store to the test, where a ``with`` block cannot reach."""
    if not _cleanups:
        raise RuntimeError("close_after_test is for use inside a running test")
    _cleanups[-1].callback(resource.close)
    return resource


@pytest.fixture(autouse=True)
def _close_and_collect_after_each_test() -> Iterator[None]:
    """Close what the test handed to :func:`close_after_test`, then collect the garbage, so that a
    leak in a reference cycle is reported as this test's (its other fixtures are torn down before
    this one, which is set up first)."""
    with ExitStack() as stack:
        _cleanups.append(stack)
        try:
            yield
        finally:
            _cleanups.pop()
    gc.collect()
