"""Send a message through Graph ``POST /me/sendMail`` (needs the Mail.Send scope).

Used by the digest delivery option ``[delivery] method = "microsoft"``. Graph answers
``202 Accepted`` with an empty body: accepted for delivery, not yet delivered. The request is not
retried after a timeout or a dropped connection (it may have been accepted), so a digest is never
sent twice; the caller's send-once ledger decides what happens next.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

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
