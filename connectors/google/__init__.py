"""Google accounts: Gmail (``gmail``), Google Calendar (``gcal``) and Google contacts
(``gcontacts``), each a kind with its options and declaration. The connectors are in
:mod:`.gmail`, :mod:`.calendar` and :mod:`.contacts`; the API client in :mod:`.client`, sign-in in
:mod:`.auth`. Accounts that share a token file share one consent."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from keepwarm.connectors.base import Connector
from keepwarm.connectors.registry import ConnectorKind, Context, option, reach

if TYPE_CHECKING:
    from keepwarm.connectors.google.client import GoogleClient

GMAIL_HOST = "https://gmail.googleapis.com"
CALENDAR_HOST = "https://www.googleapis.com"
PEOPLE_HOST = "https://people.googleapis.com"


@dataclass(frozen=True)
class GoogleOptions:
    """The keys every Google account has."""

    client_secrets: Path | None = option(
        None, doc="the OAuth client JSON from the Google Cloud console (keepwarm auth google)"
    )
    token_file: Path | None = option(None, doc="default: STATE_DIR/tokens/NAME.json")
    api_endpoint: str | None = option(None, doc="another API address (tests, proxies)")
    token_uri: str | None = option(None, doc="another token endpoint (tests)")
    timeout: timedelta = option(timedelta(seconds=60), doc="network timeout")

    def limits(self) -> tuple[int, int]:
        """(requests or quota units per minute, concurrent requests)."""
        raise NotImplementedError


@dataclass(frozen=True)
class GmailOptions(GoogleOptions):
    backfill: timedelta = option(timedelta(days=3 * 365), doc="how far back the first sync reads")
    quota_units_per_minute: int = option(
        6000, doc="Gmail quota units per minute for this user", range=(1, 1_000_000)
    )
    max_concurrency: int = option(10, doc="requests in flight at once", range=(1, 50))

    def limits(self) -> tuple[int, int]:
        return self.quota_units_per_minute, self.max_concurrency


@dataclass(frozen=True)
class GcalOptions(GoogleOptions):
    window_past: timedelta = option(timedelta(days=730), doc="how far back events are read")
    window_future: timedelta = option(timedelta(days=14), doc="how far ahead events are read")
    calendars: tuple[str, ...] = option((), doc="calendar ids (default: all)", items="calendar ids")
    requests_per_minute: int = option(
        600, doc="Calendar API requests per minute", range=(1, 100_000)
    )

    def limits(self) -> tuple[int, int]:
        return self.requests_per_minute, 4


@dataclass(frozen=True)
class GcontactsOptions(GoogleOptions):
    requests_per_minute: int = option(90, doc="People API reads per minute", range=(1, 100_000))

    def limits(self) -> tuple[int, int]:
        return self.requests_per_minute, 4


def api_client(
    kind: str, o: GoogleOptions, ctx: Context, *, scopes: tuple[str, ...] | None = None
) -> GoogleClient:
    """The API client of a google account: token file, endpoint, timeout, quota, concurrency.

    ``scopes``: what the token must grant (default: what the account's kind reads).
    """
    from keepwarm.connectors.google.auth import KIND_SCOPES
    from keepwarm.connectors.google.client import ClientSettings, GoogleClient
    from keepwarm.connectors.google.quota import Limits, TokenBucket

    assert ctx.token_path is not None
    budget, concurrency = o.limits()
    settings = ClientSettings(
        account=ctx.account,
        token_path=ctx.token_path,
        scopes=KIND_SCOPES.get(kind, ()) if scopes is None else scopes,
        api_endpoint=o.api_endpoint,
        token_uri=o.token_uri,
        timeout=o.timeout.total_seconds(),
    )
    return GoogleClient(settings, Limits(TokenBucket(budget), concurrency))


def _gmail(o: GmailOptions, ctx: Context) -> Connector:
    from keepwarm.connectors.google.gmail import GmailConnector, GmailSettings

    settings = GmailSettings(
        backfill=o.backfill, store_subjects=ctx.keep_subjects, max_concurrency=o.max_concurrency
    )
    return GmailConnector(ctx.account, api_client("gmail", o, ctx), settings)


def _gcal(o: GcalOptions, ctx: Context) -> Connector:
    from keepwarm.connectors.google.calendar import CalendarOptions, GoogleCalendarConnector

    settings = CalendarOptions(
        window_past=o.window_past,
        window_future=o.window_future,
        calendars=o.calendars,
        me=ctx.me,
        store_subjects=ctx.keep_subjects,
    )
    return GoogleCalendarConnector(ctx.account, api_client("gcal", o, ctx), settings)


def _gcontacts(o: GcontactsOptions, ctx: Context) -> Connector:
    from keepwarm.connectors.google.contacts import GoogleContactsConnector

    return GoogleContactsConnector(ctx.account, api_client("gcontacts", o, ctx))


def _reach_gmail(o: GmailOptions, _ctx: Context, timeout: float) -> str:
    return reach(o.api_endpoint or GMAIL_HOST, timeout)


def _reach_gcal(o: GcalOptions, _ctx: Context, timeout: float) -> str:
    return reach(o.api_endpoint or CALENDAR_HOST, timeout)


def _reach_gcontacts(o: GcontactsOptions, _ctx: Context, timeout: float) -> str:
    return reach(o.api_endpoint or PEOPLE_HOST, timeout)


GMAIL = ConnectorKind(
    kind="gmail",
    options=GmailOptions,
    build=_gmail,
    probe=_reach_gmail,
    summary="Gmail through the Gmail API (gmail.metadata: headers and labels, never bodies)",
    login="google",
    probe_label="reachability of",
)
GCAL = ConnectorKind(
    kind="gcal",
    options=GcalOptions,
    build=_gcal,
    probe=_reach_gcal,
    summary="Google Calendar (calendar.readonly)",
    login="google",
    probe_label="reachability of",
)
GCONTACTS = ConnectorKind(
    kind="gcontacts",
    options=GcontactsOptions,
    build=_gcontacts,
    probe=_reach_gcontacts,
    summary="Google contacts through the People API (contacts.readonly)",
    login="google",
    probe_label="reachability of",
)
