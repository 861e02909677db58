"""keepwarm.connectors."""

from __future__ import annotations

if (
    __name__ != "keepwarm.connectors"
):  # pragma: no cover - guards against shadowing python-daemon & co.
    raise ImportError(
        f"{__file__} was imported as {__name__!r}; import keepwarm.connectors instead "
        "(run the tests with 'pytest', not 'python -m pytest')"
    )
