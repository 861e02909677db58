"""IMAP connector: Fastmail, iCloud, Proton Bridge, Dovecot, Gmail over IMAP ... (imapclient).

Only header fields are ever fetched (``BODY.PEEK[HEADER.FIELDS (...)]``, never a body, never the
\\Seen flag), for large ranges of UIDs at once, so a backfill of 100,000 messages is a few dozen
round trips.

Folders: every selectable folder except Junk, Trash and Drafts (SPECIAL-USE flags where the
server offers them, well-known names otherwise), narrowed by the ``folders`` /
``exclude_folders`` options. On Gmail (capability ``X-GM-EXT-1``) one pass over "All Mail"
replaces every label folder, and X-GM-LABELS / X-GM-THRID are recorded.

Cursor (JSON, one entry per folder): UIDVALIDITY, the highest UID processed, the set of UIDs
processed (as compact ranges), whether the first (backfill) pass finished, and the folder's
``(UIDVALIDITY, UIDNEXT, MESSAGES)`` at the end of the last complete pass. That triple is an exact
no-change test on every server (RFC 3501: UIDs ascend and are never reused within one UIDVALIDITY,
so no new UID means UIDNEXT is unchanged and no expunge means MESSAGES is unchanged), so an idle
account costs one LIST (with LIST-STATUS) or one STATUS per folder. A changed folder costs one
``UID SEARCH ALL`` (ESEARCH-compact where offered), which yields both the new UIDs and, by
comparison with the stored set, the deleted ones. A UIDVALIDITY change keeps the old generation in
the cursor until the folder is read again, then deletes the old records: the store's Message-ID /
content-key dedupe keeps each message one interaction. Deletions are emitted after every folder's
new mail, so a message moved between folders is never dropped in between.

What a deletion means is the store's history rule (:class:`Deletion`): a message gone from a
folder is ``deleted`` (kept as history) unless its Message-ID is now in the account's spam
folder (``spam``, removed; only looked up when something was deleted); a folder the server no
longer lists is ``vanished`` (kept, with a notice for the user); one the config no longer
selects is ``unselected`` (removed).
"""

from __future__ import annotations

import contextlib
import imaplib
import ipaddress
import json
import logging
import queue
import random
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from imapclient import IMAPClient
from imapclient.exceptions import LoginError
from imapclient.imap_utf7 import decode as decode_utf7
from imapclient.response_parser import parse_fetch_response, parse_response

from keepwarm.connectors.base import (
    AuthRequired,
    Batch,
    CursorExpired,
    Deletion,
    DeletionReason,
    MessageMeta,
    Progress,
    SourceError,
    TransientError,
    kept_notice,
)
from keepwarm.connectors.headers import (
    WANTED_HEADERS,
    first,
    message_from_headers,
    normalize_message_id,
    parse_header_block,
)

log = logging.getLogger(__name__)

# imaplib refuses response lines over 1 MB; a plain (non-ESEARCH) "UID SEARCH ALL" of a 200,000
# message folder (Gmail's All Mail) is longer than that. Literals are read by size, not by line.
imaplib._MAXLINE = max(imaplib._MAXLINE, 64 * 1024 * 1024)  # type: ignore[attr-defined]

CURSOR_VERSION = 1
FETCH_CHUNK = 2500  # UIDs per FETCH round trip and per batch
DELETE_CHUNK = 5000  # deletions per batch
SKIP_SPECIAL_USE = frozenset({b"\\junk", b"\\trash", b"\\drafts"})
# Used only when the server offers no SPECIAL-USE flags; compared with the last path component.
SKIP_NAMES = frozenset(
    {
        "junk",
        "junk e-mail",
        "junk email",
        "junk mail",
        "spam",
        "bulk mail",
        "trash",
        "deleted items",
        "deleted messages",
        "bin",
        "drafts",
        "draft",
    }
)
JUNK_NAMES = frozenset({"junk", "junk e-mail", "junk email", "junk mail", "spam", "bulk mail"})
SPAM_LOOKBACK = 2000  # newest messages of a spam folder compared with deletions
GMAIL_SKIP_LABELS = frozenset({"\\spam", "\\trash", "\\draft"})
HEADER_ITEM = "BODY.PEEK[HEADER.FIELDS (" + " ".join(h.upper() for h in WANTED_HEADERS) + ")]"
_MONTHS = {
    m: i
    for i, m in enumerate(
        ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], 1
    )
}

# Errors that mean "the connection is gone": reconnect, then give up as transient.
_NETWORK_ERRORS: tuple[type[BaseException], ...] = (
    OSError,  # socket.timeout, ConnectionResetError, ssl.SSLError, gaierror ...
    EOFError,
    imaplib.IMAP4.abort,
)


