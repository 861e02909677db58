"""CardDAV address books (``kind = "carddav"``): Fastmail, iCloud, Nextcloud, Radicale...

The same server set-up, discovery and incremental sync as CalDAV (:mod:`.state`), over the
``addressbook-home-set``: one request when nothing changed, the sync-collection report (or ETags)
when something did, ``addressbook-multiget`` for the changed cards. Each card is read by the
vCard parsing the files share (:mod:`keepwarm.connectors.vcard`); a card removed on the server,
or an address book that is gone or left out of ``addressbooks = [...]``, removes its contacts
(an address book has no history).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

from keepwarm.connectors.base import Batch, Deletion, DeletionReason
from keepwarm.connectors.dav.session import CARDDAV, DavSession, DavSettings
from keepwarm.connectors.dav.state import CollectionSync, DavCursor, Member
from keepwarm.connectors.local.common import Skips
from keepwarm.connectors.vcard import contacts_of

KIND = "carddav"
DEFAULT_BATCH = 500


class CardDavConnector:
    """Every chosen address book of one CardDAV account, as a :class:`Connector` of contacts."""

    kind = KIND

    def __init__(
        self, account: str, settings: DavSettings, *, batch_size: int = DEFAULT_BATCH
    ) -> None:
        self.account = account
        self.session = DavSession(settings, CARDDAV)
        self.batch_size = batch_size

    def sync(self, cursor: str | None) -> Iterator[Batch]:
        state = DavCursor.load(KIND, cursor)
        day = datetime.now(UTC).date().isoformat()
        reader = _ContactReader(self.account)
        yield from CollectionSync(
            self.account, self.session, state, reader, self.batch_size, day
        ).run()


class _ContactReader:
    noun = "contact"
    keeps_history = False

    def __init__(self, account: str) -> None:
        self.account = account

    def reread(self, member: Member) -> bool:
        return False

    def read(
        self, href: str, etag: str, data: str, old: Member | None, skips: Skips, batch: Batch
    ) -> Member:
        contacts, skipped = contacts_of(data, self.account, href)
        for reason, n in skipped.items():
            skips.add(reason, n)
        ids = [c.provider_id for c in contacts]
        if old is not None:
            batch.deletions += [
                Deletion(self.account, pid, "contact") for pid in old.ids if pid not in set(ids)
            ]
        batch.contacts += contacts
        return Member(etag, ids)

    def forget(self, member: Member, batch: Batch, reason: DeletionReason) -> None:
        batch.deletions += [Deletion(self.account, pid, "contact") for pid in member.ids]


__all__ = ["KIND", "CardDavConnector"]
