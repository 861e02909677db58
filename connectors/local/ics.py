"""iCalendar files (.ics exports from Google Calendar, Outlook, Apple Calendar...).

A path is one .ics file or a folder of them (searched recursively). Every event occurrence
within the window (``window_past`` before ``now`` to ``window_future`` after it) becomes an
:class:`EventMeta`, through the VEVENT mapping every calendar source shares
(:mod:`keepwarm.connectors.ical`: recurrence, zones, birthdays, what is skipped and why).

Re-scans are by content hash: an unchanged file is not read again on the same day; a changed file
has its events replaced (events removed from it are deleted: they did not take place). A file that
is gone as a whole keeps its events in the history, with a notice for the user. When the day changes the
window has moved, so every file is expanded again (the store ignores what it already has).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from keepwarm.connectors.base import (
    Batch,
    Deletion,
    Progress,
    SourceError,
    TransientError,
    kept_notice,
)
from keepwarm.connectors.ical import (
    MAX_FILE,
    EventOptions,
    Window,
    events_of,
    replaced,
    window_around,
)
from keepwarm.connectors.local.common import (
    DEFAULT_BATCH,
    Skips,
    decode_cursor,
    encode_cursor,
    file_hash,
    files_under,
    pack,
    read_file,
    require_path,
    unchanged,
    unpack,
)

log = logging.getLogger(__name__)

KIND = "ics"
FEED = "feed"  # the provider-id prefix of a published calendar's events


def feed_url(path: str) -> str | None:
    """The address of a published calendar (``https://``, ``http://`` or ``webcal://``, which is
    https), or None when ``path`` is a local path."""
    lower = path.strip().lower()
    if lower.startswith("webcal://"):
        return "https://" + path.strip()[len("webcal://") :]
    if lower.startswith(("https://", "http://")):
        return path.strip()
    return None


def fetch_feed(
    url: str, validators: dict[str, str], timeout: float
) -> tuple[bytes | None, dict[str, str]]:
    """GET a published calendar; ``(None, validators)`` when the server says it did not change
    (304). Connector errors with the fix for anything else."""
    import requests

    headers = {"Accept": "text/calendar, */*;q=0.5", "User-Agent": "keepwarm"}
    if validators.get("etag"):
        headers["If-None-Match"] = validators["etag"]
    if validators.get("modified"):
        headers["If-Modified-Since"] = validators["modified"]
    host = urlsplit(url).hostname or url
    try:
        with requests.get(url, headers=headers, timeout=timeout, stream=True) as resp:
            if resp.status_code == 304:
                return None, validators
            if resp.status_code in (401, 403, 404, 410):
                raise SourceError(
                    f"the published calendar at {host} answered {resp.status_code}: it is private, "
                    "moved or no longer published",
                    fix="copy its address again from your calendar app (the secret address, for "
                    "a private calendar) and put it in path",
                )
            if resp.status_code >= 400:
                raise TransientError(
                    f"the published calendar at {host} failed ({resp.status_code}); "
                    "keepwarm tries again later"
                )
            chunks: list[bytes] = []
            size = 0
            for chunk in resp.iter_content(64 * 1024):
                chunks.append(chunk)
                size += len(chunk)
                if size > MAX_FILE:
                    break
            body = b"".join(chunks)
            found = {
                k: v
                for k, v in (
                    ("etag", resp.headers.get("ETag")),
                    ("modified", resp.headers.get("Last-Modified")),
                )
                if v
            }
            return body, found
    except requests.exceptions.SSLError:
        raise SourceError(
            f"cannot make a secure connection to {host}: its certificate is not trusted",
            fix="check the calendar's address",
        ) from None
    except requests.exceptions.Timeout:
        raise TransientError(f"{host} did not answer within {int(timeout)} s") from None
    except requests.exceptions.RequestException:
        raise TransientError(f"cannot reach {host} for the published calendar") from None


class IcsConnector:
    """One .ics file, or a folder of them, as a :class:`Connector` of events."""

    kind = KIND

    def __init__(
        self,
        account: str,
        path: str | Path,
        *,
        zone: ZoneInfo | str = "UTC",
        self_addresses: Iterable[str] = (),
        window_past: timedelta = timedelta(days=730),
        window_future: timedelta = timedelta(days=14),
        now: datetime | None = None,
        batch_size: int = DEFAULT_BATCH,
        keep_titles: bool = True,
        timeout: float = 60.0,
    ) -> None:
        self.account = account
        self.url = feed_url(str(path))  # a published calendar's address, or None for files
        self.path = Path(path)
        self.opts = EventOptions.make(account, zone, self_addresses, keep_titles)
        self.timeout = timeout
        self.window_past = window_past
        self.window_future = window_future
        self.now = now
        self.batch_size = max(1, batch_size)

    # -- files --------------------------------------------------------------------------------
    def _files(self, root: Path) -> dict[str, str]:
        return files_under(root, (".ics",))

    def _window(self) -> Window:
        return window_around(self.now, self.window_past, self.window_future)

    # -- sync ---------------------------------------------------------------------------------
    def sync(self, cursor: str | None) -> Iterator[Batch]:
        data = decode_cursor(KIND, cursor) or {}
        old_files: dict[str, Any] = data.get("files") or {}
        if not isinstance(old_files, dict):
            old_files = {}
        if self.url is not None:
            yield from self._sync_feed(self.url, data, old_files)
            return
        root = require_path(self.path, KIND)
        window = self._window()
        same_day = data.get("day") == window.day
        files = self._files(root)
        state = dict(old_files)
        batch = Batch()
        skips = Skips()
        done = self._vanished(old_files, files, state, batch)
        total = len(files) + done
        for rel, full in files.items():
            done += 1
            raw = read_file(full, MAX_FILE, skips, log, "ics: cannot read a calendar file")
            if raw is None:
                continue
            old = old_files.get(rel)
            if same_day and unchanged(old, raw):
                continue
            state[rel] = self._read(rel, raw, old, window, batch, skips)
            if len(batch) >= self.batch_size:
                yield self._close(batch, state, window, skips, done, total)
                batch = Batch()
        if len(batch) or skips or state != old_files or data.get("day") != window.day:
            yield self._close(batch, state, window, skips, done, total)

    def _vanished(
        self, old_files: dict[str, Any], files: dict[str, str], state: dict[str, Any], batch: Batch
    ) -> int:
        """Files read before and gone now leave ``state``; their events are deleted (the meetings
        stay in the history). Returns how many files were gone."""
        gone_files = 0
        for rel in sorted(old_files):
            if rel not in files:  # the calendar file is gone: its meetings stay in the history
                gone = [
                    Deletion(self.account, pid, "event", reason="vanished")
                    for pid in self._ids(old_files[rel])
                ]
                batch.deletions += gone
                if gone:
                    batch.notices.append(
                        kept_notice(f"calendar file {rel} is gone", len(gone), "event")
                    )
                del state[rel]
                gone_files += 1
        return gone_files

    def _read(
        self, rel: str, raw: bytes, old: Any, window: Window, batch: Batch, skips: Skips
    ) -> dict[str, Any]:
        """One calendar source read (again): its events in, the ones gone from it out. A file
        may be a historical export (read around its own latest event); a published calendar is
        live."""
        events = events_of(raw, rel, window, self.opts, skips, history=rel != FEED)
        new_ids = {e.provider_id for e in events}
        dropped, kept = replaced(self._ids(old), new_ids, window)
        batch.deletions += [  # removed from the file: meetings that did not take place
            Deletion(self.account, pid, "event", reason="replaced") for pid in dropped
        ]
        batch.events += events
        digest = file_hash(raw)
        return {"h": digest, "ids": pack(sorted(new_ids | kept))}

    def _sync_feed(
        self, url: str, data: dict[str, Any], old_files: dict[str, Any]
    ) -> Iterator[Batch]:
        """A published calendar (read-only subscription): a conditional GET (ETag /
        If-Modified-Since) on the same day; on a new day the window moved, so it is read again."""
        window = self._window()
        same_day = data.get("day") == window.day
        old = old_files.get(FEED)
        raw_validators = data.get("http")
        validators: dict[str, str] = (
            {str(k): str(v) for k, v in raw_validators.items()}
            if isinstance(raw_validators, dict)
            else {}
        )
        raw, new_validators = fetch_feed(
            url, validators if same_day and isinstance(old, dict) else {}, self.timeout
        )
        batch, skips = Batch(), Skips()
        state = dict(old_files)
        if raw is not None and not (same_day and unchanged(old, raw)):
            state[FEED] = self._read(FEED, raw, old, window, batch, skips)
        if (
            len(batch)
            or skips
            or state != old_files
            or not same_day
            or new_validators != validators
        ):
            batch.cursor = encode_cursor(
                KIND, {"day": window.day, "files": state, "http": new_validators}
            )
            batch.progress = Progress(1, 1, "reading")
            batch.skipped = skips.take()
            yield batch

    def _ids(self, entry: Any) -> list[str]:
        if not isinstance(entry, dict):
            return []
        ids = unpack(entry.get("ids", pack([])))
        return [str(i) for i in ids] if isinstance(ids, list) else []

    def _close(
        self,
        batch: Batch,
        state: dict[str, Any],
        window: Window,
        skips: Skips,
        done: int,
        total: int,
    ) -> Batch:
        batch.cursor = encode_cursor(KIND, {"day": window.day, "files": state})
        batch.progress = Progress(done, total, "reading")
        batch.skipped = skips.take()
        return batch