@dataclass(frozen=True)
class ImapSettings:
    """One account's connection and selection options (from ``[[accounts]] kind = "imap"``)."""

    host: str
    username: str
    password: Callable[[], str] = field(repr=False)
    port: int | None = None
    security: str = "tls"  # tls | starttls | none
    folders: tuple[str, ...] = ()
    exclude_folders: tuple[str, ...] = ()
    timeout: float = 60.0
    ca_file: Path | None = None
    backfill: timedelta | None = timedelta(days=3 * 365)
    keep_subjects: bool = True
    password_hint: str = "the configured password"  # where the password comes from, for messages
    retries: int = 3  # reconnects inside one sync before giving up as transient
    retry_base: float = 1.0  # seconds; doubled per attempt, with jitter
    fetch_chunk: int = FETCH_CHUNK
    use_extensions: bool = True  # ESEARCH, LIST-STATUS, X-GM-EXT-1 (off: plain RFC 3501)
    prefetch: bool = True  # read the next FETCH while the caller stores the last batch

    @property
    def effective_port(self) -> int:
        return self.port or (993 if self.security == "tls" else 143)


# -- UID sets ------------------------------------------------------------------------------------
class UidSet:
    """A set of UIDs kept as sorted, disjoint ``[lo, hi]`` ranges (compact for real folders)."""

    __slots__ = ("ranges",)

    def __init__(self, ranges: Iterable[tuple[int, int]] = ()) -> None:
        self.ranges: list[list[int]] = [[lo, hi] for lo, hi in ranges]

    @classmethod
    def parse(cls, text: str) -> UidSet:
        """From an IMAP sequence set such as ``1:5,7,9:12`` (no ``*``)."""
        out = cls()
        if not text:
            return out
        for part in text.split(","):
            lo, _, hi = part.partition(":")
            a, b = int(lo), int(hi or lo)
            out.add_range(min(a, b), max(a, b))
        return out

    @classmethod
    def of(cls, uids: Iterable[int]) -> UidSet:
        out = cls()
        for u in sorted(set(uids)):
            out.add_range(u, u)
        return out

    def add_range(self, lo: int, hi: int) -> None:
        """Add ``lo..hi``; fast when ranges arrive in ascending order (the usual case)."""
        r = self.ranges
        if not r or lo > r[-1][1] + 1:
            if r and lo < r[-1][0]:
                self._merge_in(lo, hi)
                return
            r.append([lo, hi])
        elif lo >= r[-1][0]:
            r[-1][1] = max(r[-1][1], hi)
        else:
            self._merge_in(lo, hi)

    def _merge_in(self, lo: int, hi: int) -> None:
        merged: list[list[int]] = []
        for a, b in sorted([*self.ranges, [lo, hi]]):
            if merged and a <= merged[-1][1] + 1:
                merged[-1][1] = max(merged[-1][1], b)
            else:
                merged.append([a, b])
        self.ranges = merged

    def add_sorted(self, uids: Sequence[int]) -> None:
        for u in uids:
            self.add_range(u, u)

    def __iter__(self) -> Iterator[int]:
        for lo, hi in self.ranges:
            yield from range(lo, hi + 1)

    def __len__(self) -> int:
        return sum(hi - lo + 1 for lo, hi in self.ranges)

    def __bool__(self) -> bool:
        return bool(self.ranges)

    def minus(self, other: UidSet) -> UidSet:
        """The UIDs of ``self`` not in ``other`` (linear merge over both range lists)."""
        out = UidSet()
        j, oth = 0, other.ranges
        for lo, hi in self.ranges:
            cur = lo
            while j < len(oth) and oth[j][1] < cur:
                j += 1
            k = j
            while cur <= hi:
                if k >= len(oth) or oth[k][0] > hi:
                    out.ranges.append([cur, hi])
                    break
                a, b = oth[k]
                if a > cur:
                    out.ranges.append([cur, a - 1])
                cur = max(cur, b + 1)
                k += 1
        return out

    def copy(self) -> UidSet:
        return UidSet((lo, hi) for lo, hi in self.ranges)

    def __str__(self) -> str:
        return ",".join(str(lo) if lo == hi else f"{lo}:{hi}" for lo, hi in self.ranges)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, UidSet) and self.ranges == other.ranges

    __hash__ = None  # type: ignore[assignment]


