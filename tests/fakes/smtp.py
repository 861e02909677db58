"""A real SMTP server on loopback (aiosmtpd) with STARTTLS or implicit TLS and AUTH, for tests.

The TLS certificate is made per test by ``trustme``; the client trusts it through ``ca_file``.
``reply_to_data`` makes the server answer DATA with an error (e.g. "451 4.3.0 try later").
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

USER = "jane@example.com"
PASSWORD = "s3cret-app-password"


@dataclass
class Handler:
    received: list[Any] = field(default_factory=list)
    reply_to_data: str | None = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.reply_to_data:
            return self.reply_to_data
        self.received.append(envelope)
        return "250 2.0.0 OK queued"


def _authenticator(
    server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login.decode() == USER
        and auth_data.password.decode() == PASSWORD
    )
    return AuthResult(success=ok, handled=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class SmtpServer:
    host: str
    port: int
    ca_file: Path
    handler: Handler


@contextmanager
def smtp_server(
    tmp_path: Path, *, implicit_tls: bool = False, handler: Handler | None = None
) -> Iterator[SmtpServer]:
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_ctx)
    ca_file = tmp_path / "test-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    handler = handler or Handler()
    port = free_port()
    kwargs: dict[str, Any] = {
        "hostname": "127.0.0.1",
        "port": port,
        "authenticator": _authenticator,
        "auth_require_tls": True,
        "ready_timeout": 10,
    }
    if implicit_tls:
        kwargs["ssl_context"] = server_ctx
        # aiosmtpd only counts STARTTLS as "TLS" for AUTH; the whole session is TLS here.
        kwargs["auth_require_tls"] = False
    else:
        kwargs["tls_context"] = server_ctx
        kwargs["require_starttls"] = True
    controller = Controller(handler, **kwargs)
    controller.start()
    try:
        yield SmtpServer("127.0.0.1", port, ca_file, handler)
    finally:
        controller.stop()
