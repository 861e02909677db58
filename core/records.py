"""Records that both sides of keepwarm read: what a connector reports and the engine reads back
from the store, defined once (connectors and digests import nothing of each other)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ResponseStatus = Literal["accepted", "declined", "tentative", "needsAction", "unknown"]


@dataclass(frozen=True, slots=True)
class Attendee:
    """One attendee of an event, with their response. Connectors report it with a display name;
    the engine's events (read from the store) carry the address only (``name`` is empty)."""

    email: str
    name: str = ""
    response: ResponseStatus = "unknown"
    organizer: bool = False
    optional: bool = False
    resource: bool = False
    is_self: bool = False
