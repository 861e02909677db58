"""Helpers shared by the local-file connectors: header reading, skip reasons, cursor packing.

The cursors of the local connectors are JSON objects with a version and the connector's kind;
anything else (a cursor from another version, a damaged value) raises :class:`CursorExpired`, so
the daemon forgets it and runs one full scan, which the store's idempotent upserts make harmless.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from keepwarm.connectors.base import CursorExpired, MessageMeta, SourceError
from keepwarm.connectors.headers import (
    MAX_HEADER_BLOCK,
    header_block,
    message_from_headers,
    parse_header_block,
    plausible,
    received_date,
)

CURSOR_VERSION = 1
FIRST_READ = 16 * 1024

# Skip reasons (the words users see in the import summary).
UNREADABLE = "unreadable"
BINARY = "binary file"
SYMLINK_LOOP = "symlink loop"
TRASH = "in trash or spam folder"
UNPARSEABLE_CALENDAR = "unparseable calendar"


DEFAULT_BATCH = 1000  # records a batch, for every local connector


class MailFileConnector:
    """What the mbox and maildir connectors share: the account, the path and the read options."""

    def __init__(
        self,
        account: str,
        path: str | Path,
        *,
        batch_size: int = DEFAULT_BATCH,
        now: datetime | None = None,
        keep_subjects: bool = True,
        workers: int | None = None,
    ) -> None:
        self.account = account
        self.path = Path(path)
        self.batch_size = max(1, batch_size)
        self.now = now
        self.keep_subjects = keep_subjects
        self.workers = workers  # processes that parse a big import (None: one per core)


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A file that could not be read this time (not remembered: tried again on the next scan)."""

    reason: str


class Skips(dict[str, int]):
    """Counts of skipped records by reason."""

    def add(self, reason: str, n: int = 1) -> None:
        self[reason] = self.get(reason, 0) + n

    def take(self) -> dict[str, int]:
        """The counts so far, and start again from zero."""
        out = dict(self)
        self.clear()
        return out


def _has_blank_line(data: bytes) -> bool:
    return b"\n\n" in data or b"\n\r\n" in data or data.startswith((b"\n", b"\r\n"))


def read_head(path: str | Path) -> bytes:
    """The first bytes of a message file: enough to hold its header block (capped).

    Reads 16 KiB, and more only while no empty line has been seen, up to the header-block cap, so
    a body is read only as far as a short message's first block. Raises OSError.
    """
    with open(path, "rb") as fh:
        data = fh.read(FIRST_READ)
        if len(data) < FIRST_READ or _has_blank_line(data):
            return data
        chunks = [data]
        size = len(data)
        while size < MAX_HEADER_BLOCK + 4:
            more = fh.read(64 * 1024)
            if not more:
                break
            seam = chunks[-1][-3:] + more
            chunks.append(more)
            size += len(more)
            if b"\n\n" in seam or b"\n\r\n" in seam:
                break
        return b"".join(chunks)


_CONTROL = bytes(range(0, 9)) + bytes(range(14, 32)) + b"\x7f"


def looks_binary(head: bytes) -> bool:
    """True for data that is not a mail message: a header block of many control characters.

    Only the header block counts (a NUL byte in a body, or a stray one in a header, says nothing
    about the message); control characters in headers are dropped when the values are cleaned.
    """
    return _binary_block(header_block(head))


def _binary_block(header: bytes) -> bool:
    block = header[:4096]
    if not block:
        return False
    controls = len(block) - len(block.translate(None, _CONTROL))
    return controls * 20 > len(block)


def utc_from_timestamp(ts: float) -> datetime | None:
    try:
        return datetime.fromtimestamp(ts, UTC)
    except (OverflowError, OSError, ValueError):
        return None


# -- cursors --------------------------------------------------------------------------------------
def encode_cursor(kind: str, data: Mapping[str, Any]) -> str:
    return json.dumps(
        {"v": CURSOR_VERSION, "kind": kind, **data}, separators=(",", ":"), sort_keys=True
    )