# -- cursor --------------------------------------------------------------------------------------
@dataclass
class FolderState:
    uidvalidity: int
    last_uid: int = 0
    known: UidSet = field(default_factory=UidSet)
    done: bool = False  # the first (backfill) pass finished
    check: tuple[int, int, int] | None = None  # (UIDVALIDITY, UIDNEXT, MESSAGES) when clean
    stale: list[tuple[int, UidSet]] = field(default_factory=list)  # older UIDVALIDITY generations

    def to_json(self) -> dict[str, Any]:
        return {
            "uv": self.uidvalidity,
            "last": self.last_uid,
            "known": str(self.known),
            "done": self.done,
            "check": list(self.check) if self.check else None,
            "stale": [[uv, str(s)] for uv, s in self.stale],
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> FolderState:
        check = d.get("check")
        return cls(
            uidvalidity=int(d["uv"]),
            last_uid=int(d["last"]),
            known=UidSet.parse(str(d["known"])),
            done=bool(d["done"]),
            check=(int(check[0]), int(check[1]), int(check[2])) if check else None,
            stale=[(int(uv), UidSet.parse(str(s))) for uv, s in d.get("stale", [])],
        )

    def copy(self) -> FolderState:
        return FolderState(
            self.uidvalidity,
            self.last_uid,
            self.known.copy(),
            self.done,
            self.check,
            [(uv, s.copy()) for uv, s in self.stale],
        )


@dataclass
class SyncState:
    folders: dict[str, FolderState] = field(default_factory=dict)

    def dump(self) -> str:
        return json.dumps(
            {"v": CURSOR_VERSION, "folders": {n: f.to_json() for n, f in self.folders.items()}},
            separators=(",", ":"),
        )

    @classmethod
    def load(cls, cursor: str | None) -> SyncState:
        if not cursor:
            return cls()
        try:
            data = json.loads(cursor)
            if data.get("v") != CURSOR_VERSION:
                raise ValueError("version")
            return cls({n: FolderState.from_json(f) for n, f in data["folders"].items()})
        except (ValueError, KeyError, TypeError, AttributeError, IndexError):
            raise CursorExpired(
                "the stored IMAP sync position is unreadable; starting a full resync"
            ) from None


# -- parsing (pure) ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Fetched:
    """One FETCH response: what keepwarm needs of a message."""

    uid: int
    internaldate: datetime | None
    flags: tuple[str, ...]
    header: bytes
    labels: tuple[str, ...] = ()
    thread: str | None = None


def parse_internaldate(value: str) -> datetime | None:
    """``"17-Jul-1996 02:44:25 -0700"`` -> aware UTC datetime (locale-independent)."""
    try:
        date, clock, zone = value.strip().split()
        d, mon, y = date.split("-")
        hh, mm, ss = clock.split(":")
        sign = -1 if zone[0] == "-" else 1
        offset = sign * (int(zone[1:3]) * 60 + int(zone[3:5]))
        local = datetime(
            int(y), _MONTHS[mon.lower()], int(d), int(hh), int(mm), int(ss), tzinfo=UTC
        )
    except (ValueError, KeyError, IndexError):
        return None
    return local - timedelta(minutes=offset)


def _find(meta: bytes, key: bytes) -> int:
    """Index just after ``key`` as a FETCH item name (preceded by "(" or " "), or -1."""
    start = 0
    while True:
        i = meta.find(key, start)
        if i < 0:
            return -1
        if i > 0 and meta[i - 1 : i] in (b"(", b" "):
            return i + len(key)
        start = i + 1


def parse_fetch_item(meta: bytes, header: bytes) -> Fetched | None:
    """Fast parse of one plain FETCH response (UID, INTERNALDATE, FLAGS + one header literal).

    ``meta`` is the response text around the literal. None when UID is missing (an unsolicited
    flag update).
    """
    i = _find(meta, b"UID ")
    if i < 0:
        return None
    j = i
    while j < len(meta) and 48 <= meta[j] <= 57:
        j += 1
    if j == i:
        return None
    uid = int(meta[i:j])
    internal = None
    k = _find(meta, b'INTERNALDATE "')
    if k >= 0:
        end = meta.find(b'"', k)
        internal = parse_internaldate(meta[k:end].decode("ascii", "replace"))
    flags: tuple[str, ...] = ()
    f = _find(meta, b"FLAGS (")
    if f >= 0:
        end = meta.find(b")", f)
        flags = tuple(meta[f:end].decode("ascii", "replace").split())
    return Fetched(uid, internal, flags, header)


def split_fetch_responses(data: Sequence[Any]) -> Iterator[tuple[bytes, list[bytes]]]:
    """Group imaplib's FETCH data into ``(meta, [literals...])`` per message.

    imaplib gives ``(prefix, literal)`` tuples followed by the trailer line (``b")"`` or
    ``b" UID 7)"``); a response without a literal is a plain bytes item.
    """
    meta: bytes | None = None
    literals: list[bytes] = []
    for item in data:
        if isinstance(item, tuple):
            prefix, lit = item[0], item[1]
            if meta is not None and not _continues(prefix):
                yield meta, literals
                meta, literals = None, []
            meta = prefix if meta is None else meta + prefix
            literals.append(lit)
        elif isinstance(item, bytes):
            if meta is not None and _continues(item):
                meta += item
                continue
            if meta is not None:
                yield meta, literals
            meta, literals = item, []
    if meta is not None:
        yield meta, literals


def _continues(item: bytes) -> bool:
    """A trailer after a literal starts with ")" or " " (more items); a new response with a digit."""
    return item[:1] in (b")", b" ")


def folder_skipped(
    flags: Sequence[bytes | str], name: str, delimiter: str, special_use: bool
) -> bool:
    """Junk, Trash and Drafts: by SPECIAL-USE flag when the server has them, else by name."""
    norm = {(f.decode() if isinstance(f, bytes) else f).lower().encode() for f in flags}
    if {b"\\noselect", b"\\nonexistent"} & norm:
        return True
    if special_use:
        return bool(SKIP_SPECIAL_USE & norm)
    leaf = name.rsplit(delimiter, 1)[-1] if delimiter else name
    return leaf.strip().lower() in SKIP_NAMES


def imap_date(dt: datetime) -> str:
    """``1-Feb-2024`` for SEARCH SINCE (locale-independent)."""
    mon = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"][
        dt.month - 1
    ]
    return f"{dt.day}-{mon}-{dt.year}"


