"""CalDAV calendars and CardDAV address books (see :mod:`.session` for the protocol)."""

from __future__ import annotations

from keepwarm.connectors.dav.session import DavSettings

__all__ = ["DavSettings"]
