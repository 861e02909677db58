"""Send a message through Graph ``POST /me/sendMail`` (needs the Mail.Send scope).

Used by the digest delivery option ``[delivery] method = "microsoft"``. :func:`send_mime` keeps
every header of a prepared message (the JSON form allows only ``X-`` headers). Graph answers
``202 Accepted`` with an empty body: accepted for delivery, not yet delivered. The request is not
retried after a timeout or a dropped connection (it may have been accepted), so a digest is never
sent twice; the caller's send-once ledger decides what happens next.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from email.message import EmailMessage

from keepwarm.connectors.microsoft.graph import GraphClient


def send_mail(
    client: GraphClient,
    *,
    to: Sequence[str],
    subject: str,
    text: str,
    html: str | None = None,
    headers: Mapping[str, str] | None = None,
    save_to_sent: bool = False,
) -> None:
    """Send one message; raises TransientError / AuthRequired / GraphError on failure."""
    message: dict[str, object] = {
        "subject": subject,
        "body": {"contentType": "HTML" if html else "Text", "content": html or text},
        "toRecipients": [{"emailAddress": {"address": a}} for a in to],
    }
    if headers:
        message["internetMessageHeaders"] = [
            {"name": k, "value": v} for k, v in headers.items() if k.lower().startswith("x-")
        ]
    client.post(
        "me/sendMail",
        {"message": message, "saveToSentItems": save_to_sent},
        idempotent=False,
    )


def send_mime(client: GraphClient, message: EmailMessage | bytes) -> None:
    """Send a complete MIME message (all its headers kept, e.g. ``Auto-Submitted``).

    Graph takes it base64-encoded with ``Content-Type: text/plain`` and saves it to Sent Items.
    """
    raw = message if isinstance(message, bytes) else message.as_bytes()
    client.post(
        "me/sendMail",
        base64.b64encode(raw),
        {"Content-Type": "text/plain"},
        idempotent=False,
    )
