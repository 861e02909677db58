"""Outlook contacts through Microsoft Graph (``contacts = true`` on a ``microsoft`` account, which
adds the ``Contacts.Read`` permission; off by default).

The default Contacts folder (well-known name ``contacts``) and the user's own contact folders
(``/me/contactFolders``) are each read by ``contacts/delta``: the first round lists every
contact, later rounds from the delta link only what changed, removed contacts flagged
``@removed``. A delta state Graph no longer knows (410) means one full round of that folder; the
contacts it does not list again are removed (the cursor keeps each folder's contact ids for
that). What is kept: the name, the email addresses, the birthday, the company and job title, and
the Outlook categories as groups. Never phones, postal addresses or personal notes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from keepwarm.connectors.base import ContactMeta, Deletion, TransientError
from keepwarm.connectors.headers import clean_text, normalize_address
from keepwarm.connectors.microsoft.graph import DeltaExpired, GraphClient, quote_id
from keepwarm.connectors.vcard import NO_EMAIL, date_value

log = logging.getLogger(__name__)

DEFAULT_FOLDER = "contacts"  # the well-known name of the default Contacts folder
FIELDS = "displayName,givenName,surname,emailAddresses,birthday,companyName,jobTitle,categories"
MAX_RESTARTS = 3


@dataclass
class ContactsPage:
    contacts: list[ContactMeta] = field(default_factory=list)
    deletions: list[Deletion] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)
    seen: int = 0


def _graph_emails(item: dict[str, Any]) -> tuple[str, ...]:
    """A Graph contact's valid addresses, normalised, each once."""
    return tuple(
        dict.fromkeys(
            e
            for e in (
                normalize_address(str((x or {}).get("address") or ""))
                for x in item.get("emailAddresses") or []
                if isinstance(x, dict)
            )
            if e
        )
    )


def _graph_name(item: dict[str, Any]) -> str:
    """The display name, else given name and surname."""
    name = str(item.get("displayName") or "").strip()
    if not name:
        name = " ".join(str(item.get(k) or "").strip() for k in ("givenName", "surname")).strip()
    return name


def contact_from_graph(item: dict[str, Any], account: str) -> ContactMeta | str:
    emails = _graph_emails(item)
    if not emails:
        return NO_EMAIL
    name = _graph_name(item)
    birthday = date_value(str(item.get("birthday") or "")[:10])
    return ContactMeta(
        account=account,
        provider_id=f"contact/{item['id']}",
        name=clean_text(name)[:200],
        emails=emails,
        birthday=birthday,
        organisation=clean_text(str(item.get("companyName") or "")).strip()[:200] or None,
        title=clean_text(str(item.get("jobTitle") or "")).strip()[:200] or None,
        groups=tuple(
            dict.fromkeys(clean_text(str(c))[:100] for c in item.get("categories") or [] if c)
        ),
    )


class ContactsSync:
    def __init__(self, client: GraphClient, *, account: str, page_size: int = 100) -> None:
        self.client = client
        self.account = account
        self.page_size = page_size

    @property
    def headers(self) -> dict[str, str]:
        return {"Prefer": f"odata.maxpagesize={self.page_size}"}

    def _folders(self) -> list[str]:
        out = [DEFAULT_FOLDER]
        link: str | None = "me/contactFolders?$select=id,displayName"
        while link:
            data = self.client.get(link)
            out += [
                str(f["id"]) for f in data.get("value") or [] if isinstance(f, dict) and f.get("id")
            ]
            link = data.get("@odata.nextLink")
        return out

    def run(self, state: dict[str, Any]) -> Iterator[ContactsPage]:
        folders = state.setdefault("folders", {})
        present = self._folders()
        for fid in [f for f in folders if f not in present]:  # a folder that is gone
            page = ContactsPage()
            page.deletions = [
                Deletion(self.account, f"contact/{cid}", "contact")
                for cid in folders.pop(fid).get("ids", [])
            ]
            yield page
        for fid in present:
            yield from self._round(folders.setdefault(fid, {}), fid)

    def _initial(self, fid: str) -> str:
        return f"me/contactFolders/{quote_id(fid)}/contacts/delta?$select={FIELDS}"

    def _round(self, fstate: dict[str, Any], fid: str) -> Iterator[ContactsPage]:
        link = fstate.get("next") or fstate.get("link") or self._initial(fid)
        full = not fstate.get("link")
        known: set[str] = set(fstate.get("ids") or [])
        seen: set[str] = set(fstate.get("seen") or []) if full else set()
        restarts = 0
        while True:
            try:
                data = self.client.get(link, headers=self.headers)
            except DeltaExpired:
                restarts += 1
                if restarts > MAX_RESTARTS:
                    raise TransientError(
                        "Microsoft Graph keeps expiring the contacts sync state; will retry later"
                    ) from None
                log.info("account %s: contacts delta state expired; reading again", self.account)
                link, full, seen = self._initial(fid), True, set()
                continue
            page = self._page(data.get("value") or [], known, seen)
            nxt, delta = data.get("@odata.nextLink"), data.get("@odata.deltaLink")
            if nxt:  # the round goes on: a full round remembers what it has seen so far
                fstate["link"] = None if full else fstate.get("link")
                fstate["next"] = str(nxt)
                if full:
                    fstate["seen"] = sorted(seen)
            else:
                known = self._end_round(fstate, page, full, known, seen, delta)
            fstate["ids"] = sorted(known)
            yield page
            if not nxt:
                return
            link = str(nxt)

    def _page(self, items: list[Any], known: set[str], seen: set[str]) -> ContactsPage:
        """One page of the delta: contacts, removals and skips; ``known`` and ``seen`` follow."""
        page = ContactsPage()
        for item in items:
            if not isinstance(item, dict) or not item.get("id"):
                continue
            cid = str(item["id"])
            page.seen += 1
            if "@removed" in item:
                known.discard(cid)
                page.deletions.append(Deletion(self.account, f"contact/{cid}", "contact"))
                continue
            c = contact_from_graph(item, self.account)
            known.add(cid)
            seen.add(cid)
            if isinstance(c, str):
                page.skipped[c] = page.skipped.get(c, 0) + 1
            else:
                page.contacts.append(c)
        return page

    def _end_round(
        self,
        fstate: dict[str, Any],
        page: ContactsPage,
        full: bool,
        known: set[str],
        seen: set[str],
        delta: Any,
    ) -> set[str]:
        """The last page of a round: after a full round, what it did not list is gone; the
        folder keeps the delta link for the next round. Returns the contacts now known."""
        if full:
            page.deletions += [
                Deletion(self.account, f"contact/{cid}", "contact") for cid in sorted(known - seen)
            ]
            known = set(seen)
        fstate.pop("next", None)
        fstate.pop("seen", None)
        fstate["link"] = str(delta or "") or None
        return known
