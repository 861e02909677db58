"""Digest delivery through Microsoft Graph sendMail (``[delivery] method = "microsoft"``).

Implements :class:`keepwarm.digests.deliver.Delivery`. The digest's MIME message is sent whole
(``Auto-Submitted``, ``X-Keepwarm-Digest`` and the day's stable Message-ID kept), so Exchange
files it in Sent Items; after a crash, :meth:`GraphDelivery.delivered` looks for that Message-ID
there. Graph answers ``202 Accepted``: accepted for delivery.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from email.message import EmailMessage

from keepwarm.connectors.base import AuthRequired, ConnectorError, TransientError
from keepwarm.connectors.microsoft.graph import GraphClient, NoAnswer
from keepwarm.connectors.microsoft.send import send_mime
from keepwarm.daemon.config import Config, ConfigError
from keepwarm.digests.deliver import DeliveryError


class GraphDelivery:
    """Send the digest as the signed-in Outlook user."""

    method = "microsoft"

    def __init__(self, client: GraphClient, account: str, *, can_read_mail: bool = True) -> None:
        self.client = client
        self.account = account
        self.can_read_mail = can_read_mail

    def close(self) -> None:
        self.client.close()

    def delivered(self, local_date: date, message_id: str) -> bool | None:
        """True when the message is in Sent Items; None when that cannot be told."""
        if not self.can_read_mail:
            return None
        quoted = message_id.replace("'", "''")
        try:
            found = self.client.get(
                "me/mailFolders/sentitems/messages",
                {"$filter": f"internetMessageId eq '{quoted}'", "$select": "id", "$top": "1"},
            )
        except ConnectorError:
            return None
        return True if found.get("value") else None

    def deliver(
        self,
        message: EmailMessage,
        *,
        local_date: date,
        html: str,
        before_data: Callable[[], None],
    ) -> str:
        try:
            before_data()
            send_mime(self.client, message)
        except NoAnswer as exc:
            raise DeliveryError(
                f"{exc}; the digest may have been sent", transient=True, maybe_sent=True
            ) from None
        except TransientError as exc:
            raise DeliveryError(str(exc), transient=True) from None
        except AuthRequired as exc:
            raise DeliveryError(
                f"{exc}. To fix: {exc.fix} (the app registration needs the Mail.Send permission)",
                transient=False,
            ) from None
        except ConnectorError as exc:
            raise DeliveryError(str(exc), transient=False) from None
        return f"Microsoft Graph sendMail as account {self.account}"


def graph_delivery(config: Config) -> GraphDelivery:
    """The Graph delivery of ``[delivery] account`` (a ``microsoft`` account)."""
    from keepwarm.daemon.accounts import microsoft_client

    name = config.delivery_account
    if not name:
        raise DeliveryError(
            'delivery method "microsoft" needs [delivery] account = the name of a microsoft '
            "account",
            transient=False,
        )
    try:
        account = config.account(name)
        client = microsoft_client(account, config)
    except (ConnectorError, ConfigError) as exc:
        raise DeliveryError(str(exc), transient=False) from None
    return GraphDelivery(client, name, can_read_mail=bool(getattr(account.options, "mail", False)))
