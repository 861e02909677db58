"""Google contacts through the People API (``kind = "gcontacts"``, scope ``contacts.readonly``).

Only an account the user adds reads contacts (its own consent, or a token file shared with the
gmail/gcal account so one consent covers both). Each sync lists the contact groups (one request:
their names become the contacts' groups), then ``people.connections.list``: the whole list with
``requestSyncToken`` the first time, and from the sync token after that, which returns only the
contacts changed since (deleted ones flagged ``metadata.deleted``). Google keeps sync tokens for
seven days; an expired one (400 ``FAILED_PRECONDITION``) means one full listing again, whose
first batch replaces the account's contacts, so nothing is lost or duplicated.

What is kept of a person: the display name, the email addresses (primary first), the birthday,
an event of type ``anniversary``, the current organisation and title, the user's groups. Never
phone numbers, postal addresses, photos or notes.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from functools import partial
from typing import Any

from googleapiclient.errors import HttpError

from keepwarm.connectors.base import Batch, ContactMeta, Deletion, Progress
from keepwarm.connectors.google.client import GoogleClient
from keepwarm.connectors.headers import clean_text, normalize_address
from keepwarm.connectors.vcard import NO_EMAIL

log = logging.getLogger(__name__)

KIND = "gcontacts"
CURSOR_VERSION = 1
PAGE_SIZE = 1000  # the People API's maximum
PERSON_FIELDS = "names,emailAddresses,birthdays,events,organizations,memberships,metadata"


def _date(d: Any) -> str | None:
    """``YYYY-MM-DD`` / ``--MM-DD`` of a People API date ({year?, month, day})."""
    if not isinstance(d, dict):
        return None
    try:
        month, day = int(d.get("month") or 0), int(d.get("day") or 0)
        year = int(d.get("year") or 0)
    except (TypeError, ValueError):
        return None
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return None
    return f"{year:04d}-{month:02d}-{day:02d}" if year else f"--{month:02d}-{day:02d}"


def _primary_first(items: Any) -> list[dict[str, Any]]:
    items = [i for i in (items or []) if isinstance(i, dict)]
    return sorted(items, key=lambda i: not (i.get("metadata") or {}).get("primary"))


def to_contact(person: dict[str, Any], account: str, groups: dict[str, str]) -> ContactMeta | str:
    """The contact of one People API person, or the reason it is skipped."""
    emails = tuple(
        dict.fromkeys(
            e
            for e in (
                normalize_address(str(x.get("value") or ""))
                for x in _primary_first(person.get("emailAddresses"))
            )
            if e
        )
    )
    if not emails:
        return NO_EMAIL
    names = _primary_first(person.get("names"))
    name = clean_text(str(names[0].get("displayName") or "")).strip()[:200] if names else ""
    org = _current_organisation(person)
    return ContactMeta(
        account=account,
        provider_id=str(person.get("resourceName") or ""),
        name=name,
        emails=emails,
        birthday=_birthday(person),
        anniversary=_anniversary(person),
        organisation=clean_text(str(org.get("name") or "")).strip()[:200] or None,
        title=clean_text(str(org.get("title") or "")).strip()[:200] or None,
        groups=_group_names(person, groups),
    )


def _birthday(person: dict[str, Any]) -> str | None:
    """The first valid birthday, the primary one first."""
    return next(
        (b for b in (_date(x.get("date")) for x in _primary_first(person.get("birthdays"))) if b),
        None,
    )


def _anniversary(person: dict[str, Any]) -> str | None:
    """The date of the first event of type anniversary (None when it has no valid date)."""
    return next(
        (
            _date(e.get("date"))
            for e in person.get("events") or []
            if isinstance(e, dict) and str(e.get("type", "")).lower() == "anniversary"
        ),
        None,
    )


def _current_organisation(person: dict[str, Any]) -> dict[str, Any]:
    """The current organisation, else the first one, else ``{}``."""
    orgs = [o for o in person.get("organizations") or [] if isinstance(o, dict)]
    return next((o for o in orgs if o.get("current")), orgs[0] if orgs else {})


def _group_names(person: dict[str, Any], groups: dict[str, str]) -> tuple[str, ...]:
    """The names of the user's own groups the person belongs to, each once."""
    member_of = [
        groups.get(str((m.get("contactGroupMembership") or {}).get("contactGroupResourceName")))
        for m in person.get("memberships") or []
        if isinstance(m, dict)
    ]
    return tuple(dict.fromkeys(g for g in member_of if g))


