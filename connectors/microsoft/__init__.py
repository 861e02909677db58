"""Microsoft 365 (Outlook mail, calendar and, when asked for, contacts) through msal and Graph:
the ``microsoft`` kind's options and declaration. Sign-in and the Graph client are in
:mod:`.account`, the connector in :mod:`.connector`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from keepwarm.connectors.base import Connector
from keepwarm.connectors.registry import ConnectorKind, Context, option, reach

if TYPE_CHECKING:
    from keepwarm.connectors.microsoft.auth import MicrosoftAuth
    from keepwarm.connectors.microsoft.graph import GraphClient

GRAPH_HOST = "https://graph.microsoft.com"


@dataclass(frozen=True)
class MicrosoftOptions:
    """``[[accounts]] kind = "microsoft"``: mail and calendar (and contacts when asked for)."""

    client_id: str | None = option(None, doc="the Application (client) ID of your Entra app")
    tenant: str = option("common", doc='your tenant id or domain ("common": any account)')
    token_file: Path | None = option(None, doc="default: STATE_DIR/tokens/NAME.json")
    mail: bool = option(True, doc="read mail")
    calendar: bool = option(True, doc="read the calendar")
    contacts: bool = option(False, doc="read Outlook contacts (Contacts.Read)")
    backfill: timedelta = option(timedelta(days=3 * 365), doc="how far back the first sync reads")
    window_past: timedelta = option(timedelta(days=730), doc="how far back events are read")
    window_future: timedelta = option(timedelta(days=14), doc="how far ahead events are read")
    authority_host: str | None = option(None, doc="another sign-in host (tests, national clouds)")
    graph_endpoint: str | None = option(None, doc="another Graph address (tests, national clouds)")
    ca_file: Path | None = option(None, doc="the CA certificate of a private endpoint")
    timeout: timedelta = option(timedelta(seconds=60), doc="network timeout")


def sign_in(o: MicrosoftOptions, ctx: Context) -> MicrosoftAuth:
    """The msal side of the account (the send scope when the digest goes out through it)."""
    from keepwarm.connectors.microsoft.account import make_auth

    assert ctx.token_path is not None
    return make_auth(
        account=ctx.account,
        client_id=o.client_id,
        tenant=o.tenant or "common",
        token_path=ctx.token_path,
        mail=o.mail,
        calendar=o.calendar,
        contacts=o.contacts,
        send=ctx.sends_digest,
        authority_host=o.authority_host,
        ca_file=o.ca_file,
        timeout=o.timeout,
    )


def graph_client(o: MicrosoftOptions, ctx: Context) -> GraphClient:
    """The Graph client of the account (sync, and sendMail delivery)."""
    from keepwarm.connectors.microsoft.account import make_client

    return make_client(sign_in(o, ctx), graph_endpoint=o.graph_endpoint, timeout=o.timeout)


def _build(o: MicrosoftOptions, ctx: Context) -> Connector:
    from keepwarm.connectors.microsoft.connector import MicrosoftConnector, Options

    options = Options(
        mail=o.mail,
        calendar=o.calendar,
        contacts=o.contacts,
        backfill=o.backfill,
        window_past=o.window_past,
        window_future=o.window_future,
        keep_subjects=ctx.keep_subjects,
        me=ctx.me,
    )
    return MicrosoftConnector(ctx.account, graph_client(o, ctx), options)


def _probe(o: MicrosoftOptions, _ctx: Context, timeout: float) -> str:
    return reach(o.graph_endpoint or GRAPH_HOST, timeout)


MICROSOFT = ConnectorKind(
    kind="microsoft",
    options=MicrosoftOptions,
    build=_build,
    probe=_probe,
    summary="Microsoft 365 mail, calendar and contacts through Graph (never bodies)",
    login="microsoft",
    probe_label="reachability of",
)
