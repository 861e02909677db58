"""Digest delivery through the Gmail API (``[delivery] method = "gmail"``).

Implements :class:`keepwarm.digests.deliver.Delivery` with ``users.messages.send`` (``raw`` =
base64url of the whole MIME message, so ``Auto-Submitted``, ``X-Keepwarm-Digest`` and the day's
stable Message-ID are kept). Needs the ``gmail.send`` scope, which ``keepwarm auth google`` asks
for only when this delivery names the account. The send is never retried blindly: a refusal
(429/5xx) is transient and certainly not sent; a timeout or dropped connection after the request
went out is "maybe sent". ``delivered()`` cannot tell (gmail.metadata cannot search), so it
answers ``None``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from email.message import EmailMessage

import google.auth.exceptions
from googleapiclient.errors import HttpError

from keepwarm.connectors.base import AuthRequired, ConnectorError, SourceError
from keepwarm.connectors.google.auth import GMAIL_SEND, fix_command, refresh_failure
from keepwarm.connectors.google.client import NETWORK_ERRORS, GoogleClient
from keepwarm.connectors.google.gmail import send_raw
from keepwarm.connectors.google.quota import error_reason, is_retryable
from keepwarm.daemon.config import Config, ConfigError
from keepwarm.digests.deliver import POLICY, DeliveryError


class GmailDelivery:
    """Send the digest as the authorised Gmail user."""

    method = "gmail"

    def __init__(self, client: GoogleClient, account: str) -> None:
        self.client = client
        self.account = account

    def delivered(self, local_date: date, message_id: str) -> bool | None:
        return None  # gmail.metadata forbids search (q); the ledger decides

    def close(self) -> None:
        self.client.close()

    def deliver(
        self,
        message: EmailMessage,
        *,
        local_date: date,
        html: str,
        before_data: Callable[[], None],
    ) -> str:
        fix = fix_command(self.account)
        try:
            _ = self.client.creds  # a missing/limited token is found before anything is sent
            before_data()
            send_raw(self.client, message.as_bytes(policy=POLICY))
        except AuthRequired as exc:
            raise DeliveryError(f"{exc}. To fix: {exc.fix or fix}", transient=False) from None
        except HttpError as exc:
            raise self._http_error(exc, fix) from None
        except google.auth.exceptions.GoogleAuthError as exc:
            err = refresh_failure(exc, self.account)
            raise DeliveryError(str(err) + (f". To fix: {fix}" if isinstance(err, AuthRequired) else ""), transient=not isinstance(err, AuthRequired)) from None  # fmt: skip
        except NETWORK_ERRORS as exc:
            raise DeliveryError(
                f"the connection to Gmail failed while sending ({type(exc).__name__}); the digest may have been sent",
                transient=True,
                maybe_sent=True,
            ) from None
        except ConnectorError as exc:
            raise DeliveryError(str(exc), transient=False) from None
        return f"Gmail API as account {self.account}"

    def _http_error(self, exc: HttpError, fix: str) -> DeliveryError:
        status = int(exc.resp.status)
        reason = error_reason(exc.content)
        if status == 401 or (status == 403 and reason in ("insufficientPermissions", "ACCESS_TOKEN_SCOPE_INSUFFICIENT")):  # fmt: skip
            return DeliveryError(
                f"Gmail refused to send as {self.account} (the token lacks gmail.send). To fix: {fix}",
                transient=False,
            )
        if is_retryable(status, reason):
            return DeliveryError(f"Gmail is busy (HTTP {status}); will retry", transient=True)
        err = self.client.refusal(exc, "the digest")  # names the fix (an API not enabled...)
        if isinstance(err, SourceError):
            return DeliveryError(f"{err}. To fix: {err.fix}", transient=False)
        return DeliveryError(str(err), transient=True)


def gmail_delivery(config: Config) -> GmailDelivery:
    """The Gmail delivery of ``[delivery] account`` (a gmail or gcal account)."""
    from keepwarm.daemon.accounts import google_client

    name = config.delivery_account
    if not name:
        raise DeliveryError(
            'delivery method "gmail" needs [delivery] account = the name of a gmail account',
            transient=False,
        )
    try:
        account = config.account(name)
    except ConfigError as exc:
        raise DeliveryError(str(exc), transient=False) from None
    return GmailDelivery(google_client(account, config, scopes=(GMAIL_SEND,)), name)