class GoogleContactsConnector:
    """The user's Google contacts, as a :class:`Connector` of contacts."""

    kind = KIND

    def __init__(self, account: str, client: GoogleClient, page_size: int = PAGE_SIZE) -> None:
        self.account = account
        self.client = client
        self.page_size = page_size

    @property
    def api(self) -> Any:
        return self.client.service("people", "v1")

    def sync(self, cursor: str | None) -> Iterator[Batch]:
        state = _load(cursor)
        try:
            groups = self._groups()
            token = state.get("token")
            if token:
                try:
                    yield from self._pages(state, groups, sync_token=str(token))
                    return
                except _Expired:
                    log.warning(
                        "account %s: the contacts sync token expired; listing again", self.account
                    )
            yield from self._pages({"page": state.get("page")}, groups, sync_token=None)
        finally:
            self.client.close()

    def _groups(self) -> dict[str, str]:
        """resourceName -> name of the user's own contact groups (system groups left out)."""
        out: dict[str, str] = {}
        page: str | None = None
        while True:
            kwargs: dict[str, Any] = {"pageSize": 1000, "groupFields": "name,groupType"}
            if page:
                kwargs["pageToken"] = page
            resp = self.client.execute(
                partial(self.api.contactGroups().list, **kwargs), 1, "listing contact groups"
            )
            for g in resp.get("contactGroups") or []:
                if isinstance(g, dict) and g.get("groupType") == "USER_CONTACT_GROUP":
                    out[str(g.get("resourceName"))] = clean_text(str(g.get("name") or ""))[:100]
            page = resp.get("nextPageToken")
            if not page:
                return out

    def _pages(
        self, state: dict[str, Any], groups: dict[str, str], sync_token: str | None
    ) -> Iterator[Batch]:
        """A full listing (``sync_token`` None: the first page replaces every stored contact of
        the account; a listing cut short resumes at its page), or the changes since the token."""
        page: str | None = state.get("page") if sync_token is None else None
        first = page is None
        done = 0
        while True:
            resp = self._connections(sync_token, page)
            batch = Batch(reset=sync_token is None and first)
            first = False
            skipped = self._fill(batch, resp.get("connections") or [], groups)
            done += len(resp.get("connections") or [])
            page = resp.get("nextPageToken")
            if page:
                cursor = {"token": sync_token, "page": page} if sync_token else {"page": page}
            else:
                cursor = {"token": resp.get("nextSyncToken")}
            batch.cursor = _dump(cursor)
            batch.progress = Progress(done, resp.get("totalPeople") or None, "contacts")
            batch.skipped = skipped
            yield batch
            if not page:
                return

    def _connections(self, sync_token: str | None, page: str | None) -> dict[str, Any]:
        """One page of the user's connections (``_Expired`` for an expired sync token or a
        stale page of a listing)."""
        kwargs: dict[str, Any] = {
            "resourceName": "people/me",
            "personFields": PERSON_FIELDS,
            "pageSize": self.page_size,
            "requestSyncToken": True,
        }
        if sync_token:
            kwargs["syncToken"] = sync_token
        if page:
            kwargs["pageToken"] = page
        try:
            resp: dict[str, Any] = self.client.execute(
                partial(self.api.people().connections().list, **kwargs),
                1,
                "listing contacts",
                expect=(400, 410),
            )
        except HttpError as exc:
            if sync_token or page:  # an expired sync token, or a stale page of a listing
                raise _Expired() from None
            raise self.client.refusal(exc, "listing contacts") from None
        return resp

    def _fill(self, batch: Batch, people: list[Any], groups: dict[str, str]) -> dict[str, int]:
        """Add a page's contacts and deletions to ``batch``; the skipped ones, by reason."""
        skipped: dict[str, int] = {}
        for person in people:
            if not isinstance(person, dict) or not person.get("resourceName"):
                continue
            if (person.get("metadata") or {}).get("deleted"):
                batch.deletions.append(
                    Deletion(self.account, str(person["resourceName"]), "contact")
                )
                continue
            c = to_contact(person, self.account, groups)
            if isinstance(c, str):
                skipped[c] = skipped.get(c, 0) + 1
            else:
                batch.contacts.append(c)
        return skipped


class _Expired(Exception):
    pass


def _load(cursor: str | None) -> dict[str, Any]:
    if not cursor:
        return {}
    try:
        state = json.loads(cursor)
    except ValueError:
        return {}
    return state if isinstance(state, dict) and state.get("v") == CURSOR_VERSION else {}


def _dump(state: dict[str, Any]) -> str:
    return json.dumps({"v": CURSOR_VERSION, **state}, separators=(",", ":"), sort_keys=True)