def decode_cursor(kind: str, cursor: str | None) -> dict[str, Any] | None:
    """The cursor's fields, or None for no cursor. CursorExpired if it is not one of ours."""
    if cursor is None:
        return None
    try:
        data = json.loads(cursor)
    except ValueError:
        raise CursorExpired(f"the stored {kind} position is damaged") from None
    if not isinstance(data, dict) or data.get("v") != CURSOR_VERSION or data.get("kind") != kind:
        raise CursorExpired(f"the stored {kind} position is from another version")
    return data


def pack(obj: Any) -> str:
    """Compress a JSON value into one ASCII string (large connector state inside a cursor)."""
    raw = json.dumps(obj, separators=(",", ":")).encode("ascii")
    return base64.b64encode(zlib.compress(raw, 6)).decode("ascii")


def unpack(packed: Any) -> Any:
    """Inverse of :func:`pack`. CursorExpired if the data is damaged."""
    if not isinstance(packed, str):
        raise CursorExpired("the stored position is damaged")
    try:
        return json.loads(zlib.decompress(base64.b64decode(packed.encode("ascii"), validate=True)))
    except (ValueError, zlib.error):
        raise CursorExpired("the stored position is damaged") from None


def require_path(path: str | Path, kind: str, want_dir: bool | None = None) -> Path:
    """The source path, resolved; SourceError with a fix when it is missing or of the wrong type."""
    p = Path(path).expanduser()
    if not p.exists():
        raise SourceError(f"{kind} path {p} does not exist; check the path in your config")
    if want_dir is True and not p.is_dir():
        raise SourceError(f"{kind} path {p} is not a folder; a {kind} is a folder of messages")
    if want_dir is False and p.is_dir():
        raise SourceError(f"{kind} path {p} is a folder; give the {kind} file itself")
    return p


def files_under(root: Path, suffixes: tuple[str, ...]) -> dict[str, str]:
    """``{path relative to root: full path}`` of the files with one of ``suffixes`` (lower case)
    under ``root`` (hidden files and folders left out), or ``root`` itself when it is a file."""
    if root.is_file():
        return {root.name: str(root)}
    found: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.lower().endswith(suffixes) and not name.startswith("."):
                full = os.path.join(dirpath, name)
                found[os.path.relpath(full, root).replace(os.sep, "/")] = full
    return found


def read_file(full: str, limit: int, skips: Skips, log: logging.Logger, what: str) -> bytes | None:
    """A file's bytes (``limit`` + 1 at most, so that a caller can tell it is too big), or None,
    counted as unreadable and logged (``what``: "ics: ... a calendar file"), when it cannot be
    read."""
    try:
        with open(full, "rb") as fh:
            return fh.read(limit + 1)
    except OSError as exc:
        log.info("%s (%s)", what, exc.strerror)
        skips.add(UNREADABLE)
        return None


def file_hash(raw: bytes) -> str:
    """The content hash a file's cursor state records (``{"h": ...}``)."""
    return hashlib.blake2b(raw, digest_size=16).hexdigest()


def unchanged(old: Any, raw: bytes) -> bool:
    """Was ``raw`` read before, as the file state ``old`` (its hash) records?"""
    return isinstance(old, dict) and old.get("h") == file_hash(raw)


def message_from_head(
    head: bytes,
    *,
    account: str,
    provider_id: str,
    fallback_dates: Iterable[datetime | None] = (),
    now: datetime | None = None,
    folder: str | None = None,
    keep_subject: bool = True,
) -> MessageMeta | str:
    """A record from the first bytes of a message file, or a skip reason.

    A missing or absurd Date header falls back to the delivery time of the topmost Received
    header, then to the given dates in order (envelope line date, file time), when plausible.
    """
    block = header_block(head)  # found once: the checks below look at nothing else
    if _binary_block(block):
        return BINARY
    headers = parse_header_block(block)

    def fallback() -> datetime | None:  # only computed when the Date header is unusable
        received = received_date(headers)
        if plausible(received, now):
            return received
        return next((d for d in fallback_dates if d is not None and plausible(d, now)), None)

    return message_from_headers(
        headers,
        account=account,
        provider_id=provider_id,
        lazy_fallback=fallback,
        now=now,
        folder=folder,
        keep_subject=keep_subject,
    )
