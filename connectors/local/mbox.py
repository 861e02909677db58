"""mbox files (Google Takeout's ``All mail Including Spam and Trash.mbox``, Thunderbird, mutt).

The file is streamed in 1 MiB chunks; only each message's header block is kept. A message
starts at a ``From `` line that follows an empty line and is a real envelope line (sender and
date) or is followed by a header line; without the empty line both must hold. This keeps
unquoted ``From `` lines inside bodies from splitting a message. Where a ``Content-Length``
header points exactly at the next envelope line, the body is skipped by it.

The cursor is the byte offset of the next message plus fingerprints of the file's start and of
the bytes before the offset. A re-scan reads only what was appended; a file that shrank or
whose known part changed (a mail client compacted it) is read again from the start with
``Batch.reset``, which replaces the account's records.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from keepwarm.connectors.base import Batch, MessageMeta, Progress, SourceError
from keepwarm.connectors.headers import MAX_HEADER_BLOCK
from keepwarm.connectors.local.common import (
    MailFileConnector,
    Skips,
    decode_cursor,
    encode_cursor,
    message_from_head,
    require_path,
)
from keepwarm.connectors.local.envelope import envelope_date, is_envelope, looks_like_header
from keepwarm.connectors.local.workers import PARALLEL_MIN, each

log = logging.getLogger(__name__)

KIND = "mbox"
CHUNK = 1 << 20
LOOKAHEAD = 4096
FINGERPRINT = 4096
PARALLEL_BYTES = 4096  # a small message in an mbox, headers and body: a file this many times
# PARALLEL_MIN bytes holds enough messages to be parsed in worker processes
_CONTENT_LENGTH = re.compile(rb"(?im)^content-length:[ \t]*(\d{1,12})[ \t]*\r?$")


@dataclass(frozen=True, slots=True)
class RawMessage:
    start: int  # file offset of the envelope line (or of the headers when there is none)
    end: int  # file offset of the next message
    envelope: bytes | None
    head: bytes


class _Buffer:
    """A sliding window over a file: ``data`` holds the bytes from file offset ``base``."""

    def __init__(self, fh: BinaryIO, offset: int) -> None:
        self.fh = fh
        fh.seek(offset)
        self.data = b""
        self.base = offset
        self.eof = False

    @property
    def end(self) -> int:
        return self.base + len(self.data)

    def need(self, abs_end: int) -> None:
        """Read until the window reaches ``abs_end`` or the end of the file."""
        parts = [self.data]
        have = self.end
        while not self.eof and have < abs_end:
            chunk = self.fh.read(max(CHUNK, abs_end - have))
            if not chunk:
                self.eof = True
                break
            parts.append(chunk)
            have += len(chunk)
        if len(parts) > 1:
            self.data = b"".join(parts)

    def drop(self, abs_pos: int) -> None:
        """Forget the bytes before ``abs_pos``."""
        cut = abs_pos - self.base
        if cut > 0:
            self.data = self.data[cut:]
            self.base = abs_pos

    def find(self, sub: bytes, abs_start: int) -> int:
        i = self.data.find(sub, abs_start - self.base)
        return -1 if i == -1 else i + self.base

    def line(self, abs_pos: int) -> bytes:
        """The line starting at ``abs_pos`` (without its newline), reading ahead as needed."""
        self.need(abs_pos + LOOKAHEAD)
        rel = abs_pos - self.base
        eol = self.data.find(b"\n", rel, rel + LOOKAHEAD)
        return self.data[rel : eol if eol != -1 else rel + LOOKAHEAD].rstrip(b"\r")

    def byte_slice(self, a: int, b: int) -> bytes:
        return self.data[max(0, a - self.base) : max(0, b - self.base)]


def _is_boundary(buf: _Buffer, pos: int, start_of_data: int) -> bool:
    """Whether the ``From `` at ``pos`` (at a line start) begins a new message."""
    line = buf.line(pos)
    if not line.startswith(b"From "):
        return False
    eol = buf.find(b"\n", pos)
    nxt = buf.line(eol + 1) if eol != -1 else b""
    env, hdr = is_envelope(line), looks_like_header(nxt)
    if pos == start_of_data:
        return env or hdr
    before = buf.byte_slice(pos - 3, pos)
    blank_before = before.endswith(b"\n\n") or before == b"\n\r\n"
    return (blank_before and (env or hdr)) or (env and hdr)


def scan(fh: BinaryIO, offset: int) -> Iterator[RawMessage]:
    """The messages of an mbox from ``offset`` (which must be a message start) to the end."""
    buf = _Buffer(fh, offset)
    pos = offset
    while True:
        buf.need(pos + LOOKAHEAD)
        if pos >= buf.end:
            return
        buf.drop(max(buf.base, pos - 8))
        envelope: bytes | None = None
        hstart = pos
        if buf.byte_slice(pos, pos + 5) == b"From ":
            envelope = buf.line(pos)
            eol = buf.find(b"\n", pos)
            hstart = eol + 1 if eol != -1 else buf.end
        head, body = _header_block(buf, hstart)
        nxt = _next_start(buf, head, body, offset)
        yield RawMessage(pos, nxt, envelope, head)
        pos = nxt


def _header_block(buf: _Buffer, hstart: int) -> tuple[bytes, int]:
    """The header block at ``hstart`` (capped) and the offset where the body starts."""
    buf.need(hstart + 2)
    for blank in (b"\n", b"\r\n"):
        if buf.byte_slice(hstart, hstart + len(blank)) == blank:
            return b"", hstart + len(blank)  # no headers at all
    limit = hstart + MAX_HEADER_BLOCK
    searched = hstart
    while True:
        buf.need(min(limit, searched + 64 * 1024) + 4)
        lo, hi = max(hstart, searched - 3) - buf.base, limit - buf.base
        hits = [
            h for h in (buf.data.find(b"\n\n", lo, hi), buf.data.find(b"\n\r\n", lo, hi)) if h != -1
        ]
        if hits:
            cut = min(hits) + buf.base
            sep = 2 if buf.byte_slice(cut, cut + 2) == b"\n\n" else 3
            return buf.byte_slice(hstart, cut + 1), cut + sep
        if buf.eof or buf.end >= limit:
            end = min(buf.end, limit)
            return buf.byte_slice(hstart, end), end
        searched = buf.end


def _next_start(buf: _Buffer, head: bytes, body: int, start_of_data: int) -> int:
    """The offset of the next message after a body starting at ``body`` (or the file's end)."""
    m = _CONTENT_LENGTH.search(head)
    if m is not None:
        cand = body + int(m.group(1))
        buf.need(cand + LOOKAHEAD)
        if cand >= buf.end and buf.eof:
            return buf.end
        for q in (cand, cand + 1, cand + 2):
            at_line = buf.byte_slice(q - 1, q) == b"\n" and buf.byte_slice(q, q + 5) == b"From "
            if at_line and _is_boundary(buf, q, start_of_data):
                return q
    search = body - 1
    while True:
        buf.need(search + CHUNK)
        hit = buf.find(b"\nFrom ", search)
        if hit == -1:
            if buf.eof:
                return buf.end
            search = max(search, buf.end - 8)
            buf.drop(max(buf.base, search - 8))
            continue
        if _is_boundary(buf, hit + 1, start_of_data):
            return hit + 1
        search = hit + 1
        buf.drop(max(buf.base, search - 8))


def _fingerprint(fh: BinaryIO, start: int, end: int) -> str:
    fh.seek(max(0, start))
    return hashlib.blake2b(fh.read(max(0, end - max(0, start))), digest_size=12).hexdigest()


class MboxConnector(MailFileConnector):
    """One mbox file as a :class:`Connector`."""

    kind = KIND

    def _cursor(self, fh: BinaryIO, offset: int, size: int) -> str:
        return encode_cursor(
            KIND,
            {
                "offset": offset,
                "size": size,
                "head": _fingerprint(fh, 0, min(offset, FINGERPRINT)),
                "tail": _fingerprint(fh, offset - FINGERPRINT, offset),
            },
        )

    def _start(self, fh: BinaryIO, cursor: str | None, size: int) -> tuple[int, bool]:
        """Where to start reading, and whether the file must be read again from scratch."""
        data = decode_cursor(KIND, cursor)
        if not data:
            return 0, False
        offset = data.get("offset")
        if not isinstance(offset, int) or offset < 0 or offset > size:
            log.info("mbox: the file shrank; reading it again")
            return 0, True
        head = _fingerprint(fh, 0, min(offset, FINGERPRINT))
        tail = _fingerprint(fh, offset - FINGERPRINT, offset)
        if (head, tail) != (data.get("head"), data.get("tail")):
            log.info("mbox: the file changed before the last position; reading it again")
            return 0, True
        if offset < size:
            fh.seek(offset)
            if not fh.read(LOOKAHEAD).lstrip(b"\r\n").startswith(b"From "):
                log.info("mbox: appended data does not start a message; reading it again")
                return 0, True
        return offset, False

    def sync(self, cursor: str | None) -> Iterator[Batch]:
        path = require_path(self.path, KIND, want_dir=False)
        try:
            fh = open(path, "rb")  # noqa: SIM115 - closed in finally; the generator may pause
        except OSError as exc:
            raise SourceError(f"cannot read the mbox {path}: {exc.strerror}") from None
        try:
            yield from self._sync(fh, cursor)
        except OSError as exc:
            raise SourceError(f"reading the mbox {path} failed: {exc.strerror}") from None
        finally:
            fh.close()

    def _sync(self, fh: BinaryIO, cursor: str | None) -> Iterator[Batch]:
        size = os.fstat(fh.fileno()).st_size
        offset, reset = self._start(fh, cursor, size)
        if offset >= size and not reset:
            return
        reader = open(fh.name, "rb")  # noqa: SIM115 - a second handle for the streaming scan
        try:
            yield from self._read(fh, reader, offset, size, reset)
        finally:
            reader.close()

    def _read(
        self, fh: BinaryIO, reader: BinaryIO, offset: int, size: int, reset: bool
    ) -> Iterator[Batch]:
        batch = Batch(reset=reset)
        skips = Skips()
        done = pending = 0
        end = offset
        # a big file (or a big append) is parsed in worker processes, ~PARALLEL_MIN messages
        big = size - offset >= PARALLEL_MIN * PARALLEL_BYTES
        for raw, result in each(
            self._records, scan(reader, offset), parallel=big, workers=self.workers
        ):
            done += 1
            pending += 1
            end = raw.end
            if isinstance(result, str):
                skips.add(result)
            else:
                batch.messages.append(result)
            if pending >= self.batch_size:
                yield self._close(batch, fh, end, max(size, end), skips, done, offset)
                batch, pending = Batch(), 0
        if pending or batch.reset:
            yield self._close(batch, fh, end, max(size, end), skips, done, offset)

    def _close(
        self, batch: Batch, fh: BinaryIO, end: int, size: int, skips: Skips, done: int, start: int
    ) -> Batch:
        read = max(1, end - start)
        total = max(done, round(done * (size - start) / read))
        batch.cursor = self._cursor(fh, end, size)
        batch.progress = Progress(done, total, "reading")
        batch.skipped = skips.take()
        return batch

    def _records(self, raws: list[RawMessage]) -> list[MessageMeta | str]:
        return [self._record(raw) for raw in raws]

    def _record(self, raw: RawMessage) -> MessageMeta | str:
        fallback = envelope_date(raw.envelope) if raw.envelope else None
        return message_from_head(
            raw.head,
            account=self.account,
            provider_id=str(raw.start),
            fallback_dates=(fallback,),
            now=self.now,
            keep_subject=self.keep_subjects,
        )
