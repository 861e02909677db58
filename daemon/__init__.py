"""keepwarm.daemon."""

from __future__ import annotations

if __name__ != "keepwarm.daemon":  # pragma: no cover - guards against shadowing python-daemon & co.
    raise ImportError(
        f"{__file__} was imported as {__name__!r}; import keepwarm.daemon instead "
        "(run the tests with 'pytest', not 'python -m pytest')"
    )
