"""Graph JSON -> keepwarm records. The only place Graph field names meet :mod:`connectors.base`.

Messages: Graph gives structured recipients, so no header parsing is needed; addresses still go
through :func:`headers.normalize_address` and dates through the shared plausibility check, so a
Graph record is indistinguishable from the same message read over IMAP. Mail.ReadBasic gives no
``internetMessageHeaders`` on Sent Items (and no In-Reply-To/References at all here): list and
automation markers come only from ``inferenceClassification``.

Events: only the fields below are read; ``body``/``bodyPreview`` that calendar delta sends anyway
are removed from the dict on arrival (:func:`strip_event_body`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from keepwarm.connectors.base import (
    Address,
    Attendee,
    EventMeta,
    EventType,
    MessageMeta,
    ResponseStatus,
)
from keepwarm.connectors.headers import (
    MAX_ADDRESSES,
    MAX_SUBJECT,
    clean_text,
    display_name,
    is_sent_folder,
    kept_subject,
    normalize_address,
    normalize_message_id,
    not_a_person,
    plausible,
    subject_markers,
)

# Fields requested with $select for messages: never body, bodyPreview or uniqueBody.
MESSAGE_FIELDS: tuple[str, ...] = (
    "from",
    "sender",
    "toRecipients",
    "ccRecipients",
    "bccRecipients",
    "replyTo",
    "sentDateTime",
    "receivedDateTime",
    "internetMessageId",
    "conversationId",
    "subject",
    "isDraft",
    "inferenceClassification",
)
BODY_FIELDS = frozenset({"body", "bodyPreview", "uniqueBody"})
# keepwarm's own digests carry Message-IDs in this domain (digests/deliver.py); Mail.ReadBasic
# shows no X-Keepwarm-Digest header, so the Message-ID is how a digest is recognised here.
DIGEST_MESSAGE_ID_DOMAIN = "@keepwarm.invalid"

_RESPONSES: dict[str, ResponseStatus] = {
    "accepted": "accepted",
    "organizer": "accepted",
    "declined": "declined",
    "tentativelyaccepted": "tentative",
    "notresponded": "needsAction",
    "none": "unknown",
}


def graph_time(value: Any, zone: str | None = "UTC") -> datetime | None:
    """Graph timestamps: ``2024-09-03T08:12:30Z`` or ``2016-12-09T20:30:00.0000000`` (+ zone)."""
    if not isinstance(value, str) or not value:
        return None
    v = value.strip().replace("Z", "+00:00")
    if "." in v:  # seven fractional digits are more than fromisoformat takes everywhere
        head, _, tail = v.partition(".")
        digits = "".join(c for c in tail if c.isdigit())
        rest = tail[len(digits) :]
        v = f"{head}.{digits[:6]}{rest}" if digits else f"{head}{rest}"
    try:
        dt = datetime.fromisoformat(v)
    except ValueError:
        return None
    if dt.tzinfo is None:
        if zone and zone.upper() not in ("UTC", "Z"):
            try:
                from zoneinfo import ZoneInfo

                dt = dt.replace(tzinfo=ZoneInfo(zone))
            except (KeyError, ValueError):
                dt = dt.replace(tzinfo=UTC)
        else:
            dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def graph_address(rec: Any) -> Address | None:
    """``{"emailAddress": {"name", "address"}}`` -> Address (normalized) or None."""
    if not isinstance(rec, Mapping):
        return None
    ea = rec.get("emailAddress")
    if not isinstance(ea, Mapping):
        return None
    email = normalize_address(str(ea.get("address") or ""))
    if email is None:
        return None
    return Address(email, display_name(clean_text(str(ea.get("name") or ""))))


def graph_addresses(recs: Any) -> tuple[Address, ...]:
    if not isinstance(recs, list):
        return ()
    seen: dict[str, Address] = {}
    for rec in recs[: MAX_ADDRESSES * 2]:
        a = graph_address(rec)
        if a is not None and a.email not in seen:
            seen[a.email] = a
    return tuple(seen.values())


def message_from_graph(
    item: Mapping[str, Any],
    *,
    account: str,
    folder: str | None,
    keep_subject: bool = True,
    now: datetime | None = None,
) -> MessageMeta | str:
    """A MessageMeta from a Graph message (``$select``-ed fields), or a skip-reason string."""
    provider_id = str(item.get("id") or "")
    if not provider_id:
        return "no id"
    if item.get("isDraft") is True:
        return "draft"
    sender = graph_address(item.get("from")) or graph_address(item.get("sender"))
    to = graph_addresses(item.get("toRecipients"))
    cc = graph_addresses(item.get("ccRecipients"))
    if sender is None and not to and not cc:
        return "no addresses"
    dated = _message_date(item, now)
    if dated is None:
        return "unparseable date"
    date, from_provider = dated
    subject = None
    if isinstance(item.get("subject"), str):  # an action mail's subject is kept whatever
        subject = kept_subject(clean_text(item["subject"])[:MAX_SUBJECT] or None, keep_subject)
    message_id = normalize_message_id(str(item.get("internetMessageId") or ""))
    markers = _message_markers(item, message_id, folder)
    conv = item.get("conversationId")
    return MessageMeta(
        account=account,
        provider_id=provider_id,
        date=date,
        sender=sender,
        to=to,
        cc=cc,
        bcc=graph_addresses(item.get("bccRecipients")),
        reply_to=graph_addresses(item.get("replyTo")),
        message_id=message_id,
        subject=subject,
        thread_hint=str(conv) if conv else None,
        folder=folder,
        markers=tuple(markers),
        date_from_provider=from_provider,
    )


def _message_date(item: Mapping[str, Any], now: datetime | None) -> tuple[datetime, bool] | None:
    """The sent date, else the received one (True: the provider's date), else None."""
    sent = graph_time(item.get("sentDateTime"))
    if sent is not None and plausible(sent, now):
        return sent, False
    received = graph_time(item.get("receivedDateTime"))
    if received is not None and plausible(received, now):
        return received, True
    return None


def _message_markers(
    item: Mapping[str, Any], message_id: str | None, folder: str | None
) -> list[str]:
    """The markers of a Graph message: Outlook's Other inbox, our own digest, a Sent folder, and
    those of its subject."""
    markers: list[str] = []
    if str(item.get("inferenceClassification") or "").lower() == "other":
        markers.append("inference:other")
    if message_id and message_id.lower().endswith(DIGEST_MESSAGE_ID_DOMAIN):
        markers.append("keepwarm-digest")
    if is_sent_folder(folder):
        markers.append("sent-folder")
    raw_subject = item.get("subject")
    markers.extend(subject_markers(raw_subject if isinstance(raw_subject, str) else None))
    return markers


def _graph_attendees(
    raw_attendees: Any, organizer: Address | None, mine: set[str]
) -> tuple[Attendee, ...]:
    """The attendees of a Graph event (at most MAX_ADDRESSES; entries without an address left
    out)."""
    attendees: list[Attendee] = []
    for raw in (raw_attendees if isinstance(raw_attendees, list) else [])[:MAX_ADDRESSES]:
        addr = graph_address(raw)
        if addr is None:
            continue
        kind = str(raw.get("type") or "").lower()
        attendees.append(
            Attendee(
                email=addr.email,
                name=addr.name,
                response=_response(raw.get("status")),
                organizer=organizer is not None and addr.email == organizer.email,
                optional=kind == "optional",
                resource=kind == "resource" or not_a_person(addr.email, addr.name),
                is_self=addr.email in mine,
            )
        )
    return tuple(attendees)


def strip_event_body(item: dict[str, Any]) -> dict[str, Any]:
    """Drop the body fields Graph's calendar delta sends although they were never asked for."""
    for key in BODY_FIELDS:
        item.pop(key, None)
    return item


def _response(value: Any) -> ResponseStatus:
    if isinstance(value, Mapping):
        value = value.get("response")
    return _RESPONSES.get(str(value or "").lower(), "unknown")


def event_from_graph(
    item: Mapping[str, Any],
    *,
    account: str,
    me: Iterable[str] = (),
    keep_title: bool = True,
) -> EventMeta | str:
    """An EventMeta from a Graph event (body already stripped), or a skip-reason string."""
    provider_id = str(item.get("id") or "")
    if not provider_id:
        return "no id"
    start = _graph_when(item.get("start"))
    end = _graph_when(item.get("end")) or start
    if start is None or end is None:
        return "no start time"
    organizer = graph_address(item.get("organizer"))
    is_organizer = item.get("isOrganizer") is True
    attendees = _graph_attendees(item.get("attendees"), organizer, set(me))
    my_response: ResponseStatus = (
        "accepted" if is_organizer else _response(item.get("responseStatus"))
    )
    show_as = str(item.get("showAs") or "").lower()
    event_type: EventType = "outOfOffice" if show_as == "oof" else "default"
    etype = str(item.get("type") or "").lower()
    ical = item.get("iCalUId")
    return EventMeta(
        account=account,
        provider_id=provider_id,
        start=start,
        end=max(end, start),
        all_day=item.get("isAllDay") is True,
        ical_uid=str(ical) if ical else None,
        organizer=organizer,
        attendees=attendees,
        my_response=my_response,
        status="cancelled" if item.get("isCancelled") is True else "confirmed",
        recurring=etype in ("occurrence", "exception", "seriesmaster"),
        event_type=event_type,
        title=_graph_title(item, keep_title),
    )


def _graph_when(value: Any) -> datetime | None:
    """A Graph ``dateTimeTimeZone`` (``{"dateTime": ..., "timeZone": ...}``) as UTC."""
    if not isinstance(value, Mapping):
        return None
    return graph_time(value.get("dateTime"), value.get("timeZone"))


def _graph_title(item: Mapping[str, Any], keep_title: bool) -> str | None:
    if keep_title and isinstance(item.get("subject"), str):
        return clean_text(item["subject"])[:MAX_SUBJECT] or None
    return None
