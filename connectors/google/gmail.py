"""Gmail metadata through the Gmail API under the ``gmail.metadata`` scope (headers and labels only).

Full sync: read the profile's ``historyId`` first (so nothing that changes during the listing is
lost), list every message id newest first without ``q`` (forbidden under gmail.metadata) and
without ``labelIds`` (they AND, and archived mail has no label worth filtering on), fetch
``format=metadata`` with the header allow-list in batches of at most 50, and stop paging after a
whole page of messages older than the backfill window: the list is *not* reliably newest-first
(an imported old message can be listed among this week's mail), so one old message proves
nothing. Old messages that were read are counted in ``skipped`` (``older than the backfill
window``). Spam and trash are not listed; drafts and chats are
dropped client-side. A cursor is yielded every few hundred messages, so a killed backfill resumes
at the page and offset it reached.

Incremental sync: ``history.list`` from the stored ``historyId``, following ``nextPageToken`` even
over pages that carry no records (Gmail sends those); the stored id advances to a page's last
record, and to the mailbox's current id only after the last page. Added messages are fetched,
deletions and moves to spam/trash become :class:`Deletion`, moves out of spam/trash are fetched
again. A 404 means the history is too old: :class:`CursorExpired` (the daemon resyncs in full; the
store dedupes). No change costs one call (2 units).
"""

from __future__ import annotations

import base64
import json
import logging
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from googleapiclient.errors import HttpError

from keepwarm.connectors.base import Batch, CursorExpired, Deletion, MessageMeta, Progress
from keepwarm.connectors.google.client import GoogleClient, PartResult
from keepwarm.connectors.google.quota import error_reason, give_up
from keepwarm.connectors.headers import WANTED_HEADERS, message_from_headers

log = logging.getLogger(__name__)

EXCLUDED_LABELS = frozenset({"SPAM", "TRASH", "DRAFT", "CHAT"})
CATEGORY_MARKERS = {
    "CATEGORY_PROMOTIONS": "category:promotions",
    "CATEGORY_SOCIAL": "category:social",
    "CATEGORY_UPDATES": "category:updates",
    "CATEGORY_FORUMS": "category:forums",
}
HISTORY_TYPES = ["messageAdded", "messageDeleted", "labelAdded", "labelRemoved"]
UNITS = {"get": 5, "list": 5, "history": 2, "profile": 1, "send": 100}
MAX_BATCH = 50  # Google: "batches larger than 50 requests are not recommended"
CURSOR_VERSION = 1
TOO_OLD = "older than the backfill window"


@dataclass
class GmailSettings:
    backfill: timedelta = timedelta(days=3 * 365)
    store_subjects: bool = True
    page_size: int = 500  # messages.list / history.list maxResults (max 500)
    batch_size: int = MAX_BATCH  # parts per batch request
    records_per_batch: int = 250  # records per yielded Batch (one committed transaction)
    max_concurrency: int = 10
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))