def parse_search(data: Sequence[Any], esearch: bool) -> UidSet:
    """UIDs from the untagged SEARCH (``1 2 3``) or ESEARCH (``... UID ALL 1:3,7``) responses."""
    out = UidSet()
    for item in data:
        if item is None:
            continue
        text = item.decode("ascii", "replace") if isinstance(item, bytes) else str(item)
        if esearch:
            parts = text.split()
            for i, p in enumerate(parts[:-1]):
                if p.upper() == "ALL":
                    for lo, hi in UidSet.parse(parts[i + 1]).ranges:
                        out.add_range(lo, hi)
        else:
            nums = sorted(int(n) for n in text.split() if n.isdigit())
            out.add_sorted(nums)
    return out


def _chunks(uids: Sequence[int], n: int) -> Iterator[Sequence[int]]:
    for i in range(0, len(uids), n):
        yield uids[i : i + n]


# -- the connection ------------------------------------------------------------------------------
class _Session:
    """One logged-in connection with the few raw commands keepwarm needs."""

    def __init__(self, client: IMAPClient, settings: ImapSettings) -> None:
        self.client = client
        self.imap: Any = client._imap
        self.imap.debug = 0  # imapclient logs every line at debug level otherwise: slow
        caps = {
            c.decode().upper() if isinstance(c, bytes) else str(c).upper()
            for c in client.capabilities()
        }
        ext = settings.use_extensions
        self.esearch = ext and "ESEARCH" in caps
        self.gmail = ext and "X-GM-EXT-1" in caps
        self.special_use = "SPECIAL-USE" in caps
        self.list_status = ext and "LIST-STATUS" in caps
        self._statuses: dict[str, tuple[int, int, int]] = {}
        self.round_trips = 0

    def close(self) -> None:
        try:
            self.client.logout()
        except Exception:  # the connection may already be gone
            with contextlib.suppress(Exception):
                self.client.shutdown()

    def list_folders(self) -> list[tuple[tuple[bytes, ...], str, str]]:
        """The folders; with LIST-STATUS their STATUS comes in the same round trip."""
        self.round_trips += 1
        if self.list_status:
            raw, self._statuses = self._list_with_status()
        else:
            raw, self._statuses = self.client.list_folders(), {}
        out = []
        for flags, delim, name in raw:
            d = delim.decode() if isinstance(delim, bytes) else (delim or "")
            out.append((tuple(flags), d, str(name)))
        if any(SKIP_SPECIAL_USE & {f.lower() for f in fl} for fl, _d, _n in out):
            self.special_use = True
        return out

    def _list_with_status(self) -> tuple[list[Any], dict[str, tuple[int, int, int]]]:
        returns = "(SPECIAL-USE STATUS" if self.special_use else "(STATUS"
        tag = self.imap._command(
            "LIST", '""', '"*"', "RETURN", returns, "(UIDVALIDITY UIDNEXT MESSAGES))"
        )
        typ, dat = self.imap._command_complete("LIST", tag)
        if typ != "OK":
            raise imaplib.IMAP4.error(f"LIST failed: {dat!r}")
        typ, list_data = self.imap._untagged_response(typ, dat, "LIST")
        status_data = self.imap.untagged_responses.pop("STATUS", [])
        statuses: dict[str, tuple[int, int, int]] = {}
        for item in status_data:
            try:
                name, items = parse_response([item])[:2]
                values = dict(zip(items[::2], items[1::2], strict=False))
                key = decode_utf7(name) if isinstance(name, bytes) else str(name)
                statuses[key] = (
                    int(values[b"UIDVALIDITY"]),
                    int(values[b"UIDNEXT"]),
                    int(values[b"MESSAGES"]),
                )
            except (imaplib.IMAP4.error, ValueError, KeyError, TypeError):
                continue  # that folder gets its own STATUS
        return self.client._proc_folder_list(list_data), statuses

    def status(self, folder: str) -> tuple[int, int, int]:
        """(UIDVALIDITY, UIDNEXT, MESSAGES)."""
        cached = self._statuses.pop(folder, None)
        if cached is not None:
            return cached
        self.round_trips += 1
        st = self.client.folder_status(folder, ["UIDVALIDITY", "UIDNEXT", "MESSAGES"])
        return int(st[b"UIDVALIDITY"]), int(st.get(b"UIDNEXT", 0)), int(st[b"MESSAGES"])

    def examine(self, folder: str) -> int:
        self.round_trips += 1
        info = self.client.select_folder(folder, readonly=True)
        return int(info[b"UIDVALIDITY"])

    def _uid(self, command: str, *args: str) -> list[Any]:
        self.round_trips += 1
        tag = self.imap._command("UID", command, *args)
        typ, dat = self.imap._command_complete(command, tag)
        if typ != "OK":
            detail = (
                dat[-1].decode("utf-8", "replace") if dat and isinstance(dat[-1], bytes) else dat
            )
            log.debug("refused UID %s detail: %r", command, dat)
            raise SourceError(
                f"the IMAP server refused to {'search' if command == 'SEARCH' else 'read'} "
                f'a folder (it said "{_server_words(str(detail))}")'
            )
        name = "ESEARCH" if command == "SEARCH" and self.esearch else command
        typ, data = self.imap._untagged_response(typ, dat, name)
        return [d for d in data if d is not None]

    def search(self, *criteria: str) -> UidSet:
        args = ("RETURN", "(ALL)", *criteria) if self.esearch else criteria
        return parse_search(self._uid("SEARCH", *args), self.esearch)

    def fetch(self, uids: Sequence[int]) -> list[Fetched]:
        items = "(UID INTERNALDATE FLAGS " + HEADER_ITEM
        if self.gmail:
            items += " X-GM-LABELS X-GM-THRID"
        data = self._uid("FETCH", str(UidSet.of(uids)), items + ")")
        if self.gmail:
            return self._parse_gmail(data)
        out = []
        for meta, literals in split_fetch_responses(data):
            if len(literals) > 1:
                out.extend(self._parse_gmail([(meta, literals[0]), b")"]))
                continue
            fetched = parse_fetch_item(meta, literals[0] if literals else b"")
            if fetched is not None:
                out.append(fetched)
        return out

    def fetch_message_ids(self, uids: Sequence[int]) -> list[str]:
        """The Message-IDs of ``uids`` in the selected folder (one header field, nothing else)."""
        data = self._uid(
            "FETCH", str(UidSet.of(uids)), "(UID BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])"
        )
        out = []
        for _meta, literals in split_fetch_responses(data):
            for lit in literals:
                mid = normalize_message_id(first(parse_header_block(lit), "message-id"))
                if mid:
                    out.append(mid)
        return out

    def _parse_gmail(self, data: list[Any]) -> list[Fetched]:
        out = []
        try:
            parsed = parse_fetch_response(data, True, True)
        except (imaplib.IMAP4.error, ValueError) as exc:
            log.debug("unreadable FETCH response: %r", exc)
            raise SourceError(
                "the IMAP server sent message headers in a form keepwarm cannot read; "
                "run with -vv for the details"
            ) from None
        for uid, items in parsed.items():
            header = b""
            for k, v in items.items():
                if isinstance(k, bytes) and k.startswith(b"BODY[HEADER") and isinstance(v, bytes):
                    header = v
            when = items.get(b"INTERNALDATE")
            if isinstance(when, datetime):
                when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
            labels = tuple(
                (decode_utf7(lb) if isinstance(lb, bytes) else str(lb))
                for lb in items.get(b"X-GM-LABELS", ())
            )
            flags = tuple(
                f.decode("ascii", "replace") if isinstance(f, bytes) else str(f)
                for f in items.get(b"FLAGS", ())
            )
            thrid = items.get(b"X-GM-THRID")
            out.append(
                Fetched(
                    int(uid),
                    when if isinstance(when, datetime) else None,
                    flags,
                    header,
                    labels,
                    str(thrid) if thrid else None,
                )
            )
        return out


