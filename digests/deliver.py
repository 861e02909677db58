"""Getting the rendered digest to the user: the message itself and the ways to deliver it.

The :class:`Delivery` protocol is deliberately small so the Gmail API and Graph sendMail
connectors can add their own implementation:

``method``
    a short name for logs and the ledger ("file", "smtp", "gmail", "microsoft").
``delivered(local_date, message_id) -> bool | None``
    after a crash: was this exact message already delivered? ``True``/``False`` when the method can
    tell (the file outbox looks for the file), ``None`` when it cannot (SMTP).
``deliver(message, *, local_date, html, before_data) -> str``
    deliver ``message`` (an ``EmailMessage`` built by :func:`build_message`); call
    ``before_data()`` at the last moment before the point of no return (SMTP: before DATA; an
    HTTP API: before the POST) so the caller can record "possibly sent"; return where it went.
    Raise :class:`DeliveryError` with ``transient`` (worth retrying later: 4xx, timeouts, refused
    connections) and ``maybe_sent`` (the failure happened after ``before_data``).

Every digest carries ``Auto-Submitted: auto-generated`` and ``X-Keepwarm-Digest: 1`` (the
connectors turn the latter into the ``keepwarm-digest`` marker so a digest is never counted as an
interaction) and a Message-ID that is stable for the local day, so a resend is recognisably the
same message.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import smtplib
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from email.utils import format_datetime, formataddr
from pathlib import Path
from typing import Protocol

from keepwarm.core.errors import KeepwarmError
from keepwarm.core.files import write_private
from keepwarm.digests.render import RenderedDigest
from keepwarm.digests.suggest import clean_text

MARKER_HEADER = "X-Keepwarm-Digest"
# Fold headers only past 200 characters: the stdlib otherwise folds a long Subject right after
# "Subject:", which some clients show with a leading space. RFC 5322 allows up to 998.
POLICY = policy.SMTP.clone(max_line_length=200)
MESSAGE_ID_DOMAIN = "keepwarm.invalid"


class DeliveryError(KeepwarmError):
    """The digest could not be delivered. The message says what to check."""

    def __init__(self, message: str, *, transient: bool, maybe_sent: bool = False) -> None:
        super().__init__(message)
        self.transient = transient
        self.maybe_sent = maybe_sent


class Delivery(Protocol):
    @property
    def method(self) -> str: ...

    def delivered(self, local_date: date, message_id: str) -> bool | None: ...

    def deliver(
        self,
        message: EmailMessage,
        *,
        local_date: date,
        html: str,
        before_data: Callable[[], None],
    ) -> str: ...

    def close(self) -> None:
        """Close its connections (the maker of a delivery closes it after the day's send)."""


# -- the message ----------------------------------------------------------------------------------
def message_id_for(local_date: date, recipient: str, *, resend: int = 0) -> str:
    """Stable per day and recipient: a retry of the same day's digest reuses it."""
    tag = hashlib.blake2b(recipient.lower().encode(), digest_size=5).hexdigest()
    extra = f".r{resend}" if resend else ""
    return f"<digest.{local_date.isoformat()}.{tag}{extra}@{MESSAGE_ID_DOMAIN}>"


def build_message(
    rendered: RenderedDigest,
    *,
    sender: str,
    sender_name: str,
    to: str,
    message_id: str,
    when: datetime,
) -> EmailMessage:
    """multipart/alternative (text, then HTML) with the automation headers, policy SMTP."""
    msg = EmailMessage(policy=POLICY)
    msg["Subject"] = clean_text(rendered.subject, 200)
    msg["From"] = formataddr((clean_text(f"{sender_name} (keepwarm)", 80), _addr(sender)))
    msg["To"] = _addr(to)
    msg["Date"] = format_datetime(when)
    msg["Message-ID"] = clean_text(message_id, 200)
    msg["Auto-Submitted"] = "auto-generated"
    msg[MARKER_HEADER] = "1"
    msg["X-Auto-Response-Suppress"] = "All"
    msg["Precedence"] = "bulk"
    msg.set_content(rendered.text, subtype="plain", charset="utf-8", cte="quoted-printable")
    msg.add_alternative(rendered.html, subtype="html", charset="utf-8", cte="quoted-printable")
    return msg


def _addr(address: str) -> str:
    a = clean_text(address, 254)
    if not a or any(c in a for c in ' <>,;"') or a.count("@") != 1:
        raise DeliveryError(f"not a usable email address: {a!r}", transient=False)
    return a


# -- file outbox ----------------------------------------------------------------------------------
# The temporary files core.files.write_private leaves if killed mid-write (".NAME.random").
_TEMPORARY = re.compile(r"\.\d{4}-\d{2}-\d{2}\.(?:eml|html)\.[A-Za-z0-9_]{6,}")


class FileOutbox:
    """Writes ``YYYY-MM-DD.html`` and then ``YYYY-MM-DD.eml`` (the commit point) per local day."""

    method = "file"

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def clean(self) -> int:
        """Remove temporary files left by writes that were killed (``.YYYY-MM-DD.eml.xxxxxx``).

        Only the one delivering process (it holds the delivery lock) writes here, so any such
        file is debris. Returns how many were removed."""
        removed = 0
        try:
            names = [e.name for e in os.scandir(self.directory) if e.is_file(follow_symlinks=False)]
        except OSError:
            return 0
        for name in names:
            if _TEMPORARY.fullmatch(name):
                with contextlib.suppress(FileNotFoundError):
                    (self.directory / name).unlink()
                    removed += 1
        return removed

    def paths(self, local_date: date) -> tuple[Path, Path]:
        stem = local_date.isoformat()
        return self.directory / f"{stem}.eml", self.directory / f"{stem}.html"

    def delivered(self, local_date: date, message_id: str) -> bool | None:
        eml, _ = self.paths(local_date)
        try:
            with eml.open("rb") as fh:
                headers = BytesHeaderParser(policy=policy.default).parse(fh)
        except FileNotFoundError:
            return False
        except OSError:
            return None
        return str(headers.get("Message-ID", "")).strip() == message_id

    def close(self) -> None:
        """Nothing to close: each file is closed when it is written."""

    def deliver(
        self,
        message: EmailMessage,
        *,
        local_date: date,
        html: str,
        before_data: Callable[[], None],
    ) -> str:
        eml, page = self.paths(local_date)
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            self.clean()
            write_private(page, html.encode("utf-8"))
            before_data()
            write_private(eml, message.as_bytes(policy=POLICY))
        except OSError as exc:
            raise DeliveryError(
                f"cannot write the digest to the outbox {self.directory}: {exc.strerror or exc}. "
                "Check the directory's permissions and free space, or set [delivery].outbox",
                transient=False,
            ) from exc
        return str(eml)


# -- SMTP -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    security: str  # tls | starttls | none
    username: str | None
    password: Callable[[], str] | None  # resolved lazily, only when AUTH is needed
    timeout: float = 30.0
    ca_file: Path | None = None


class SmtpDelivery:
    """smtplib with implicit TLS or STARTTLS (certificate and host name verified) and AUTH."""

    method = "smtp"

    def __init__(self, settings: SmtpSettings) -> None:
        self.s = settings

    def delivered(self, local_date: date, message_id: str) -> bool | None:
        return None  # an SMTP server cannot be asked

    def close(self) -> None:
        """Nothing to close: each delivery opens and closes its own SMTP connection."""

    def deliver(
        self,
        message: EmailMessage,
        *,
        local_date: date,
        html: str,
        before_data: Callable[[], None],
    ) -> str:
        data_started = False
        where = f"{self.s.host}:{self.s.port}"
        try:
            with self._connect() as smtp:
                self._login(smtp)
                sender = str(message["From"].addresses[0].addr_spec)
                rcpt = str(message["To"].addresses[0].addr_spec)
                code, resp = smtp.mail(sender)
                if code != 250:
                    raise smtplib.SMTPSenderRefused(code, resp, sender)
                code, resp = smtp.rcpt(rcpt)
                if code not in (250, 251):
                    raise smtplib.SMTPRecipientsRefused({rcpt: (code, resp)})
                before_data()
                data_started = True
                code, resp = smtp.data(message.as_bytes(policy=POLICY))
                if code != 250:  # a definite answer: the server did not take it
                    raise smtplib.SMTPDataError(code, resp)
                with contextlib.suppress(smtplib.SMTPException, OSError):
                    smtp.quit()  # accepted already; a rude goodbye changes nothing
        except DeliveryError:
            raise
        except (smtplib.SMTPException, OSError) as exc:
            raise _smtp_error(exc, where, data_started) from exc
        return f"smtp://{where}"

    def _connect(self) -> smtplib.SMTP:
        timeout = self.s.timeout
        if self.s.security == "tls":
            return smtplib.SMTP_SSL(
                self.s.host, self.s.port, timeout=timeout, context=self._tls_context()
            )
        smtp = smtplib.SMTP(self.s.host, self.s.port, timeout=timeout)
        try:
            smtp.ehlo()
            if self.s.security == "starttls":
                if not smtp.has_extn("starttls"):
                    raise DeliveryError(
                        f"the SMTP server {self.s.host}:{self.s.port} does not offer STARTTLS; "
                        'use security = "tls" (port 465) or another server - the password is never sent in clear',
                        transient=False,
                    )
                smtp.starttls(context=self._tls_context())
                smtp.ehlo()
        except BaseException:
            smtp.close()
            raise
        return smtp

    def _tls_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(
            cafile=str(self.s.ca_file) if self.s.ca_file is not None else None
        )
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        return ctx

    def _login(self, smtp: smtplib.SMTP) -> None:
        if not self.s.username:
            return
        if self.s.password is None:
            raise DeliveryError(
                "[delivery.smtp] has a username but no password source; set password_file, "
                "password_env or password_command",
                transient=False,
            )
        try:
            smtp.login(self.s.username, self.s.password())
        except smtplib.SMTPAuthenticationError as exc:
            code = exc.smtp_code
            if 400 <= code < 500:
                raise DeliveryError(
                    f"the SMTP server refused to log in for now ({code} {_text(exc.smtp_error)}); will retry",
                    transient=True,
                ) from exc
            raise DeliveryError(
                f"the SMTP server rejected the login for {self.s.username} ({code} {_text(exc.smtp_error)}); "
                "check [delivery.smtp] username and the password source (app passwords are needed "
                "by Gmail and Outlook when two-factor sign-in is on)",
                transient=False,
            ) from exc


def _text(raw: bytes | str) -> str:
    s = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    return clean_text(s, 160)


def _oserror(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is the host and port right, is the server up?)"
    if isinstance(exc, socket.gaierror):
        return f"host name lookup failed ({exc.strerror})"
    return clean_text(getattr(exc, "strerror", None) or str(exc) or type(exc).__name__, 160)


def _smtp_error(
    exc: smtplib.SMTPException | OSError, where: str, data_started: bool
) -> DeliveryError:
    """What an SMTP or network failure means for the user, and whether it may be retried (and
    whether the digest may have been sent: the server may have taken it once DATA started)."""
    if isinstance(exc, smtplib.SMTPResponseException):
        return _response_error(exc, where, data_started)
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        code = min((c for c, _ in exc.recipients.values()), default=550)
        return DeliveryError(
            f"the SMTP server {where} refused the recipient ({code}); check [digest].to",
            transient=400 <= code < 500,
        )
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return DeliveryError(
            f"the SMTP server {where} does not offer {'STARTTLS' if 'STARTTLS' in str(exc) else 'AUTH'}: {exc}; "
            'check [delivery.smtp] security ("tls" for port 465, "starttls" for 587)',
            transient=False,
        )
    if isinstance(exc, ssl.SSLCertVerificationError):
        return DeliveryError(
            f"the SMTP server {where} presented a certificate that is not trusted "
            f"({exc.verify_message}); for a private CA set [delivery.smtp] ca_file",
            transient=False,
        )
    if isinstance(exc, ssl.SSLError):
        return DeliveryError(
            f"TLS with the SMTP server {where} failed ({exc.reason or exc}); check [delivery.smtp] "
            'security and port ("tls" is usually port 465, "starttls" port 587)',
            transient=False,
        )
    if isinstance(
        exc,
        smtplib.SMTPServerDisconnected | TimeoutError | ConnectionError | socket.gaierror,
    ):
        return DeliveryError(
            f"cannot talk to the SMTP server {where}: {_oserror(exc)}; will retry",
            transient=True,
            maybe_sent=data_started,
        )
    if isinstance(exc, smtplib.SMTPException):
        return DeliveryError(
            f"SMTP with {where} failed: {exc}", transient=False, maybe_sent=data_started
        )
    return DeliveryError(
        f"cannot reach the SMTP server {where}: {_oserror(exc)}; will retry",
        transient=True,
        maybe_sent=data_started,
    )


def _response_error(
    exc: smtplib.SMTPResponseException, where: str, data_started: bool
) -> DeliveryError:
    code = exc.smtp_code
    text = _text(exc.smtp_error)
    # A definite reply to DATA (4xx/5xx) means the server did not take the message.
    if 400 <= code < 500:
        return DeliveryError(
            f"the SMTP server {where} deferred the digest ({code} {text}); will retry",
            transient=True,
        )
    return DeliveryError(
        f"the SMTP server {where} rejected the digest ({code} {text})", transient=False
    )