class BatchWindow:
    """How many ``messages.get`` parts may be in flight at once, learnt from Gmail's answers.

    Gmail refuses parts over an undocumented per-user concurrency limit (429 "Too many concurrent
    requests for user", seen at 50-100 parts and sometimes above 20). The window starts small,
    doubles while every part is answered, then grows by one part per clean batch above the size
    that was last refused; a refusal halves it. Batches are at most ``batch_size`` parts.
    """

    START = 10

    def __init__(self, batch_size: int, ceiling: int | None = None) -> None:
        self.batch_size = max(1, batch_size)
        self.ceiling = ceiling or 2 * self.batch_size
        self.size = float(min(self.START, self.ceiling))
        self.threshold = float(self.ceiling)
        self.refusals = 0

    def batch(self) -> int:
        """Half the window, so that one batch can be on its way while another is answered."""
        return max(1, min(-(-int(self.size) // 2), self.batch_size))

    def clean(self) -> None:
        step = self.size if self.size < self.threshold else 1.0
        self.size = min(float(self.ceiling), self.size + step)

    def refused(self) -> None:
        self.refusals += 1
        self.threshold = max(1.0, self.size / 2)
        self.size = self.threshold


@dataclass
class Fetched:
    messages: list[MessageMeta] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)
    excluded: list[str] = field(default_factory=list)  # now in the trash, a draft or a chat
    spam: list[str] = field(default_factory=list)  # now marked as spam
    skipped: Counter[str] = field(default_factory=Counter)
    internal_ms: dict[str, int] = field(default_factory=dict)


def spellings(name: str) -> list[str]:
    """The spellings of a header name seen in real mail: ``Message-ID``, ``Message-Id``,
    ``Message-id``, ``message-id``; ``Cc``, ``CC``, ``cc``; ``List-Id``, ``List-ID``..."""
    parts = name.split("-")
    forms = [
        name,
        "-".join(p.capitalize() for p in parts),
        "-".join([parts[0].capitalize(), *(p.lower() for p in parts[1:])]),
        "-".join(p.upper() if p.lower() in ("id", "cc") else p.capitalize() for p in parts),
        name.lower(),
    ]
    return list(dict.fromkeys(forms))


# metadataHeaders for messages.get: whether Gmail matches them case-insensitively is not
# documented, so every common spelling is asked for; headers_of() reads them case-insensitively.
METADATA_HEADERS: tuple[str, ...] = tuple(h for name in WANTED_HEADERS for h in spellings(name))


# -- pure transformation ----------------------------------------------------------------------------
def headers_of(message: dict[str, Any]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for h in (message.get("payload") or {}).get("headers") or []:
        name, value = h.get("name"), h.get("value")
        if isinstance(name, str) and isinstance(value, str):
            out.setdefault(name.lower(), []).append(value)
    return out


def folder_of(labels: Sequence[str]) -> str:
    if "SENT" in labels:
        return "SENT"
    return "INBOX" if "INBOX" in labels else "ARCHIVE"


def to_record(
    message: dict[str, Any], *, account: str, store_subjects: bool, now: datetime
) -> MessageMeta | str:
    """A Gmail ``format=metadata`` message -> MessageMeta, or a skip reason."""
    labels = tuple(str(x) for x in message.get("labelIds") or [])
    if set(labels) & EXCLUDED_LABELS:
        return "spam, trash, draft or chat"
    internal = message.get("internalDate")
    fallback = (
        datetime.fromtimestamp(int(internal) / 1000, UTC)
        if isinstance(internal, str) and internal.isdigit()
        else None
    )
    return message_from_headers(
        headers_of(message),
        account=account,
        provider_id=str(message["id"]),
        fallback_date=fallback,
        now=now,
        folder=folder_of(labels),
        labels=labels,
        thread_hint=message.get("threadId"),
        extra_markers=[CATEGORY_MARKERS[x] for x in labels if x in CATEGORY_MARKERS],
        keep_subject=store_subjects,
    )


def _added(e: dict[str, Any], m: dict[str, Any]) -> str | None:
    bad = set(m.get("labelIds") or []) & EXCLUDED_LABELS
    return ("spam" if "SPAM" in bad else "delete") if bad else "fetch"


def _labels_added(e: dict[str, Any], m: dict[str, Any]) -> str | None:
    added = set(e.get("labelIds") or []) & EXCLUDED_LABELS
    return ("spam" if "SPAM" in added else "delete") if added else None


def _labels_removed(e: dict[str, Any], m: dict[str, Any]) -> str | None:
    still_bad = set(m.get("labelIds") or []) & EXCLUDED_LABELS
    return "fetch" if set(e.get("labelIds") or []) & EXCLUDED_LABELS and not still_bad else None


def _deleted(e: dict[str, Any], m: dict[str, Any]) -> str | None:
    return "delete"


# What each kind of history record means for its message, in the order they are applied within
# one record: (record field, rule of (entry, message) -> action or None for no change).
HISTORY_RULES: tuple[tuple[str, Callable[[dict[str, Any], dict[str, Any]], str | None]], ...] = (
    ("messagesAdded", _added),  # excluded (spam, trash...) from the start: removed
    ("labelsAdded", _labels_added),  # marked spam or trashed: removed
    ("labelsRemoved", _labels_removed),  # out of spam or trash: fetched again
    ("messagesDeleted", _deleted),
)


def history_actions(records: Sequence[dict[str, Any]]) -> dict[str, str]:
    """Message id -> "fetch", "delete" or "spam" (marked as spam: removed, not kept as
    history), from history records in chronological order."""
    act: dict[str, str] = {}
    for rec in records:
        for name, rule in HISTORY_RULES:
            for e in rec.get(name) or []:
                m = e.get("message") or {}
                action = rule(e, m)
                if "id" in m and action is not None:
                    act[m["id"]] = action
    return act


def _backfill_cursor(
    st: dict[str, Any], page_done: bool, next_skip: int, next_token: str | None
) -> tuple[dict[str, Any], bool]:
    """The cursor after a backfill chunk, and whether the backfill ends with it. The list is not
    reliably newest-first: only a whole page of messages older than the window (or the end of
    the list) ends the backfill."""
    last = bool(page_done and (not next_token or (st.get("old") and not st.get("recent"))))
    if last:
        return {"mode": "incr", "history_id": st["history_id"]}, True
    if page_done:
        return {**st, "page": next_token, "skip": 0, "old": False, "recent": False}, False
    return {**st, "skip": next_skip}, False


def gone(exc: HttpError) -> bool:
    """A messages.get refusal meaning the message no longer exists (deleted, or a bad id)."""
    status = int(exc.resp.status)
    return status == 404 or (status == 400 and error_reason(exc.content) == "invalidArgument")


def dump_cursor(state: dict[str, Any]) -> str:
    return json.dumps({"v": CURSOR_VERSION, **state}, separators=(",", ":"), sort_keys=True)


def load_cursor(cursor: str | None) -> dict[str, Any] | None:
    """The cursor's state, or None for a fresh full sync (unknown or damaged cursors too)."""
    if not cursor:
        return None
    try:
        state = json.loads(cursor)
    except ValueError:
        return None
    if not isinstance(state, dict) or state.get("v") != CURSOR_VERSION:
        return None
    if state.get("mode") not in ("full", "incr") or not str(state.get("history_id", "")).isdigit():
        return None
    return state


# -- the connector ------------------------------------------------------------------------------------
class GmailConnector:
    """Gmail metadata for one account (``kind = "gmail"``)."""

    kind = "gmail"

    def __init__(self, account: str, client: GoogleClient, options: GmailSettings) -> None:
        self.account = account
        self.client = client
        self.options = options
        self._users: Any = None
        self._messages: Any = None
        self.batch_size = max(
            1,
            min(
                options.batch_size,
                MAX_BATCH,
                client.limits.bucket.largest_request() // UNITS["get"],
            ),
        )
        self.window = BatchWindow(self.batch_size)

    @property
    def users(self) -> Any:
        # Resource objects rebuild every method on creation: build them once per connector.
        if self._users is None:
            self._users = self.client.service("gmail", "v1").users()
            self._messages = self._users.messages()
        return self._users

    @property
    def messages(self) -> Any:
        return self._messages if self.users is not None else None

    def sync(self, cursor: str | None) -> Iterator[Batch]:
        state = load_cursor(cursor)
        self._pool = ThreadPoolExecutor(max_workers=max(1, self.options.max_concurrency))
        try:
            if state is None or state["mode"] == "full":
                yield from self._full(state)
            else:
                yield from self._incremental(state)
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self.client.close()

    # -- full sync
    def _start_full(self) -> dict[str, Any]:
        profile = self.client.execute(
            lambda: self.users.getProfile(userId="me"), UNITS["profile"], "the Gmail profile"
        )
        cutoff = self.options.now() - self.options.backfill
        return {
            "mode": "full",
            "history_id": str(profile["historyId"]),
            "page": None,
            "skip": 0,
            "done": 0,
            "total": int(profile.get("messagesTotal") or 0) or None,
            "cutoff_ms": int(cutoff.timestamp() * 1000),
        }

    def _full(self, state: dict[str, Any] | None) -> Iterator[Batch]:
        st = self._start_full() if state is None else dict(state)
        while True:
            resp = self._list_page(st.get("page"))
            ids = [m["id"] for m in resp.get("messages") or []]
            next_token = resp.get("nextPageToken")
            skip = int(st.get("skip") or 0)
            if st.get("total") is None and resp.get("resultSizeEstimate"):
                st["total"] = int(resp["resultSizeEstimate"])
            step = self.options.records_per_batch
            for start in range(skip, max(len(ids), skip + 1), step):
                chunk = ids[start : start + step]
                got, keep = self._backfill_chunk(st, chunk)
                cur, last = _backfill_cursor(st, start + step >= len(ids), start + step, next_token)
                yield Batch(
                    messages=keep,
                    deletions=[Deletion(self.account, i) for i in got.gone],
                    cursor=dump_cursor(cur),
                    progress=Progress(st["done"], st.get("total"), "backfill"),
                    skipped=dict(got.skipped),
                )
                if last:
                    if next_token:
                        log.info(
                            "account %s: backfill reached its %d-day window; older mail is not read",
                            self.account,
                            self.options.backfill.days,
                        )
                    return
            st.update(page=next_token, skip=0, old=False, recent=False)

    def _list_page(self, token: str | None) -> dict[str, Any]:
        """One page of the mailbox's message list."""
        page: dict[str, Any] = {"pageToken": token} if token else {}
        resp: dict[str, Any] = self.client.execute(
            partial(self.messages.list, userId="me", maxResults=self.options.page_size, **page),
            UNITS["list"],
            "listing Gmail messages",
        )
        return resp

    def _backfill_chunk(
        self, st: dict[str, Any], chunk: list[str]
    ) -> tuple[Fetched, list[MessageMeta]]:
        """Fetch a chunk of the backfill: what came, and the messages inside the window. Notes in
        ``st`` whether the chunk had messages older (``old``) and newer (``recent``) than it."""
        got = self._fetch(chunk)
        too_old = {i for i, ms in got.internal_ms.items() if ms < st["cutoff_ms"]}
        keep = [m for m in got.messages if m.provider_id not in too_old]
        if too_old:
            got.skipped[TOO_OLD] += len(too_old)
            st["old"] = True
        if len(too_old) < len(got.internal_ms):
            st["recent"] = True
        st["done"] = int(st.get("done") or 0) + len(chunk)
        return got, keep

    # -- incremental sync
    def _incremental(self, state: dict[str, Any]) -> Iterator[Batch]:
        since = str(state["history_id"])
        cursor_id, token = since, None
        while True:
            resp = self._history_page(since, token)
            records = resp.get("history") or []
            token = resp.get("nextPageToken")
            if records:
                # A resumption point: every record up to this one is stored with this batch.
                cursor_id = str(records[-1]["id"])
            if not token:
                cursor_id = str(resp["historyId"])  # only after the last page
            elif not records:
                continue  # an empty page that is not the last one: follow its token
            yield self._history_batch(records, cursor_id)
            if not token:
                return

    def _history_page(self, since: str, token: str | None) -> dict[str, Any]:
        """One page of the mailbox's history since ``since`` (CursorExpired when too old)."""
        page: dict[str, Any] = {"pageToken": token} if token else {}
        try:
            resp: dict[str, Any] = self.client.execute(
                partial(
                    self.users.history().list,
                    userId="me",
                    startHistoryId=since,
                    historyTypes=HISTORY_TYPES,
                    maxResults=self.options.page_size,
                    **page,
                ),
                UNITS["history"],
                "reading Gmail history",
                expect=(400, 404),  # too old, or not a history id at all
            )
        except HttpError:
            raise CursorExpired(
                "Gmail history is too old to continue from; a full resync is needed"
            ) from None
        return resp

    def _history_batch(self, records: list[Any], cursor_id: str) -> Batch:
        """The batch of one history page: the messages it added, fetched, and its deletions."""
        actions = history_actions(records)
        to_fetch = [i for i, a in actions.items() if a == "fetch"]
        deletions = [
            Deletion(self.account, i, reason="spam" if a == "spam" else "deleted")
            for i, a in actions.items()
            if a != "fetch"
        ]
        got = self._fetch(to_fetch) if to_fetch else Fetched()
        deletions += [Deletion(self.account, i) for i in got.gone]
        deletions += [Deletion(self.account, i, reason="spam") for i in got.spam]
        deletions += [Deletion(self.account, i) for i in got.excluded]
        return Batch(
            messages=got.messages,
            deletions=deletions,
            cursor=dump_cursor({"mode": "incr", "history_id": cursor_id}),
            progress=Progress(len(actions), None, "incremental"),
            skipped=dict(got.skipped),
        )

    # -- metadata fetch through batches
    def _get(self, mid: str) -> Any:
        return self.messages.get(
            userId="me", id=mid, format="metadata", metadataHeaders=list(METADATA_HEADERS)
        )

    def _fetch(self, ids: Sequence[str]) -> Fetched:
        """Fetch metadata of ``ids`` in batches sized by :class:`BatchWindow`.

        Parts refused for rate or concurrency are sent again at once in smaller batches (the
        bucket paces or pauses if Google keeps refusing); parts that failed otherwise (5xx,
        dropped connections) are sent again after a jittered back-off. A part is given up after
        the retry policy's attempts.
        """
        out = Fetched()
        raw: dict[str, Any] = {}
        queue = deque(dict.fromkeys(ids))
        tries: Counter[str] = Counter()
        running: dict[Future[PartResult], list[str]] = {}
        inflight = 0
        self.client.service("gmail", "v1")
        while queue or running:
            inflight = self._submit(queue, running, inflight)
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in done:
                inflight -= len(running.pop(fut))
                self._settle(fut.result(), out, raw, tries, queue)
        self._records(ids, raw, out)
        return out

    def _submit(
        self, queue: deque[str], running: dict[Future[PartResult], list[str]], inflight: int
    ) -> int:
        """Start batches from the queue while the window allows; the ids now in flight."""
        while queue and len(running) < self.options.max_concurrency:
            n = min(len(queue), self.window.batch())
            if running and inflight + n > self.window.size:
                break
            chunk = [queue.popleft() for _ in range(n)]
            running[self._pool.submit(self._round, chunk)] = chunk
            inflight += n
        return inflight

    def _settle(
        self,
        r: PartResult,
        out: Fetched,
        raw: dict[str, Any],
        tries: Counter[str],
        queue: deque[str],
    ) -> None:
        """Take one finished batch: keep what came, note what is gone, queue what to retry."""
        raw.update(r.ok)
        for key, exc in r.failed.items():
            if not gone(exc):
                raise self.client.refusal(exc, "fetching Gmail message metadata")
            out.gone.append(key)
        if r.throttled:
            self.window.refused()
        elif not r.retry:
            self.window.clean()
        if not r.retry:
            return
        self._wait_to_retry(r, tries)
        queue.extend(r.retry)

    def _wait_to_retry(self, r: PartResult, tries: Counter[str]) -> None:
        """Give up when the retry policy says so; back off before failed (not throttled) parts
        are sent again."""
        retry, bucket = self.client.retry, self.client.limits.bucket
        if r.retry_after is not None and r.retry_after > retry.cap:
            raise give_up("fetching Gmail message metadata", r.retry_after)
        if bucket.strikes > retry.attempts:
            raise give_up("fetching Gmail message metadata", None)
        failed = [k for k in r.retry if k not in r.ok] if not r.throttled else []
        for key in failed:
            tries[key] += 1
            if tries[key] >= retry.attempts:
                raise give_up("fetching Gmail message metadata", r.retry_after)
        if failed:
            retry.sleep(retry.delay(max(tries[k] for k in failed) - 1, r.retry_after))

    def _records(self, ids: Sequence[str], raw: dict[str, Any], out: Fetched) -> None:
        """The records of the fetched messages, in the order asked; skipped ones counted (and
        those in spam or trash marked for removal)."""
        now = self.options.now()
        for mid in ids:
            msg = raw.get(mid)
            if msg is None:
                continue
            internal = msg.get("internalDate")
            if isinstance(internal, str) and internal.isdigit():
                out.internal_ms[mid] = int(internal)
            rec = to_record(
                msg, account=self.account, store_subjects=self.options.store_subjects, now=now
            )
            if isinstance(rec, str):
                out.skipped[rec] += 1
                bad = set(msg.get("labelIds") or []) & EXCLUDED_LABELS
                if "SPAM" in bad:
                    out.spam.append(mid)
                elif bad:
                    out.excluded.append(mid)
            else:
                out.messages.append(rec)

    def _round(self, chunk: list[str]) -> PartResult:
        return self.client.batch_round(
            "gmail", [(mid, self._get(mid)) for mid in chunk], UNITS["get"]
        )


# -- sending (digest delivery) ---------------------------------------------------------------------
def send_raw(client: GoogleClient, message: bytes) -> str:
    """Send an RFC 5322 message through ``users.messages.send`` (gmail.send); returns its id.

    One attempt only, errors raised as they come: a blind retry could send the digest twice.
    """
    raw = base64.urlsafe_b64encode(message).decode("ascii")
    request = client.service("gmail", "v1").users().messages().send(userId="me", body={"raw": raw})
    with client.limits.slot(UNITS["send"]):
        resp = request.execute(http=client.http())
    return str(resp.get("id", ""))
