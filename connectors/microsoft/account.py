"""The msal sign-in and the Graph client of a ``microsoft`` account, validated."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from keepwarm.connectors.base import SourceError
from keepwarm.connectors.microsoft.auth import MicrosoftAuth, check_endpoint, scopes_for
from keepwarm.connectors.microsoft.connector import MicrosoftConnector, Options
from keepwarm.connectors.microsoft.graph import DEFAULT_GRAPH, GraphClient

__all__ = ["MicrosoftAuth", "MicrosoftConnector", "Options", "make_auth", "make_client"]


def make_auth(
    *,
    account: str,
    client_id: str | None,
    tenant: str,
    token_path: Path,
    mail: bool,
    calendar: bool,
    send: bool,
    contacts: bool = False,
    authority_host: str | None = None,
    ca_file: Path | None = None,
    timeout: timedelta = timedelta(seconds=60),
) -> MicrosoftAuth:
    """The msal side of an account, validated; SourceError explains what to fix."""
    if not client_id:
        raise SourceError(
            f'account "{account}": client_id is not set. Register an app in Microsoft Entra (or '
            "ask your admin for one) and put its Application (client) ID in client_id; see "
            "docs/microsoft.md"
        )
    scopes = scopes_for(mail=mail, calendar=calendar, send=send, contacts=contacts)
    if not scopes:
        raise SourceError(
            f'account "{account}": both mail and calendar are off; enable one of them'
        )
    return MicrosoftAuth(
        account=account,
        client_id=client_id,
        tenant=tenant,
        token_path=token_path,
        scopes=scopes,
        authority_host=authority_host,
        ca_file=ca_file,
        timeout=timeout.total_seconds(),
    )


def make_client(
    auth: MicrosoftAuth,
    *,
    graph_endpoint: str | None = None,
    timeout: timedelta = timedelta(seconds=60),
    backoff_base: float = 0.5,
) -> GraphClient:
    base = check_endpoint(graph_endpoint or DEFAULT_GRAPH, "graph_endpoint")
    return GraphClient(
        auth, base_url=base, timeout=timeout.total_seconds(), backoff_base=backoff_base
    )
