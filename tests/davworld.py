"""What the CalDAV and CardDAV tests share: a private Radicale (tests/fakes/radicale.py) over
TLS, one user per test, and connectors built as the daemon builds them."""

from __future__ import annotations

import itertools
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fakes.radicale import Radicale, available

from keepwarm.connectors.dav import DavSettings
from keepwarm.connectors.dav.calendar import CalDavConnector, CalDavSettings

needs_radicale = pytest.mark.skipif(
    not available(), reason="radicale is not installed (make test installs it)"
)
NOW = datetime(2024, 3, 10, 12, 0, tzinfo=UTC)
ME = "me@example.com"
_users = itertools.count(1)


@pytest.fixture(scope="module")
def radicale() -> Iterator[Radicale]:
    server = Radicale(Path(tempfile.mkdtemp(prefix="keepwarm-radicale-")), tls=True)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def user(radicale: Radicale) -> str:
    name = f"user{next(_users)}"
    radicale.add_user(name, f"pw-{name}")
    return name


def settings(
    server: Radicale,
    user: str,
    *,
    password: str | None = None,
    collections: tuple[str, ...] = (),
    ca: bool = True,
    url: str | None = None,
) -> DavSettings:
    secret = password if password is not None else server.users[user]
    return DavSettings(
        url=url or server.base_url,
        username=user,
        password=lambda: secret,
        timeout=10,
        ca_file=server.ca_file if ca else None,
        collections=collections,
        password_hint="password_file",
    )


def caldav(
    server: Radicale,
    user: str,
    *,
    now: datetime = NOW,
    batch_size: int = 500,
    **kw: object,
) -> CalDavConnector:
    options = CalDavSettings(zone="Europe/Berlin", me=(ME,), batch_size=batch_size)
    return CalDavConnector("dav", settings(server, user, **kw), options, now=now)  # type: ignore[arg-type]


def stamp(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def meeting(
    uid: str,
    start: datetime,
    *,
    title: str = "Planning",
    people: tuple[str, ...] = ("ann@example.org",),
    extra: tuple[str, ...] = (),
    minutes: int = 30,
) -> str:
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//keepwarm tests//EN",
        "BEGIN:VEVENT",
        f"UID:{uid}",
        f"DTSTAMP:{stamp(NOW)}",
        f"DTSTART:{stamp(start)}",
        f"DTEND:{stamp(start + timedelta(minutes=minutes))}",
        f"SUMMARY:{title}",
        f"ORGANIZER;CN=Me:mailto:{ME}",
        f"ATTENDEE;PARTSTAT=ACCEPTED:mailto:{ME}",
        *(f"ATTENDEE;PARTSTAT=ACCEPTED:mailto:{p}" for p in people),
        *extra,
        "END:VEVENT",
        "END:VCALENDAR",
    ]
    return "\r\n".join(lines) + "\r\n"
