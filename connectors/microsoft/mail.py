"""Outlook mail over Graph delta queries: one delta round per folder, resumable after every page.

State (kept in the connector cursor, JSON)::

    {"skip": [ids of the well-known folders in SKIPPED_WELL_KNOWN] | null,
     "folders": {folder_id: {"path": "Inbox/Projects", "link": nextLink | deltaLink | null}}}

- Every folder that holds correspondence is synced: the whole folder tree, minus the well-known
  folders in :data:`SKIPPED_WELL_KNOWN` and everything below them.
- A page is one batch; its cursor holds the page's ``@odata.nextLink`` (mid-round) or
  ``@odata.deltaLink`` (round done), so a killed sync resumes at the page after the last commit.
- ``@removed`` is not taken at its word: with immutable ids a message moved from folder A to
  folder B keeps its id, and A's delta reports it removed, possibly *after* B's delta reported it
  added. Removed ids are therefore looked up (``$batch``, 20 per call): still in a synced folder ->
  re-stated there (one interaction, folder updated); in Junk -> a ``spam`` Deletion (removed);
  gone, or in Deleted Items -> a ``deleted`` Deletion (the store keeps it as history).
- 410 / ``SyncStateNotFound`` restarts that folder's round from the initial request; the store's
  dedupe (same provider id) makes the replay add nothing twice.
- New folders start a round; renamed folders keep their id (the new path is used from then on);
  folders that disappear (deleted: moved under Deleted Items) give ``vanished`` Deletions for
  their messages (kept as history) and a notice for the user.
- Backfill: messages received before ``now - backfill`` are ignored on arrival. The window is
  applied client-side rather than with ``$filter`` because Graph caps a filtered message delta at
  5,000 messages, which would silently truncate a large mailbox.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from keepwarm.connectors.base import Deletion, MessageMeta, TransientError, kept_notice
from keepwarm.connectors.microsoft.graph import (
    DeltaExpired,
    GraphClient,
    NotFound,
    quote_id,
)
from keepwarm.connectors.microsoft.records import MESSAGE_FIELDS, graph_time, message_from_graph

log = logging.getLogger(__name__)

# Well-known folders (and their subtrees) that hold no correspondence to learn from.
SKIPPED_WELL_KNOWN = (
    "junkemail",
    "deleteditems",
    "drafts",
    "outbox",
    "conversationhistory",
    "syncissues",
    "searchfolders",
    "recoverableitemsdeletions",
)
FOLDER_FIELDS = "id,displayName,parentFolderId,childFolderCount,totalItemCount"
PAGE_SIZE = 500
LOOKAHEAD = (
    3  # folders whose first delta page is requested ahead (a no-change sync is mostly these)
)
MAX_RESTARTS = 2
IMMUTABLE = 'IdType="ImmutableId"'


@dataclass
class Folder:
    id: str
    path: str
    total: int = 0


@dataclass
class Page:
    """What one delta page turned into."""

    folder: str
    messages: list[MessageMeta] = field(default_factory=list)
    deletions: list[Deletion] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)
    seen: int = 0  # items looked at (for progress)
    notices: list[str] = field(default_factory=list)  # for the user: a folder that vanished


class MailSync:
    """Drives the per-folder delta rounds; ``state`` is mutated in place and belongs to the cursor."""

    def __init__(
        self,
        client: GraphClient,
        *,
        account: str,
        keep_subjects: bool,
        cutoff: datetime,
        page_size: int = PAGE_SIZE,
    ) -> None:
        self.client = client
        self.account = account
        self.keep_subjects = keep_subjects
        self.cutoff = cutoff
        self.page_size = page_size
        self.synced: dict[str, Folder] = {}
        self.total = 0  # estimated messages still to read in first rounds (set by run)
        self._junk: str | None = None  # the Junk Email folder's id, looked up when needed

    @property
    def prefer(self) -> dict[str, str]:
        return {"Prefer": f"odata.maxpagesize={self.page_size}, {IMMUTABLE}"}

    # -- folders -------------------------------------------------------------------------------
    def skipped_ids(self, state: dict[str, Any]) -> set[str]:
        if state.get("skip") is None:
            ids = []
            for name in SKIPPED_WELL_KNOWN:
                try:
                    found = self.client.get(
                        f"me/mailFolders/{name}", {"$select": "id"}, {"Prefer": IMMUTABLE}
                    )
                    ids.append(str(found["id"]))
                except (NotFound, KeyError):
                    continue
            state["skip"] = ids
        return set(state["skip"])

    def list_folders(self, skip: set[str]) -> dict[str, Folder]:
        """Every folder under the mailbox root except the skipped ones and their subtrees."""
        out: dict[str, Folder] = {}
        todo: list[tuple[str, str]] = [("me/mailFolders", "")]
        while todo:
            url, prefix = todo.pop(0)
            params: dict[str, str] | None = {"$top": "250", "$select": FOLDER_FIELDS}
            while url:
                try:
                    page = self.client.get(url, params, {"Prefer": IMMUTABLE})
                except NotFound:  # deleted while we were listing: its parent's next round sees it
                    break
                params = None  # nextLinks carry the query
                for f in page.get("value") or []:
                    fid = str(f.get("id") or "")
                    if (
                        not fid
                        or fid in skip
                        or "searchfolder" in str(f.get("@odata.type", "")).lower()
                    ):
                        continue  # search folders only show messages that live elsewhere
                    path = f"{prefix}{f.get('displayName') or '?'}"
                    out[fid] = Folder(fid, path, int(f.get("totalItemCount") or 0))
                    if int(f.get("childFolderCount") or 0) > 0:
                        todo.append((f"me/mailFolders/{quote_id(fid)}/childFolders", f"{path}/"))
                url = str(page.get("@odata.nextLink") or "")
        return out

    # -- the sync --------------------------------------------------------------------------------
    def run(self, state: dict[str, Any]) -> Iterator[Page]:
        """Yield one Page per delta page (and per vanished-folder cleanup); ``state`` follows."""
        skip = self.skipped_ids(state)
        listed = self.list_folders(skip)
        folders: dict[str, Any] = state.setdefault("folders", {})
        self.synced = listed
        self.total = self._initial_total(folders)
        for fid in [f for f in folders if f not in listed]:
            yield from self._vanished(fid, folders)
        for fid, f in listed.items():
            st = folders.setdefault(fid, {"path": f.path, "link": None})
            if st.get("path") != f.path:
                log.info("account %s: a mail folder was renamed or moved", self.account)
                st["path"] = f.path
        order = sorted(listed, key=lambda i: _folder_order(listed[i].path))
        pool = ThreadPoolExecutor(max_workers=LOOKAHEAD, thread_name_prefix="graph-folders")
        firsts: dict[str, Future[dict[str, Any]]] = {}
        try:
            for i, fid in enumerate(order):
                for nxt in order[i : i + LOOKAHEAD]:  # this folder's and the next ones' first pages
                    if nxt not in firsts:
                        link = folders[nxt].get("link") or self._initial_url(nxt)
                        firsts[nxt] = pool.submit(self.client.get, link, None, self.prefer)
                yield from self._folder(fid, folders[fid], firsts.pop(fid))
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    def _initial_total(self, folders: dict[str, Any]) -> int:
        """Messages in folders whose first round has not completed (for the progress bar)."""
        total = 0
        for fid, f in self.synced.items():
            link = (folders.get(fid) or {}).get("link")
            if not link or "deltatoken" not in str(link).lower():
                total += f.total
        return total

    def _initial_url(self, fid: str) -> str:
        return f"me/mailFolders/{quote_id(fid)}/messages/delta?$select={','.join(MESSAGE_FIELDS)}"

    def _folder(
        self, fid: str, st: dict[str, Any], first: Future[dict[str, Any]] | None = None
    ) -> Iterator[Page]:
        """One folder's delta round. The next page is fetched while the caller stores this one."""
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="graph-prefetch")
        try:
            yield from self._folder_pages(fid, st, pool, first)
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    def _folder_pages(
        self,
        fid: str,
        st: dict[str, Any],
        pool: ThreadPoolExecutor,
        first: Future[dict[str, Any]] | None,
    ) -> Iterator[Page]:
        link = st.get("link") or self._initial_url(fid)
        restarts = 0
        ahead = first  # the first page may already be on its way
        while True:
            try:
                data = ahead.result() if ahead else self.client.get(link, headers=self.prefer)
            except DeltaExpired:
                restarts += 1
                if restarts > MAX_RESTARTS:
                    raise TransientError(
                        "Microsoft Graph keeps expiring a mail folder's sync state; will retry later"
                    ) from None
                log.info("account %s: a folder's delta state expired; resyncing it", self.account)
                st["link"] = None
                link, ahead = self._initial_url(fid), None
                continue
            except NotFound:
                log.info("account %s: a mail folder disappeared during sync", self.account)
                return
            ahead = None
            page = self._page(st["path"], data.get("value") or [])
            nxt, delta = data.get("@odata.nextLink"), data.get("@odata.deltaLink")
            st["link"] = str(nxt or delta or "") or None
            if nxt:
                link = str(nxt)
                ahead = pool.submit(self.client.get, link, None, self.prefer)
            yield page
            if not nxt:
                return

    def _page(self, path: str, items: list[Any]) -> Page:
        page = Page(path)
        removed: list[str] = []
        for item in items:
            if not isinstance(item, dict) or not item.get("id"):
                continue
            page.seen += 1
            if "@removed" in item:
                removed.append(str(item["id"]))
                continue
            self._add(page, item, path)
        if removed:
            self._resolve_removed(page, removed)
        return page

    def _add(self, page: Page, item: dict[str, Any], path: str) -> None:
        if "sentDateTime" not in item and "receivedDateTime" not in item:
            return  # a partial change notice for a message already stored
        received = graph_time(item.get("receivedDateTime")) or graph_time(item.get("sentDateTime"))
        if received is not None and received < self.cutoff:
            return  # outside the backfill window
        rec = message_from_graph(
            item, account=self.account, folder=path, keep_subject=self.keep_subjects
        )
        if isinstance(rec, str):
            if rec != "draft":
                page.skipped[rec] = page.skipped.get(rec, 0) + 1
            return
        page.messages.append(rec)

    def _resolve_removed(self, page: Page, removed: list[str]) -> None:
        """Look up ids a folder reported removed: moved to another synced folder, or gone."""
        select = ",".join((*MESSAGE_FIELDS, "parentFolderId"))
        urls = {
            mid: f"/me/messages/{quote_id(mid)}?$select={select}" for mid in dict.fromkeys(removed)
        }
        found = self.client.batch_get(urls, {"Prefer": IMMUTABLE})
        for mid, (status, body) in found.items():
            parent = str(body.get("parentFolderId") or "")
            if status == 200 and parent in self.synced:
                self._add(page, body, self.synced[parent].path)
            elif status == 200 and parent == self._junk_id():
                page.deletions.append(Deletion(self.account, mid, "message", reason="spam"))
            elif status in (200, 404, 410):
                page.deletions.append(Deletion(self.account, mid, "message"))
            else:
                raise TransientError(
                    f"Microsoft Graph could not say where a message went (HTTP {status}); "
                    "will retry later"
                )

    def _junk_id(self) -> str:
        if self._junk is None:
            try:
                found = self.client.get(
                    "me/mailFolders/junkemail", {"$select": "id"}, {"Prefer": IMMUTABLE}
                )
                self._junk = str(found.get("id") or "")
            except NotFound:
                self._junk = ""
        return self._junk

    def _vanished(self, fid: str, folders: dict[str, Any]) -> Iterator[Page]:
        """A synced folder left the tree (deleted, or moved under Deleted Items): its mail stays
        in the history (``vanished``), and the user is told."""
        path = str(folders[fid].get("path") or "")
        page = Page(path)
        url = f"me/mailFolders/{quote_id(fid)}/messages"
        params: dict[str, str] | None = {"$select": "id", "$top": "1000"}
        try:
            while url:
                data = self.client.get(url, params, {"Prefer": IMMUTABLE})
                params = None
                for item in data.get("value") or []:
                    if isinstance(item, dict) and item.get("id"):
                        page.deletions.append(
                            Deletion(self.account, str(item["id"]), "message", reason="vanished")
                        )
                url = str(data.get("@odata.nextLink") or "")
            page.notices.append(
                kept_notice(f"folder {path} is gone from the mailbox", len(page.deletions))
            )
        except NotFound:
            page.notices.append(kept_notice(f"folder {path} was deleted for good", None))
        del folders[fid]
        yield page


def _folder_order(path: str) -> tuple[int, str]:
    first = path.split("/", 1)[0].lower()
    rank = {"inbox": 0, "sent items": 1, "archive": 2}.get(first, 3)
    return rank, path.lower()
