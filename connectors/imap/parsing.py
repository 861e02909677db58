"""Pure parsing of IMAP answers: FETCH responses, SEARCH/ESEARCH results, INTERNALDATE, folder
selection by SPECIAL-USE flag or name, and the words of an error for the user. No I/O."""

from __future__ import annotations

import imaplib
import re
import socket
import ssl
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from keepwarm.connectors.imap.state import UidSet

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
GMAIL_SKIP_LABELS = frozenset({"\\spam", "\\trash", "\\draft"})
_MONTHS = {
    m: i
    for i, m in enumerate(
        ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], 1
    )
}


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


def skip_reason(f: Fetched) -> str | None:
    lowered = {x.lower() for x in f.flags}
    if "\\draft" in lowered:
        return "draft"
    if GMAIL_SKIP_LABELS & {x.lower() for x in f.labels}:
        return "spam or trash"
    return None


def same_folder(a: str, b: str) -> bool:
    if a.upper() == "INBOX" and b.upper() == "INBOX":
        return True
    return a == b


def has_folder(names: Sequence[str], wanted: str) -> bool:
    return any(same_folder(n, wanted) for n in names)


# What happened to a connection, by the exception's type or words in its text, checked in order:
# (types, words, description). A TLS error with its reason comes between the two tables.
_Cases = tuple[tuple[tuple[type[BaseException], ...], tuple[str, ...], str], ...]
_CONNECTION_CASES: _Cases = (
    ((socket.timeout, TimeoutError), ("timed out",), "timed out"),
    ((ConnectionRefusedError,), (), "connection refused"),
    ((ConnectionResetError,), (), "the connection was reset"),
    ((socket.gaierror,), (), "the host name could not be resolved"),
    (
        (ssl.SSLEOFError, ssl.SSLZeroReturnError),
        (),
        "the server closed the connection during the TLS handshake",
    ),
)
_STREAM_CASES: _Cases = (
    (
        (),
        ("unterminated line", "FETCH"),
        "the server closed the connection in the middle of a response",
    ),
    ((EOFError, BrokenPipeError), ("EOF", "socket error"), "the server closed the connection"),
    (
        (imaplib.IMAP4.abort,),
        (),
        "the server sent something that is not IMAP, and the connection was dropped",
    ),
)


def _case(exc: BaseException, text: str, cases: _Cases) -> str | None:
    for types, words, description in cases:
        if isinstance(exc, types) or any(w in text for w in words):
            return description
    return None


def describe_error(exc: BaseException) -> str:
    """What happened to the connection, in words (the protocol detail is logged at debug)."""
    text = str(exc)
    found = _case(exc, text, _CONNECTION_CASES)
    if found is None and isinstance(exc, ssl.SSLError):
        found = f"a TLS error ({exc.reason or 'unknown'})"
    found = found or _case(exc, text, _STREAM_CASES)
    if found is None and isinstance(exc, OSError) and exc.strerror:
        found = exc.strerror.lower()
    return found or "a network error"


_QUOTED = re.compile(r"""b(['"])(.*?)(?<!\\)\1""")
_CODE = re.compile(r"^\[[A-Z-]+(?: [^\]]*)?\]\s*")


def server_words(text: str) -> str:
    """The human part of an IMAP error (``... => b'[NONEXISTENT] Mailbox doesn't exist: X'`` ->
    ``Mailbox doesn't exist: X``): the server's own sentence, without Python byte reprs or
    response codes."""
    quoted = [m.group(2) for m in _QUOTED.finditer(text)]
    words = " ".join(quoted) if quoted else text.split("=>", 1)[-1]
    words = words.replace("\\'", "'").replace('\\"', '"')
    words = _CODE.sub("", words.strip())
    return " ".join(words.split())[:200] or "no reason given"
