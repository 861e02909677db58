"""IMAP accounts (Fastmail, iCloud, Proton Bridge, Dovecot, Gmail over IMAP ...): the kind's
options and declaration. The connector is in :mod:`.connector`, the connection in
:mod:`.session`, the pure parsing in :mod:`.parsing` and the sync position in :mod:`.state`."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Literal

from keepwarm.connectors.base import AuthRequired, Connector, ConnectorError, SourceError
from keepwarm.connectors.registry import ConnectorKind, Context, is_loopback_host, option


@dataclass(frozen=True)
class ImapOptions:
    """``[[accounts]] kind = "imap"`` (the password comes from password_file, password_env or
    password_command, never from this table)."""

    host: str = option(doc="the IMAP server, such as imap.fastmail.com")
    username: str = option(doc="the login name, usually your address")
    port: int | None = option(None, doc="993 with tls, 143 otherwise", range=(1, 65535))
    security: Literal["tls", "starttls", "none"] = option(
        "tls", doc="how the connection is encrypted"
    )
    allow_plaintext: bool = option(False, doc='with security = "none", towards a loopback address')
    folders: tuple[str, ...] = option(
        (), doc="only these folders (default: all)", items="folder names"
    )
    exclude_folders: tuple[str, ...] = option((), doc="never these folders", items="folder names")
    timeout: timedelta = option(timedelta(seconds=60), doc="network timeout")
    ca_file: Path | None = option(None, doc="the CA certificate of a server with a private CA")
    backfill: timedelta = option(timedelta(days=3 * 365), doc="how far back the first sync reads")


def _problems(o: ImapOptions) -> list[str]:
    if o.security == "none" and not (o.allow_plaintext and is_loopback_host(o.host or "")):
        return [
            'security: "none" is allowed only towards a loopback address and with allow_plaintext = true'
        ]
    return []


def build(o: ImapOptions, ctx: Context) -> Connector:
    from keepwarm.connectors.imap.connector import ImapConnector
    from keepwarm.connectors.imap.session import ImapSettings

    settings = ImapSettings(
        host=o.host,
        username=o.username,
        password=ctx.read_password,
        port=o.port,
        security=o.security,
        folders=o.folders,
        exclude_folders=o.exclude_folders,
        timeout=o.timeout.total_seconds(),
        ca_file=o.ca_file,
        backfill=o.backfill,
        keep_subjects=ctx.keep_subjects,
        password_hint=ctx.password_hint,
    )
    return ImapConnector(ctx.account, settings)


def probe(o: ImapOptions, ctx: Context, timeout: float) -> str:
    """Log in and list the folders a sync would read, as a sync would (TLS, login, folders)."""
    from keepwarm.connectors.imap.connector import ImapConnector

    connector = build(o, ctx)
    assert isinstance(connector, ImapConnector)
    connector.settings = replace(connector.settings, timeout=timeout, retries=0)
    try:
        return connector.check()
    except AuthRequired as exc:
        exc.fix = exc.fix or "check the username and password source"
        raise
    except ConnectorError as exc:
        raise SourceError(
            str(exc),
            exc.fix or "check host, port, security and ca_file in the account's [[accounts]] table",
        ) from None


IMAP = ConnectorKind(
    kind="imap",
    options=ImapOptions,
    build=build,
    probe=probe,
    summary="an IMAP mailbox (headers only)",
    login="password",
    probe_label="login to",
    problems=_problems,
)