# -- the connector -------------------------------------------------------------------------------
@dataclass
class _Final:
    """What remains to do for a folder after its new mail: deletions, then mark it clean."""

    name: str
    deleted: UidSet
    check: tuple[int, int, int] | None
    gone: bool = False  # the folder left the selection: forget it entirely
    vanished: bool = False  # ... because the server no longer has it (not the config)


class ImapConnector:
    """Reads message headers from an IMAP account. See the module docstring for the protocol."""

    kind = "imap"

    def __init__(
        self,
        account: str,
        settings: ImapSettings,
        *,
        now: Callable[[], datetime] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.account = account
        self.settings = settings
        self._now = now or (lambda: datetime.now(UTC))
        self._sleep = sleep
        self.round_trips = 0  # of the last sync, for the benchmark

    # -- public -------------------------------------------------------------------------------
    def sync(self, cursor: str | None) -> Iterator[Batch]:
        """Batches in order. With ``prefetch`` a worker thread reads the next FETCH from the
        server while the caller stores the previous batch (each batch's cursor is fixed when it
        is made, so abandoning the generator at any yield is safe)."""
        if not self.settings.prefetch:
            yield from self._sync(cursor)
            return
        q: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=1)
        stop = threading.Event()

        def produce() -> None:
            gen = self._sync(cursor)
            try:
                for batch in gen:
                    while not stop.is_set():
                        try:
                            q.put(("batch", batch), timeout=0.1)
                            break
                        except queue.Full:
                            continue
                    if stop.is_set():
                        return
                q.put(("done", None))
            except BaseException as exc:  # handed to the caller's thread
                q.put(("error", exc))
            finally:
                gen.close()

        worker = threading.Thread(target=produce, name=f"imap-{self.account}", daemon=True)
        worker.start()
        try:
            while True:
                kind, value = q.get()
                if kind == "batch":
                    yield value
                elif kind == "done":
                    return
                else:
                    raise value
        finally:
            stop.set()
            with contextlib.suppress(queue.Empty):
                q.get_nowait()  # unblock a worker waiting to hand over a batch
            worker.join(self.settings.timeout + 5)

    def _sync(self, cursor: str | None) -> Generator[Batch, None, None]:
        state = SyncState.load(cursor)
        password = self.settings.password()
        self.round_trips = 0
        failures = 0
        while True:
            session: _Session | None = None
            try:
                session = self._connect(password)
                for batch in self._pass(session, state):
                    failures = 0
                    yield batch
                return
            except _NETWORK_ERRORS as exc:
                log.debug("account %s: connection error detail: %r", self.account, exc)
                failures += 1
                if failures > self.settings.retries:
                    raise TransientError(
                        f"the connection to {self.settings.host} keeps failing ({_describe(exc)}); "
                        "keepwarm will retry later"
                    ) from None
                delay = self.settings.retry_base * (2 ** (failures - 1))
                log.info(
                    "account %s: connection lost (%s); reconnecting in %.1fs",
                    self.account,
                    _describe(exc),
                    delay,
                )
                self._sleep(random.uniform(delay / 2, delay))
            except imaplib.IMAP4.error as exc:  # a NO or BAD answer
                text = str(exc)
                log.debug("account %s: refused command detail: %r", self.account, exc)
                if any(
                    code in text for code in ("[UNAVAILABLE]", "[INUSE]", "[SERVERBUG]", "[LIMIT]")
                ):
                    raise TransientError(
                        f"the IMAP server {self.settings.host} is busy or unavailable "
                        f'(it said "{_server_words(text)}")'
                    ) from None
                raise SourceError(
                    f"the IMAP server {self.settings.host} refused a command "
                    f'(it said "{_server_words(text)}")'
                ) from None
            finally:
                if session is not None:
                    self.round_trips += session.round_trips
                    session.close()

    def check(self) -> str:
        """Log in and list the folders a sync would read (for ``keepwarm doctor``); raises the
        same errors as :meth:`sync`, and never fetches a message."""
        password = self.settings.password()
        try:
            session = self._connect(password)
        except _NETWORK_ERRORS as exc:
            raise TransientError(
                f"cannot reach the IMAP server {self.settings.host} ({_describe(exc)})"
            ) from None
        try:
            folders = self._select(session, session.list_folders())
        except imaplib.IMAP4.error as exc:
            raise SourceError(
                f"the IMAP server {self.settings.host} refused a command "
                f'(it said "{_server_words(str(exc))}")'
            ) from None
        except _NETWORK_ERRORS as exc:
            raise TransientError(
                f"the connection to {self.settings.host} dropped ({_describe(exc)})"
            ) from None
        finally:
            session.close()
        return f"login accepted; {len(folders)} folder(s) to read"

    # -- connecting ---------------------------------------------------------------------------
    def _ssl_context(self) -> ssl.SSLContext:
        ca = self.settings.ca_file
        try:
            return ssl.create_default_context(cafile=str(ca) if ca else None)
        except (OSError, ssl.SSLError) as exc:
            raise SourceError(f"cannot load the CA certificates from ca_file {ca}: {exc}") from None

    def _connect(self, password: str) -> _Session:
        s = self.settings
        host, port = s.host, s.effective_port
        if s.security == "none" and not _loopback(host):
            raise SourceError(
                f'security = "none" would send your password to {host} in clear text; '
                'it is allowed only towards a loopback address (use "tls" or "starttls")'
            )
        ctx = self._ssl_context() if s.security in ("tls", "starttls") else None
        try:
            client = IMAPClient(
                host, port, ssl=s.security == "tls", ssl_context=ctx, timeout=s.timeout
            )
            if s.security == "starttls":
                if not client.has_capability("STARTTLS"):
                    raise SourceError(
                        f"the IMAP server {host}:{port} does not offer STARTTLS; "
                        'use security = "tls" (usually port 993)'
                    )
                client.starttls(ctx)
        except ssl.SSLCertVerificationError as exc:
            raise SourceError(
                f"the certificate of {host}:{port} could not be verified ({exc.verify_message}); "
                "if the server uses a private CA, set ca_file to its certificate"
            ) from None
        except (ssl.SSLEOFError, ssl.SSLZeroReturnError):
            raise  # the connection dropped during the handshake: retried like any drop
        except ssl.SSLError as exc:
            raise SourceError(
                f"TLS with {host}:{port} failed ({exc.reason or exc}); check that port {port} "
                f'expects security = "{s.security}" (993 is usually "tls", 143 "starttls")'
            ) from None
        if client.has_capability("LOGINDISABLED"):
            client.shutdown()
            raise SourceError(
                f"the IMAP server {host} refuses passwords on an unencrypted connection; "
                'use security = "starttls" or "tls"'
            )
        try:
            client.login(s.username, password)
        except LoginError as exc:
            client.shutdown()
            text = str(exc)
            if "UNAVAILABLE" in text or "SERVERBUG" in text:
                raise TransientError(f"the IMAP server {host} cannot log in right now") from None
            raise AuthRequired(
                f"the IMAP server {host} rejected the login (username or password wrong, "
                "or the provider needs an app password)",
                fix=f"check the password in {s.password_hint}; run keepwarm doctor",
            ) from None
        return _Session(client, s)

    # -- one pass -----------------------------------------------------------------------------
    def _select(
        self, session: _Session, listed: list[tuple[tuple[bytes, ...], str, str]]
    ) -> list[str]:
        s = self.settings
        names = [n for _f, _d, n in listed]
        if session.gmail and not s.folders:  # one "All Mail" pass instead of every label
            for flags, _d, name in listed:
                if b"\\all" in {f.lower() for f in flags}:
                    return [name]
        chosen = [n for f, d, n in listed if not folder_skipped(f, n, d, session.special_use)]
        if s.folders:
            missing = [f for f in s.folders if not _has_folder(names, f)]
            if missing:
                raise SourceError(
                    f"folder(s) {', '.join(missing)} not found on {s.host}; "
                    f"available folders: {', '.join(sorted(names))}"
                )
            chosen = [n for n in names if any(_same_folder(n, f) for f in s.folders)]
        return [n for n in chosen if not any(_same_folder(n, x) for x in s.exclude_folders)]

    def _pass(self, session: _Session, state: SyncState) -> Iterator[Batch]:
        before = state.dump()
        listed = session.list_folders()
        names = [n for _f, _d, n in listed]
        folders = self._select(session, listed)
        statuses = {name: session.status(name) for name in folders}
        work = [n for n in folders if not _clean(state.folders.get(n), statuses[n])]
        total = sum(self._estimate(state.folders.get(n), statuses[n]) for n in work)
        progress = [0, total]
        finals: list[_Final] = [
            _Final(n, UidSet(), None, gone=True, vanished=not _has_folder(names, n))
            for n in state.folders
            if n not in folders
        ]
        for name in work:
            yield from self._folder(session, state, name, statuses[name], finals, progress)
        spam: list[str] = []
        if any(fin.deleted for fin in finals):
            spam = self._spam_sightings(session, listed)
        yield from self._finish(state, finals, progress, before, spam)

    def _spam_sightings(
        self, session: _Session, listed: list[tuple[tuple[bytes, ...], str, str]]
    ) -> list[str]:
        """Message-IDs in the account's spam folder(s), newest SPAM_LOOKBACK of each: a deleted
        message found there was reported as spam (IMAP cannot say where a message went)."""
        ids: list[str] = []
        for flags, delim, name in listed:
            norm = {f.lower() for f in flags}
            is_junk = b"\\junk" in norm or (
                not session.special_use
                and (name.rsplit(delim, 1)[-1] if delim else name).strip().lower() in JUNK_NAMES
            )
            if not is_junk or b"\\noselect" in norm:
                continue
            session.examine(name)
            uids = list(session.search("ALL"))[-SPAM_LOOKBACK:]
            if uids:
                ids += session.fetch_message_ids(uids)
        return ids

    def _estimate(self, st: FolderState | None, status: tuple[int, int, int]) -> int:
        if st is None or not st.done or st.check is None:
            return status[2]
        return max(0, status[1] - st.check[1])

    def _folder(
        self,
        session: _Session,
        state: SyncState,
        name: str,
        status: tuple[int, int, int],
        finals: list[_Final],
        progress: list[int],
    ) -> Iterator[Batch]:
        uidvalidity = session.examine(name)
        st = state.folders.get(name)
        if st is not None and st.uidvalidity != uidvalidity:
            log.info("account %s: a folder's UIDVALIDITY changed; re-reading it", self.account)
            fresh = FolderState(uidvalidity, stale=[*st.stale, (st.uidvalidity, st.known)])
            st = fresh
        elif st is None:
            st = FolderState(uidvalidity)
        everything = session.search("ALL")
        if st.done:
            wanted = everything
        else:
            criteria = [f"{st.last_uid + 1}:*"]
            if self.settings.backfill is not None:
                criteria += ["SINCE", imap_date(self._now() - self.settings.backfill)]
            wanted = session.search("UID", *criteria)
        new = [u for u in wanted if u > st.last_uid]
        deleted = st.known.minus(everything)
        if not new and not st.done:
            st = st.copy()
            st.done = True
        state.folders[name] = st  # nothing yielded yet for it; commit with the next batch
        for chunk in _chunks(new, self.settings.fetch_chunk):
            fetched = session.fetch(chunk)
            batch = self._records(name, uidvalidity, fetched)
            nxt = st.copy()
            nxt.last_uid = chunk[-1]
            nxt.known.add_sorted(sorted(f.uid for f in fetched))
            nxt.done = nxt.done or chunk[-1] == new[-1]
            state.folders[name] = st = nxt
            progress[0] += len(chunk)
            batch.cursor = state.dump()
            batch.progress = Progress(progress[0], max(progress), phase=f"folder {name}")
            yield batch
        check = (status[0], status[1], status[2]) if status[0] == uidvalidity else None
        finals.append(_Final(name, deleted, check))

    def _records(self, folder: str, uidvalidity: int, fetched: list[Fetched]) -> Batch:
        batch = Batch()
        now = self._now()
        for f in fetched:
            reason = _skip_reason(f)
            rec: MessageMeta | str
            if reason is None:
                rec = message_from_headers(
                    parse_header_block(f.header),
                    account=self.account,
                    provider_id=f"{folder}/{uidvalidity}/{f.uid}",
                    fallback_date=f.internaldate,
                    now=now,
                    folder=folder,
                    labels=f.labels,
                    thread_hint=f.thread,
                    keep_subject=self.settings.keep_subjects,
                )
            else:
                rec = reason
            if isinstance(rec, str):
                batch.skipped[rec] = batch.skipped.get(rec, 0) + 1
            else:
                batch.messages.append(rec)
        return batch

    def _finish(
        self,
        state: SyncState,
        finals: list[_Final],
        progress: list[int],
        before: str,
        spam: list[str],
    ) -> Iterator[Batch]:
        """Deletions (after every folder's new mail, so moves keep their message), then clean marks.

        Deletions are idempotent, so a folder's state changes only with its last deletion batch:
        if the sync stops earlier, the next one recomputes and re-sends them. A folder that left
        the server is ``vanished`` (kept, with a notice); one the config no longer selects is
        ``unselected``; a message gone from a folder is ``deleted`` (``spam`` when it is now in
        the spam folder: the store checks ``spam``).
        """
        last_cursor: str | None = before
        for fin in finals:
            st = state.folders.get(fin.name)
            if st is None:
                continue
            doomed: list[tuple[int, int]] = [(uv, u) for uv, s in st.stale for u in s]
            doomed += [(st.uidvalidity, u) for u in (st.known if fin.gone else fin.deleted)]
            reason: DeletionReason = "deleted"
            notices: list[str] = []
            if fin.gone:
                reason = "vanished" if fin.vanished else "unselected"
                if fin.vanished and doomed:
                    notices.append(
                        kept_notice(f"folder {fin.name} is gone from the server", len(doomed))
                    )
            after = st.copy()
            after.known = after.known.minus(fin.deleted)
            after.stale = []
            after.check = fin.check if after.done else None
            for i in range(0, len(doomed), DELETE_CHUNK):
                if i + DELETE_CHUNK >= len(doomed):
                    self._commit_folder(state, fin, after)
                batch = Batch(
                    deletions=[
                        Deletion(self.account, f"{fin.name}/{uv}/{u}", reason=reason)
                        for uv, u in doomed[i : i + DELETE_CHUNK]
                    ],
                    cursor=state.dump(),
                    progress=Progress(progress[0], max(progress), phase="deletions"),
                    notices=notices if i == 0 else [],
                    spam_message_ids=spam if reason == "deleted" else [],
                )
                last_cursor = batch.cursor
                yield batch
            if not doomed:
                self._commit_folder(state, fin, after)
        final = state.dump()
        if final != last_cursor:
            yield Batch(cursor=final, progress=Progress(progress[0], max(progress), phase="done"))

    @staticmethod
    def _commit_folder(state: SyncState, fin: _Final, after: FolderState) -> None:
        if fin.gone:
            state.folders.pop(fin.name, None)
        else:
            state.folders[fin.name] = after


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _clean(st: FolderState | None, status: tuple[int, int, int]) -> bool:
    return st is not None and st.done and not st.stale and st.check == status


