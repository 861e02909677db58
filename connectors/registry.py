"""Every account kind keepwarm reads, one line each, and what a kind declares about itself.

A connector module declares its kind as a :class:`ConnectorKind`: the ``kind`` name used in
``[[accounts]] kind = "..."``, a frozen options dataclass (the keys of its ``[[accounts]]`` table:
typed, with defaults and a line of documentation each, see :func:`option`), ``build`` (options
and the account's :class:`Context` to a :class:`~keepwarm.connectors.base.Connector`), how it logs
in, and ``probe`` (what ``keepwarm doctor`` checks). :data:`KINDS` below names the module that
declares each kind; the module is imported only when its kind is used, so a module that declares
a kind imports no heavy library at its top (the connector itself may live in a sibling module,
imported inside ``build``).

The daemon reads everything from here: config validation and defaults (``daemon/config.py``),
building connectors (``daemon/accounts.py``), ``doctor``, the token and password watch, and
``keepwarm import``. Adding a kind is one module that declares it, one line in :data:`KINDS`, its
docs and its tests (CONTRIBUTING.md, "Adding a connector").
"""

from __future__ import annotations

import dataclasses
import importlib
import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from keepwarm.connectors.base import Connector, SourceError, TransientError

# kind -> "module:NAME" of its ConnectorKind (the module is imported on first use).
KINDS: dict[str, str] = {
    "mbox": "keepwarm.connectors.local:MBOX",
    "maildir": "keepwarm.connectors.local:MAILDIR",
    "ics": "keepwarm.connectors.local:ICS",
    "vcard": "keepwarm.connectors.local:VCARD",
    "imap": "keepwarm.connectors.imap:IMAP",
    "gmail": "keepwarm.connectors.google:GMAIL",
    "gcal": "keepwarm.connectors.google:GCAL",
    "gcontacts": "keepwarm.connectors.google:GCONTACTS",
    "microsoft": "keepwarm.connectors.microsoft:MICROSOFT",
    "caldav": "keepwarm.connectors.dav:CALDAV",
    "carddav": "keepwarm.connectors.dav:CARDDAV",
}

Login = Literal["none", "password", "google", "microsoft"]
OptionsT = TypeVar("OptionsT")


@dataclass(frozen=True)
class Context:
    """What a connector needs from the rest of the config, besides its own options.

    ``password`` reads the account's password when called (file, environment or command; never
    stored); ``password_hint`` says where it comes from, for error messages. ``token_path`` is the
    OAuth token file of a google/microsoft account. ``sends_digest``: the digest is delivered
    through this account (it needs the send scope).
    """

    account: str
    zone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    me: tuple[str, ...] = ()
    keep_subjects: bool = True
    token_path: Path | None = None
    password: Callable[[], str] | None = field(default=None, repr=False)
    password_hint: str = "the configured password"
    sends_digest: bool = False

    def read_password(self) -> str:
        if self.password is None:
            raise SourceError(f'account "{self.account}": no password source is configured')
        return self.password()


@dataclass(frozen=True)
class ConnectorKind(Generic[OptionsT]):
    """One account kind: its options, how to build its connector, how doctor checks it.

    ``probe(options, context, timeout)`` is what ``keepwarm doctor`` runs: it returns a short
    sentence on success and raises a ConnectorError (``fix`` set where the message alone does
    not say what to do) on failure. ``probe_label`` names that check ("login to NAME").
    ``problems(options)`` lists what is wrong across several keys (``"key: why"``), beyond what
    each key's type already checks. ``importable``: ``keepwarm import KIND PATH`` reads it.
    """

    kind: str
    options: type[OptionsT]
    build: Callable[[OptionsT, Context], Connector]
    probe: Callable[[OptionsT, Context, float], str]
    summary: str
    login: Login = "none"
    probe_label: str = "source of"
    problems: Callable[[OptionsT], list[str]] | None = None
    importable: bool = False

    @property
    def oauth(self) -> bool:
        return self.login in ("google", "microsoft")


def option(
    default: Any = dataclasses.MISSING,
    *,
    doc: str = "",
    range: tuple[float, float] | None = None,
    items: str = "names",
    check: str | None = None,
) -> Any:
    """A field of an options dataclass: its default (none: the key is required), a line of
    documentation, the allowed ``range`` of a number, what a list holds (``items``, for messages)
    and ``check``, the name of a special check (``"url"``: an https:// server address;
    ``"path_or_url"``: a path, or a published calendar's address)."""
    meta = {"doc": doc, "range": range, "items": items, "check": check}
    if isinstance(default, list | dict | set):
        raise TypeError("option defaults are immutable (use a tuple)")
    return field(default=default, metadata=meta)


def get(kind: str) -> ConnectorKind[Any]:
    """The declaration of ``kind``; KeyError when no module declares it."""
    module, _, name = KINDS[kind].partition(":")
    spec = getattr(importlib.import_module(module), name)
    if not isinstance(spec, ConnectorKind) or spec.kind != kind:
        raise TypeError(f"{KINDS[kind]} does not declare the kind {kind!r}")
    return spec


def all_kinds() -> list[ConnectorKind[Any]]:
    return [get(k) for k in KINDS]


def kinds_where(test: Callable[[ConnectorKind[Any]], bool]) -> tuple[str, ...]:
    return tuple(k.kind for k in all_kinds() if test(k))


# -- helpers for declarations and probes ------------------------------------------------------------
def is_loopback_host(host: str) -> bool:
    """``localhost``, 127.0.0.0/8 or ::1 (brackets allowed): where clear text is allowed."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def reach(url: str, timeout: float, *, what: str = "") -> str:
    """Open (and close) a TCP connection to the host of ``url`` (``https://`` assumed when no
    scheme). Returns ``host:port accepts connections``; TransientError says why not."""
    parts = urlsplit(url if "//" in url else f"https://{url}")
    host = parts.hostname or url
    port = parts.port or (80 if parts.scheme == "http" else 443)
    return reach_host(host, port, timeout, what=what)


def reach_host(host: str, port: int, timeout: float, *, what: str = "") -> str:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise TransientError(
            f"cannot connect to {host}:{port}: {reason}",
            fix="check the host and port in the config, the network and any firewall",
        ) from None
    return f"{host}:{port} accepts connections{what}"
