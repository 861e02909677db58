"""CalDAV calendars (``caldav``) and CardDAV address books (``carddav``): the kinds' options and
declarations. The protocol is in :mod:`.session`, the per-collection sync in :mod:`.state`, the
connectors in :mod:`.calendar` and :mod:`.contacts`."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path

from keepwarm.connectors.base import Connector, ConnectorError
from keepwarm.connectors.dav.session import DavSettings
from keepwarm.connectors.registry import ConnectorKind, Context, option

__all__ = ["CALDAV", "CARDDAV", "CaldavOptions", "CarddavOptions", "DavSettings"]


@dataclass(frozen=True)
class DavOptions:
    """The keys both DAV kinds have (the password comes from password_file, password_env or
    password_command, never from this table)."""

    url: str = option(
        doc="the server's address, such as https://caldav.fastmail.com/dav/", check="url"
    )
    username: str = option(doc="the login name, usually your address")
    ca_file: Path | None = option(None, doc="the CA certificate of a server with a private CA")
    timeout: timedelta = option(timedelta(seconds=60), doc="network timeout")

    def collections(self) -> tuple[str, ...]:
        return ()


@dataclass(frozen=True)
class CaldavOptions(DavOptions):
    calendars: tuple[str, ...] = option(
        (), doc="only these calendars (default: all)", items="calendar names"
    )
    window_past: timedelta = option(timedelta(days=730), doc="how far back events are read")
    window_future: timedelta = option(timedelta(days=14), doc="how far ahead events are read")

    def collections(self) -> tuple[str, ...]:
        return self.calendars


@dataclass(frozen=True)
class CarddavOptions(DavOptions):
    addressbooks: tuple[str, ...] = option(
        (), doc="only these address books (default: all)", items="address book names"
    )

    def collections(self) -> tuple[str, ...]:
        return self.addressbooks


def settings(o: DavOptions, ctx: Context) -> DavSettings:
    """Where and how to log in; the password is read when needed."""
    return DavSettings(
        url=o.url,
        username=o.username,
        password=ctx.read_password,
        timeout=o.timeout.total_seconds(),
        ca_file=o.ca_file,
        collections=o.collections(),
        password_hint=ctx.password_hint,
    )


def _caldav(o: CaldavOptions, ctx: Context) -> Connector:
    from keepwarm.connectors.dav.calendar import CalDavConnector, CalDavSettings

    options = CalDavSettings(
        zone=ctx.zone,
        me=ctx.me,
        window_past=o.window_past,
        window_future=o.window_future,
        keep_titles=ctx.keep_subjects,
    )
    return CalDavConnector(ctx.account, settings(o, ctx), options)


def _carddav(o: CarddavOptions, ctx: Context) -> Connector:
    from keepwarm.connectors.dav.contacts import CardDavConnector

    return CardDavConnector(ctx.account, settings(o, ctx))


def _probe(o: DavOptions, ctx: Context, timeout: float, *, calendars: bool) -> str:
    """Log in and find the collections."""
    from keepwarm.connectors.dav.session import CALDAV, CARDDAV, DavSession

    s = settings(o, ctx)
    s = replace(s, timeout=min(s.timeout, max(timeout, 10.0)))
    session = DavSession(s, CALDAV if calendars else CARDDAV)
    try:
        found = session.probe()
    except ConnectorError as exc:
        exc.fix = (
            exc.fix or "check url and ca_file in the account's [[accounts]] table, and the network"
        )
        raise
    finally:
        session.close()
    names = ", ".join(c.name for c in found) or "none"
    what = session.flavour.what
    return (
        f"logged in as {s.username}; {len(found)} {what}{'s' if len(found) != 1 else ''}: {names}"
    )


def _probe_caldav(o: CaldavOptions, ctx: Context, timeout: float) -> str:
    return _probe(o, ctx, timeout, calendars=True)


def _probe_carddav(o: CarddavOptions, ctx: Context, timeout: float) -> str:
    return _probe(o, ctx, timeout, calendars=False)


CALDAV = ConnectorKind(
    kind="caldav",
    options=CaldavOptions,
    build=_caldav,
    probe=_probe_caldav,
    summary="CalDAV calendars (Fastmail, iCloud, Nextcloud, Radicale ...)",
    login="password",
    probe_label="login to",
)
CARDDAV = ConnectorKind(
    kind="carddav",
    options=CarddavOptions,
    build=_carddav,
    probe=_probe_carddav,
    summary="CardDAV address books",
    login="password",
    probe_label="login to",
)
