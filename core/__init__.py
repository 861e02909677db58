"""What every keepwarm package may import (``connectors``, ``daemon`` and ``digests`` alike): the
base error, the shared vocabulary, the records both sides read (attendees), private files, the
package-name guard. Imports nothing of keepwarm itself."""

from __future__ import annotations


def check_package_name(name: str, expected: str, file: str) -> None:
    """Refuse a keepwarm package imported under another name (``daemon`` would shadow
    python-daemon and its kind, and two copies of one module would each keep their own state)."""
    if name != expected:  # pragma: no cover - a broken invocation
        raise ImportError(
            f"{file} was imported as {name!r}; import {expected} instead "
            "(run the tests with 'pytest', not 'python -m pytest')"
        )