def _skip_reason(f: Fetched) -> str | None:
    lowered = {x.lower() for x in f.flags}
    if "\\draft" in lowered:
        return "draft"
    if GMAIL_SKIP_LABELS & {x.lower() for x in f.labels}:
        return "spam or trash"
    return None


def _same_folder(a: str, b: str) -> bool:
    if a.upper() == "INBOX" and b.upper() == "INBOX":
        return True
    return a == b


def _has_folder(names: Sequence[str], wanted: str) -> bool:
    return any(_same_folder(n, wanted) for n in names)


def _describe(exc: BaseException) -> str:
    """What happened to the connection, in words (the protocol detail is logged at debug)."""
    text = str(exc)
    if isinstance(exc, socket.timeout | TimeoutError) or "timed out" in text:
        return "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionResetError):
        return "the connection was reset"
    if isinstance(exc, socket.gaierror):
        return "the host name could not be resolved"
    if isinstance(exc, ssl.SSLEOFError | ssl.SSLZeroReturnError):
        return "the server closed the connection during the TLS handshake"
    if isinstance(exc, ssl.SSLError):
        return f"a TLS error ({exc.reason or 'unknown'})"
    if "unterminated line" in text or "command: FETCH" in text or "FETCH" in text:
        return "the server closed the connection in the middle of a response"
    if isinstance(exc, EOFError | BrokenPipeError) or "EOF" in text or "socket error" in text:
        return "the server closed the connection"
    if isinstance(exc, imaplib.IMAP4.abort):
        return "the server sent something that is not IMAP, and the connection was dropped"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return "a network error"


_QUOTED = re.compile(r"""b(['"])(.*?)(?<!\\)\1""")
_CODE = re.compile(r"^\[[A-Z-]+(?: [^\]]*)?\]\s*")


def _server_words(text: str) -> str:
    """The human part of an IMAP error (``... => b'[NONEXISTENT] Mailbox doesn't exist: X'`` ->
    ``Mailbox doesn't exist: X``): the server's own sentence, without Python byte reprs or
    response codes."""
    quoted = [m.group(2) for m in _QUOTED.finditer(text)]
    words = " ".join(quoted) if quoted else text.split("=>", 1)[-1]
    words = words.replace("\\'", "'").replace('\\"', '"')
    words = _CODE.sub("", words.strip())
    return " ".join(words.split())[:200] or "no reason given"
