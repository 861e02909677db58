"""RFC 5322 / RFC 2047 header parsing and address normalization, shared by every mail connector.

Only the header block is ever looked at: :func:`header_block` stops at the first empty line and
caps the size, so a body is never read into a record. Everything here is total: on arbitrary
bytes it returns something or a skip reason, and never raises.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from email.header import decode_header
from email.utils import getaddresses, parsedate_tz

from keepwarm.connectors.base import Address, MessageMeta
from keepwarm.core.vocabulary import (
    FIRST_PREFIX,
    FORWARD_WORDS,
    REPLY_WORDS,
    SUBJECT_PREFIXES,
)

# Header fields a mail connector needs (IMAP FETCH list, Gmail metadataHeaders allow-list).
WANTED_HEADERS: tuple[str, ...] = (
    "From",
    "Sender",
    "To",
    "Cc",
    "Bcc",
    "Reply-To",
    "Date",
    "Subject",
    "Message-ID",
    "In-Reply-To",
    "References",
    "List-Id",
    "List-Unsubscribe",
    "List-Post",
    "Precedence",
    "Auto-Submitted",
    "X-Auto-Response-Suppress",
    "X-Autoreply",
    "X-Autorespond",
    "Return-Path",
    "X-Keepwarm-Digest",
    # mass-mailer evidence (marketing sent without list headers)
    "Errors-To",
    "X-Mailer",
    "Feedback-ID",
    "X-ListID",
    "X-SubID",
    "X-Campaign",
    "X-CampaignID",
    "X-MC-User",
    "X-Mailgun-Sid",
    "X-SG-EID",
    "X-SFMC-Stack",
    "X-CSA-Complaints",
    # display names in archives that keep them apart from the addresses (Lotus Notes, Enron)
    "X-From",
    "X-To",
    "X-cc",
)

# Headers only mass mailers set: their presence makes a message bulk mail ("bulk-mailer").
BULK_MAILER_HEADERS: tuple[str, ...] = (
    "errors-to",
    "feedback-id",
    "x-listid",
    "x-subid",
    "x-campaign",
    "x-campaignid",
    "x-mc-user",
    "x-mailgun-sid",
    "x-sg-eid",
    "x-sfmc-stack",
    "x-csa-complaints",
)
# X-Mailer values of mass-mailing software.
_BULK_MAILERS = re.compile(
    r"lyris|listmanager|listserv|majordomo|mailchimp|mailgun|sendgrid|exacttarget|responsys|"
    r"eloqua|marketo|constant ?contact|strongmail|cheetah|campaign|newsletter|bulk|mass ?mail|"
    r"e-?mail ?marketing|messagemedia|digital ?impact|kana|prolist|mailking|group ?mail",
    re.IGNORECASE,
)
# Folder names (any level of a folder path, case-insensitive, "_" and "-" as spaces) where mail
# clients file the user's own sent mail: mail found there is the user's whatever its From says
# (an assistant sending on the user's behalf). Gmail's SENT label is passed as the folder "SENT".
SENT_FOLDER_NAMES = frozenset(
    {
        "sent",
        "sent items",
        "sent mail",
        "sent messages",
        "sent email",
        "gesendet",
        "gesendete objekte",
        "gesendete elemente",
        "envoyes",
        "elements envoyes",
        "messages envoyes",
        "enviados",
        "elementos enviados",
        "itens enviados",
        "posta inviata",
        "inviata",
        "inviati",
        "verzonden",
        "verzonden items",
        "skickat",
        "skickade objekt",
        "sendt",
        "sendte elementer",
        "lahetetyt",
        "wyslane",
        "odeslane",
    }
)

MAX_HEADER_BLOCK = 256 * 1024  # a "megabyte header block" is cut here
MAX_FIELD = 16 * 1024  # one header value
MAX_ADDRESSES = 500  # per header
MAX_SUBJECT = 998

# Dates outside [EARLIEST, latest] are absurd: year 1706, the 1979-12-31 Lotus placeholder, 2028...
EARLIEST_DATE = datetime(1990, 1, 1, tzinfo=UTC)
FUTURE_SLACK = timedelta(days=2)

GMAIL_DOMAINS = frozenset({"gmail.com", "googlemail.com"})
_WS = re.compile(r"\s+")
_MSGID = re.compile(r"<([^<>\s]{1,500})>")
_ENCODED_WORD = re.compile(r"=\?[^?]*\?[bBqQ]\?[^?]*\?=")
_UNFOLD = re.compile(r"[ \t]*\r?\n[ \t]+")
_FIELD = re.compile(r"^([^\s:]{1,76})[ \t]*:([^\n]*)", re.MULTILINE)
_CTRL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


# -- header blocks -----------------------------------------------------------------------------
def header_block(data: bytes) -> bytes:
    """The bytes before the first empty line (the header block), capped at MAX_HEADER_BLOCK."""
    head = data[:MAX_HEADER_BLOCK]
    if head.startswith((b"\r\n", b"\n")):
        return b""
    cut = len(head)
    for sep in (b"\n\n", b"\r\n\r\n", b"\n\r\n"):
        i = head.find(sep, 0, cut + len(sep) - 1)  # only one that starts before the cut so far
        if i != -1 and i < cut:
            cut = i
    return head[:cut]


def _decode_bytes(raw: bytes) -> str:
    """UTF-8 where it is valid, line by line, else latin-1 (undeclared 8-bit headers mix both)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    lines = []
    for line in raw.split(b"\n"):
        try:
            lines.append(line.decode("utf-8"))
        except UnicodeDecodeError:
            lines.append(line.decode("latin-1"))
    return "\n".join(lines)


def parse_header_block(data: bytes | str) -> dict[str, list[str]]:
    """Parse a header block into ``{lowercased-name: [unfolded values...]}``.

    Accepts a whole message too: parsing stops at the first empty line. Lines that are not
    ``Name: value`` and not continuations are ignored (mbox ``From `` lines, garbage).
    """
    text = _decode_bytes(header_block(data)) if isinstance(data, bytes) else data[:MAX_HEADER_BLOCK]
    if not isinstance(data, bytes):
        end = re.search(r"\r?\n\r?\n", text)
        if end:
            text = text[: end.start()]
    out: dict[str, list[str]] = {}
    # Unfold continuation lines, then match whole "Name: value" lines (C-speed regexes). A
    # continuation of a garbage line joins that line and is dropped with it.
    for name, value in _FIELD.findall(_unfold(text)):
        out.setdefault(name.lower(), []).append(value.strip()[:MAX_FIELD])
    return out


_FOLD = re.compile(r"\n[ \t]+")


def _unfold(text: str) -> str:
    """Continuation lines joined to their line with one space (``_UNFOLD``). Where no line ends
    in a space or a tab, a CR before each LF can go first (values are stripped, so a CR at
    a line's end never reaches them) and a fold is an LF and its indent: found ten times faster
    (a regex that starts with a literal skips ahead; ``_UNFOLD`` tries every position)."""
    plain = text.replace("\r\n", "\n")
    if " \n" in plain or "\t\n" in plain:
        return _UNFOLD.sub(" ", text)
    return _FOLD.sub(" ", plain)


def first(headers: Mapping[str, Sequence[str]], name: str) -> str | None:
    values = headers.get(name if name.islower() else name.lower())
    return values[0] if values else None


# -- RFC 2047 -----------------------------------------------------------------------------------
def _decode_chunk(chunk: bytes, charset: str | None) -> str:
    for cs in (charset, "utf-8", "cp1252", "latin-1"):
        if not cs:
            continue
        cs = {"unknown-8bit": "latin-1", "x-unknown": "latin-1", "ks_c_5601-1987": "cp949"}.get(
            cs.lower(), cs
        )
        try:
            return chunk.decode(cs)
        except (LookupError, UnicodeDecodeError):
            continue
    return chunk.decode("latin-1")


def decode_words(value: str) -> str:
    """Decode RFC 2047 encoded words; wrong or missing charsets fall back to utf-8, cp1252, latin-1."""
    if "=?" not in value:
        return clean_text(value)
    try:
        pieces = decode_header(value)
    except Exception:  # email.header raises several types on garbage; treat as plain text
        return clean_text(value)
    out: list[str] = []
    for chunk, charset in pieces:
        out.append(chunk if isinstance(chunk, str) else _decode_chunk(chunk, charset))
    text = "".join(out)
    if _ENCODED_WORD.search(text):  # malformed words decode_header left alone
        text = _ENCODED_WORD.sub(lambda m: _decode_single(m.group(0)), text)
    return clean_text(text)


def _decode_single(word: str) -> str:
    try:
        pieces = decode_header(word)
    except Exception:
        return word
    return "".join(c if isinstance(c, str) else _decode_chunk(c, cs) for c, cs in pieces)


def clean_text(value: str) -> str:
    """Collapse whitespace, drop control and bidi-override characters."""
    if value.isprintable():  # no control or format character, and no space but " "
        return " ".join(value.split())
    return _WS.sub(" ", _CTRL.sub("", value)).strip()


# -- addresses ----------------------------------------------------------------------------------
INVALID_ADDRESS = "invalid address"  # the skip reason users see
_ANY_SPACE = re.compile(r"\s")  # the characters str.isspace() accepts
_ADDRESS_CTRL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_BAD_LOCAL = re.compile(r'[<>(),;:\\"\[\]]|=\?|\?=')  # specials, RFC 2047 encoded-word debris
_DOMAIN = re.compile(r"[a-z0-9_-]{1,63}(?:\.[a-z0-9_-]{1,63})*")  # letters, digits, - and _


@functools.lru_cache(maxsize=1 << 16)  # a mailbox names the same addresses again and again
def normalize_address(raw: str) -> str | None:
    """Normalize one bare address: case, IDNA domain, Gmail dots and plus tags. None if invalid.

    Invalid: no single "@", spaces or control characters anywhere, RFC 5322 specials or leftovers
    of an RFC 2047 encoded word ("=?", "?=") in the local part, a domain that is not dot-separated
    labels of letters, digits, "-" and "_" (after IDNA).
    """
    s = _bare_address(raw)
    if s is None:
        return None
    local, domain = s.split("@")
    ascii_domain = _ascii_domain(domain.strip(".").lower())
    if not local or ascii_domain is None or _BAD_LOCAL.search(local):
        return None
    local = local.lower()
    if ascii_domain in GMAIL_DOMAINS:
        local = local.split("+", 1)[0].replace(".", "")
        ascii_domain = "gmail.com"
        if not local:
            return None
    return f"{local}@{ascii_domain}"


def _bare_address(raw: str) -> str | None:
    """``raw`` without brackets, quotes and ``mailto:``; None unless it is one run of printable
    characters with a single "@"."""
    s = raw.strip().strip("<>").strip().strip("'\"").strip()
    if s.lower().startswith("mailto:"):
        s = s[7:]
    if not s or len(s) > 320 or _ANY_SPACE.search(s) or s.count("@") != 1:
        return None
    return None if _ADDRESS_CTRL.search(s) else s


def _ascii_domain(domain: str) -> str | None:
    """A lower-case domain in its ASCII (IDNA) form, or None when it is no valid domain (one
    label only is allowed for ``localhost``)."""
    if not domain or ("." not in domain and domain != "localhost"):
        return None
    if not domain.isascii():
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError:
            return None
    return domain if _DOMAIN.fullmatch(domain) else None


_HARD_ADDRESS_CHARS = re.compile(r'["()\\;:\[\]]')
_SIMPLE_NAMED = re.compile(r"([^<>@]*)<([^<>\s]*)>")
_SIMPLE_BARE = re.compile(r"[^<>\s]+")


def _simple_pairs(value: str) -> list[tuple[str, str]] | None:
    """``getaddresses`` for the common easy lists (``Name <a@b>, c@d``), several times faster;
    None when the value has quotes, comments, groups or anything unusual (the full parser runs).
    Equivalence with ``getaddresses`` on such values is checked by a test over the real corpora.
    """
    if _HARD_ADDRESS_CHARS.search(value):
        return _quoted_pairs(value) if '"' in value else None
    out: list[tuple[str, str]] = []
    for part in value.split(","):
        part = part.strip()
        if not part:
            continue
        m = _SIMPLE_NAMED.fullmatch(part)
        if m:
            out.append((" ".join(m.group(1).split()), m.group(2)))
        elif _SIMPLE_BARE.fullmatch(part) and "@" in part:
            out.append(("", part))
        else:
            return None
    return out


_QUOTED_ITEM = re.compile(r'[ \t]*"([^"\\]*)"[ \t]*<([^<>\s"@,]+@[^<>\s"@,]+)>[ \t]*(?:,|$)')
_OTHER_HARD = re.compile(r"[()\\;:\[\]]")


def _quoted_pairs(value: str) -> list[tuple[str, str]] | None:
    """The fast path for lists of ``"Last, First" <a@b>`` (Outlook, Lotus Notes exports), with
    plain items between them; None for anything else (the full parser runs)."""
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(value):
        m = _QUOTED_ITEM.match(value, pos)
        if m is not None:
            out.append((m.group(1), m.group(2)))
            pos = m.end()
            continue
        comma = value.find(",", pos)
        part = value[pos : comma if comma != -1 else len(value)]
        if '"' in part or _OTHER_HARD.search(part):
            return None
        simple = _simple_pairs(part) if part.strip() else []
        if simple is None:
            return None
        out += simple
        pos = comma + 1 if comma != -1 else len(value)
    return out


# An Exchange-internal address (X.500 DN) as Outlook PST exports write it for colleagues:
# ``Doe, Jane </O=ACME/OU=NA/CN=RECIPIENTS/CN=JDOE2>``. It becomes a pseudo address in the reserved
# ``.invalid`` domain, ``jdoe2@acme.x500.invalid``, so that such mail keeps its people: identity
# joins it to the person's real address by display name, and nothing is ever sent to it.
_X500 = re.compile(r"<\s*(/o=[^<>]+)>", re.IGNORECASE)
X500_DOMAIN = ".x500.invalid"


@functools.lru_cache(maxsize=1 << 14)
def x500_address(dn: str) -> str | None:
    """``/O=ACME/OU=NA/CN=RECIPIENTS/CN=JDOE2`` -> ``jdoe2@acme.x500.invalid``."""
    parts = [p.strip() for p in dn.strip().strip("/").split("/") if "=" in p]
    org = next((v for k, v in (p.split("=", 1) for p in parts) if k.strip().lower() == "o"), "")
    cns = [v for k, v in (p.split("=", 1) for p in parts) if k.strip().lower() == "cn"]
    cn = re.sub(r"[^a-z0-9._-]", "", cns[-1].lower()) if cns else ""
    org = re.sub(r"[^a-z0-9-]", "", org.lower())
    if not cn or not org:
        return None
    return f"{cn}@{org}{X500_DOMAIN}"


def _x500_pairs(value: str) -> tuple[list[tuple[str, str]], str]:
    """The X.500 entries of an address list as ``(name, pseudo address)`` pairs, and the rest of
    the value (ordinary addresses) for the usual parser."""
    pairs: list[tuple[str, str]] = []
    rest: list[str] = []
    pos = 0
    for m in _X500.finditer(value):
        segment = value[pos : m.start()]
        if "@" in segment:  # ordinary addresses before this entry: they go to the usual parser
            cut = segment.rfind(">") + 1 if ">" in segment else segment.rfind(",") + 1
            rest.append(segment[:cut])
            segment = segment[cut:]
        name = " ".join(segment.replace("<", " ").replace(">", " ").replace('"', " ").split())
        name = name.strip(" ,;")
        addr = x500_address(m.group(1))
        if addr:
            pairs.append((name, addr))
        pos = m.end()
    rest.append(value[pos:])
    return pairs, "".join(rest)


def _person_name(name: str) -> str:
    """``Doe, Jane`` -> ``Jane Doe`` (one comma between two parts)."""
    if name.count(",") == 1:
        last, first_ = (x.strip() for x in name.split(","))
        if last and first_:
            return f"{first_} {last}"
    return name


def display_name(name: str) -> str:
    """A display name as people read it: unquoted, at most 200 characters, and empty when it is only
    an address (Outlook and archives write ``"'bob@example.com'" <bob@example.com>``): an
    address is not a name, nor the name of a service."""
    name = name.strip(" '\"")[:200]
    return "" if "@" in name and normalize_address(name) is not None else name


def parse_addresses(value: str | None) -> tuple[Address, ...]:
    """Parse an address-list header value. Invalid entries are dropped; duplicates removed."""
    return parse_addresses_counted(value)[0]


def parse_addresses_counted(value: str | None) -> tuple[tuple[Address, ...], int]:
    """:func:`parse_addresses`, and how many entries looked like addresses but were invalid."""
    if not value:
        return (), 0
    if len(value) > _MEMO_MAX_LEN:
        return _parse_addresses(value)
    got = _ADDRESS_MEMO.get(value)
    if got is None:
        if len(_ADDRESS_MEMO) >= _MEMO_SIZE:
            _ADDRESS_MEMO.clear()
        got = _ADDRESS_MEMO[value] = _parse_addresses(value)
    return got


# A mailbox's From, To and Cc values repeat (the same people, written the same way): each
# distinct value is parsed once per process (a bounded memo of the results, which are immutable).
_ADDRESS_MEMO: dict[str, tuple[tuple[Address, ...], int]] = {}
_MEMO_SIZE = 1 << 14
_MEMO_MAX_LEN = 2048


def _parse_addresses(value: str) -> tuple[tuple[Address, ...], int]:
    value = value[:MAX_FIELD]
    x500: list[tuple[str, str]] = []
    if "/o=" in value.lower():
        x500, value = _x500_pairs(value)
    pairs = _simple_pairs(value)
    if pairs is None:
        try:
            pairs = getaddresses([value])
        except Exception:
            pairs = []
    seen: dict[str, Address] = {}
    invalid = 0
    for name, addr in x500:
        seen.setdefault(addr, Address(addr, _person_name(decode_words(name))[:200]))
    for name, addr in pairs[: MAX_ADDRESSES * 2]:
        email = normalize_address(addr)
        if email is None:
            # "Doe, John <john@example.com>" split at the comma, or "=?utf-8?...?= <x@y>"
            m = re.search(r"<([^<>\s]+@[^<>\s]+)>", name) if name else None
            email = normalize_address(m.group(1)) if m else None
            if email is None:
                invalid += "@" in addr or "@" in name
                continue
            name = name[: m.start()] if m else name
        if email not in seen:
            seen[email] = Address(email, display_name(decode_words(name)))
        if len(seen) >= MAX_ADDRESSES:
            break
    return tuple(seen.values()), invalid


# -- calendar participants that are not people -------------------------------------------------
_CALENDAR_IDS = (
    "resource.calendar.google.com",
    "group.calendar.google.com",
    "group.v.calendar.google.com",
    "import.calendar.google.com",
)
_LIST_OR_ROOM_NAME = re.compile(
    r"^(?:dl|distribution list)[\s_-]|\b(?:conference room|meeting room|conf\.? ?rm|boardroom)\b",
    re.IGNORECASE,
)

_DL_LOCAL = ("dl-", "dl_", "dl.")  # dl-sales@: a distribution list


def not_a_person(email: str, name: str = "") -> bool:
    """Is this calendar participant a room, a resource, a distribution list or a calendar's own
    id rather than a person? (``CUTYPE`` and the providers' resource flags are checked by the
    connectors; this catches what they leave: ``DL-...`` names, room names, calendar ids.)"""
    # No "@" in those ids or prefixes: the address ends with a calendar id exactly when its
    # domain does, and starts with "dl-" exactly when its local part does (identity asks this of
    # every address in the store, so it splits none).
    return (
        email.endswith(_CALENDAR_IDS)
        or email.startswith(_DL_LOCAL)
        or (_may_be_list_or_room(name) and _LIST_OR_ROOM_NAME.search(name) is not None)
    )


def _may_be_list_or_room(name: str) -> bool:
    """Can ``_LIST_OR_ROOM_NAME`` match? Its list names start with "d" and its room names hold
    "room" or "rm", in any case (only D/d, R/r, O/o and M/m match those letters when case is
    ignored): most names hold neither, and this look is cheaper than the search."""
    low = name.lower()
    return low[:1] == "d" or "rm" in low or "room" in low


# -- dates ----------------------------------------------------------------------------------------
def parse_date(value: str | None) -> datetime | None:
    """Parse an RFC 5322 date and its broken real-world variants into aware UTC, or None."""
    if not value:
        return None
    v = value.strip()[:200]
    v = re.sub(r"\s*\(.*?\)\s*$", "", v)  # trailing "(PST)" comments
    v = v.replace(",", ", ").replace("  ", " ")
    try:
        parts = parsedate_tz(v)
    except Exception:
        parts = None
    if parts is None:
        return _parse_iso(v)
    year, month, day, hh, mm, ss = parts[:6]
    offset = parts[9] or 0
    if year < 100:
        year += 2000 if year < 50 else 1900
    if abs(offset) > 14 * 3600:
        offset = 0
    try:
        dt = datetime(year, month, day, min(hh, 23), min(mm, 59), min(ss, 59), tzinfo=UTC)
    except (ValueError, OverflowError):
        return None
    return dt - timedelta(seconds=offset)


def _parse_iso(v: str) -> datetime | None:
    try:
        dt = datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        return None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def received_date(headers: Mapping[str, Sequence[str]]) -> datetime | None:
    """The delivery time from the topmost ``Received:`` header (the text after its last ';')."""
    for value in headers.get("received", [])[:3]:
        if ";" in value:
            dt = parse_date(value.rsplit(";", 1)[1])
            if dt is not None:
                return dt
    return None


def plausible(dt: datetime | None, now: datetime | None = None) -> bool:
    """False for absurd dates: before 1990, after ``now`` (+2 days), the 1979/1980 placeholders."""
    if dt is None:
        return False
    limit = (now or datetime.now(UTC)) + FUTURE_SLACK
    return EARLIEST_DATE <= dt <= limit


# -- ids and subjects -----------------------------------------------------------------------------
def normalize_message_id(value: str | None) -> str | None:
    """``<abc@host>`` -> ``abc@host``; None for empty or junk values."""
    if not value:
        return None
    m = _MSGID.search(value)
    s = m.group(1) if m else value.strip().strip("<>").strip()
    if not s or len(s) > 500 or any(c.isspace() for c in s):
        return None
    return s


def parse_message_ids(value: str | None, limit: int = 50) -> tuple[str, ...]:
    """All ``<...>`` ids in a References / In-Reply-To value (the last ``limit`` of them)."""
    if not value:
        return ()
    ids = _MSGID.findall(value[:MAX_FIELD])
    return tuple(dict.fromkeys(ids))[-limit:]


def normalize_subject(subject: str) -> str:
    """Lowercased subject without Re:/Fwd:/AW:/SV:/[list] prefixes, for threading."""
    s = clean_text(subject)
    prev = None
    while prev != s:
        prev = s
        s = SUBJECT_PREFIXES.sub("", s).strip()
    return s.lower()[:300]


# -- automation markers ---------------------------------------------------------------------------
def automation_markers(headers: Mapping[str, Sequence[str]]) -> tuple[str, ...]:
    """Evidence that a message is list, bulk or automatic mail, as short marker strings."""
    return (*_list_markers(headers), *_auto_markers(headers), *_mailer_markers(headers))


def _list_markers(headers: Mapping[str, Sequence[str]]) -> list[str]:
    """Mailing-list headers and a list or bulk ``Precedence``."""
    marks = [h for h in ("list-id", "list-unsubscribe", "list-post") if first(headers, h)]
    prec = (first(headers, "precedence") or "").strip().lower()
    if prec in {"bulk", "list", "junk", "auto_reply"}:
        marks.append(f"precedence:{prec}")
    return marks


def _auto_markers(headers: Mapping[str, Sequence[str]]) -> list[str]:
    """``Auto-Submitted`` (other than ``no``) and the auto-responders' own headers."""
    marks: list[str] = []
    auto = (first(headers, "auto-submitted") or "").strip().lower().split(";")[0].strip()
    if auto and auto != "no":
        marks.append(f"auto-submitted:{auto[:30]}")
    if first(headers, "x-auto-response-suppress"):
        marks.append("x-auto-response-suppress")
    if first(headers, "x-autoreply") or first(headers, "x-autorespond"):
        marks.append("x-autoreply")
    return marks


def _mailer_markers(headers: Mapping[str, Sequence[str]]) -> list[str]:
    """A null return path, keepwarm's own digest, a bulk mailer's headers or ``X-Mailer``."""
    marks: list[str] = []
    rp = first(headers, "return-path")
    if rp is not None and rp.replace(" ", "") == "<>":
        marks.append("return-path-null")
    if first(headers, "x-keepwarm-digest"):
        marks.append("keepwarm-digest")
    mailer = first(headers, "x-mailer") or ""
    if any(first(headers, h) for h in BULK_MAILER_HEADERS) or _BULK_MAILERS.search(mailer):
        marks.append("bulk-mailer")
    return marks


def is_sent_folder(folder: str | None) -> bool:
    """Is ``folder`` (a path such as ``Archive/Sent Items`` or ``_sent_mail``) a sent folder?"""
    if not folder:
        return False
    for part in re.split(r"[/\\.]", folder):
        name = " ".join(part.replace("_", " ").replace("-", " ").split()).lower()
        plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
        if plain in SENT_FOLDER_NAMES:
            return True
    return False


# -- display names kept apart (X-From / X-To / X-cc of Lotus Notes exports) ---------------------
_X_ADDR_TAIL = re.compile(r"\s*<[^<>]*>.*$")


def _x_names(value: str | None) -> list[str]:
    """The display names of an ``X-To`` style list: ``Doe, John </O=...>, Jane Roe`` ->
    ``["John Doe", "Jane Roe"]``. Entries with angle brackets end at their ``>``; plain entries
    are split at commas, a ``Last, First`` pair being rejoined when both parts are single words."""
    if not value:
        return []
    value = decode_words(value)
    if "<" in value:
        parts = [p.strip(" ,") for p in re.split(r"(?<=>)\s*,", value)]
    else:
        parts = _rejoin_last_first([p.strip() for p in value.split(",")])
    out: list[str] = []
    for p in parts:
        if re.search(r"<[^<>\s/]+@[^<>\s/]+>", p):
            continue  # a name with its address: matched by address, not by position
        # (a Notes name in brackets is no address: "Enron Expertfinder/NA/Enron@Enron@ENRON")
        name = _X_ADDR_TAIL.sub("", p).strip(" \"'")
        if not name or "@" in name or "/" in name or "=" in name:
            continue
        out.append(" ".join(_person_name(name).split())[:200])
    return out


def _rejoin_last_first(raw: list[str]) -> list[str]:
    """Comma-separated entries with each ``Last, First`` pair joined again (only when there is
    an even number of entries: then every entry may be half of a name)."""
    parts: list[str] = []
    i = 0
    while i < len(raw):
        if i + 1 < len(raw) and len(raw) % 2 == 0 and _last_first(raw[i], raw[i + 1]):
            parts.append(f"{raw[i]}, {raw[i + 1]}")
            i += 2
        else:
            parts.append(raw[i])
            i += 1
    return parts


def _last_first(last: str, given: str) -> bool:
    """Can ``last`` and ``given`` be the two halves of ``Last, First``: a one-word surname and a
    given name of one or two words, without an address?"""
    one_word = bool(last) and " " not in last
    return one_word and bool(given) and len(given.split()) <= 2 and "@" not in given


_NON_ALNUM = re.compile(r"[^a-z0-9]+")


def _name_tokens(text: str) -> set[str]:
    return {t for t in _NON_ALNUM.split(text.lower()) if len(t) >= 2}


NameIndex = dict[str, list[tuple[str, set[str]]]]


def _name_keys(names: Sequence[str]) -> NameIndex:
    """The names by surname (their last word, when of 3 letters or more), each with its tokens,
    for :func:`_match_name`."""
    out: NameIndex = {}
    for n in names:
        words = [w for w in _NON_ALNUM.split(n.lower()) if w]
        if words and len(words[-1]) >= 3:
            out.setdefault(words[-1], []).append((n, _name_tokens(n)))
    return out


def _match_name(address: str, names: NameIndex) -> str | None:
    """The one name (of :func:`_name_keys`) whose surname appears in the address's local part."""
    local = _name_tokens(address.split("@", 1)[0])
    best = [(len(tokens & local), n) for t in local for n, tokens in names.get(t, ())]
    if not best:
        return None
    best.sort(reverse=True)
    if len(best) > 1 and best[0][0] == best[1][0]:
        return None
    return best[0][1]


def _x_field(headers: Mapping[str, Sequence[str]], name: str) -> str | None:
    """``X-From`` (Lotus Notes exports) or ``X-ZL-From`` (PST exports) for ``From``, etc."""
    return first(headers, f"x-{name}") or first(headers, f"x-zl-{name}")


def with_x_names(addresses: tuple[Address, ...], value: str | None) -> tuple[Address, ...]:
    """Addresses without a display name take theirs from an ``X-From``/``X-To``/``X-cc`` value."""
    if not value:
        return addresses
    known, names, keys = _x_value(value)
    if not names and not known:
        return addresses
    alone = len(addresses) == 1
    return tuple(
        _renamed(a, known, names, alone) if a.name else _named(a, known, names, keys, alone)
        for a in addresses
    )


def _renamed(a: Address, known: dict[str, str], names: tuple[str, ...], alone: bool) -> Address:
    """A named address with the X- value's spelling of the same words, if it has one: "Anderson
    Diane" (an export's last-first) told apart by "Anderson, Diane" there."""
    better = known.get(a.email) or (names[0] if alone and names else "")
    same = sorted(better.casefold().split()) == sorted(a.name.casefold().split())
    return Address(a.email, better) if better and same else a


def _named(
    a: Address, known: dict[str, str], names: tuple[str, ...], keys: NameIndex, alone: bool
) -> Address:
    """An address without a name with the X- value's name for it: by address, the only name
    of a one-address list, or the name whose surname is in the address."""
    name = known.get(a.email)
    if not name and alone and len(names) == 1:
        name = names[0]
    elif not name:
        name = _match_name(a.email, keys)
    return Address(a.email, name) if name else a


@functools.lru_cache(maxsize=4096)  # an archive repeats its X-To lines as its To lines
def _x_value(value: str) -> tuple[dict[str, str], tuple[str, ...], NameIndex]:
    """What an ``X-To`` style value says: names by address (entries with one), the names of the
    entries without one, in order, and those by surname (read only: the result is shared)."""
    # entries with addresses (an address needs an "@", an Exchange one "/o=": else none to parse)
    known = (
        {a.email: a.name for a in parse_addresses(value) if a.name}
        if "@" in value or "/o=" in value.lower()
        else {}
    )
    names = tuple(_x_names(value))
    return known, names, _name_keys(names)


_FYI = re.compile(r"\bfyi\b", re.IGNORECASE)
_THANKS = re.compile(r"^(?:many |big )?(?:thanks|thank you|thx|ty)\b", re.IGNORECASE)
_AUTOREPLY_SUBJECT = re.compile(
    r"^\s*(?:out of (?:the )?office|automatic reply|auto(?:matic)?[- ]?(?:reply|response)|"
    r"abwesenheitsnotiz|absence|r[ée]ponse automatique|respuesta autom[aá]tica)\b",
    re.IGNORECASE,
)
# Someone's absence announced (often by an assistant): "Gerald Nemec is out of office thru Monday"
_ABSENCE_SUBJECT = re.compile(
    r"\b(?:is|am|are|will be) (?:out of (?:the )?office|on (?:vacation|holiday|leave))\b",
    re.IGNORECASE,
)
_RESPONSE_SUBJECT = re.compile(
    r"^\s*(?:accepted|declined|tentative|tentatively accepted|angenommen|abgelehnt|mit vorbehalt)\s*:",
    re.IGNORECASE,
)


_PROMO_SUBJECT = re.compile(
    r"(?:[$€£]\s?\d+\s?off|\d+\s?% off|save (?:up to |over )?(?:[$€£]|\d+\s?%)|\bupgrade!|"
    r"\b(?:special offer|exclusive offers?|limited time|flight deals|hotel deals|deals of the|"
    r"great savings|free shipping|act now|newsletter|today'?s headlines|bonus (?:points|miles)|"
    r"coupons?|sweepstakes|introducing)\b)",
    re.IGNORECASE,
)


# A transaction's reference in the subject ("E-Ticket Confirmed - 13644492734", "UPS Ship
# Notification, 1Z7261100194491366"): ten digits or more in one word. People do not write those.
_REFERENCE_SUBJECT = re.compile(r"\b(?=(?:[a-z]*\d){10})[a-z0-9]+\b", re.IGNORECASE)


_SAME_DAY_SUBJECT = re.compile(
    r"\b(?:today|tonight|this (?:morning|afternoon|evening)|right now|"
    r"@\s?\d{1,2}(?::\d{2})?\s?(?:am|pm)?)\b",
    re.IGNORECASE,
)


_QUESTION_SUBJECT = re.compile(
    r"\?\s*$|^\s*(?:can|could|would|will|do|does|are|is|have|should|may|any|what|when|where|"
    r"who|why|how|which|please|pls|request|question|quick question|need|help|approval|approve|"
    r"rsvp|invitation|invite|your (?:input|thoughts|view|opinion|help|feedback|comments))\b",
    re.IGNORECASE,
)


def subject_markers(subject: str | None) -> tuple[str, ...]:
    """What the subject line says about a message's form, as markers (the subject itself may not
    be stored): ``subject:re`` (a reply), ``subject:fwd`` (a forward), ``subject:fyi``,
    ``subject:thanks`` (a thank-you note), ``subject:response`` (a calendar answer such as
    "Declined: ..."), ``subject:autoreply`` (an out-of-office reply without its headers, or a
    notice that someone "is out of the office"),
    ``subject:promo`` (marketing: prices, "% off", "special offer", "newsletter" ...),
    ``subject:reference`` (a transaction's notice: an order, ticket or tracking number),
    ``subject:sameday`` (about that day only: "Lunch today", "Room 3 @ 3 PM"),
    ``subject:question`` (it asks: "Can you ...", "Quick question", "... ?"), ``subject:none``
    (no subject, or only "Re:": nothing to thread its answers by, even when subjects are not
    stored)."""
    if not subject:
        return ("subject:none",)
    text = decode_words(subject)
    marks: list[str] = []
    m = FIRST_PREFIX.match(text)
    if m:
        word = m.group(1).lower()
        if word in REPLY_WORDS:
            marks.append("subject:re")
        elif word in FORWARD_WORDS:
            marks.append("subject:fwd")
    marks += [marker for marker, says in _SUBJECT_FORMS if says(text)]
    return tuple(marks)


def _is_autoreply(text: str) -> bool:
    return bool(_AUTOREPLY_SUBJECT.match(text)) or bool(
        _ABSENCE_SUBJECT.search(text) and not text.rstrip().endswith("?")
    )


# What a (decoded) subject says, in the order the markers are reported.
_SUBJECT_FORMS: tuple[tuple[str, Callable[[str], object]], ...] = (
    ("subject:fyi", _FYI.search),
    ("subject:thanks", lambda text: _THANKS.match(normalize_subject(text))),
    ("subject:response", _RESPONSE_SUBJECT.match),
    ("subject:autoreply", _is_autoreply),
    ("subject:promo", _PROMO_SUBJECT.search),
    ("subject:reference", _REFERENCE_SUBJECT.search),
    ("subject:sameday", _SAME_DAY_SUBJECT.search),
    ("subject:question", lambda text: _QUESTION_SUBJECT.search(SUBJECT_PREFIXES.sub("", text))),
    ("subject:none", lambda text: not normalize_subject(text)),
)


def list_id(headers: Mapping[str, Sequence[str]]) -> str | None:
    raw = first(headers, "list-id")
    if not raw:
        return None
    m = re.search(r"<([^<>]+)>", raw)
    return clean_text(m.group(1) if m else raw).lower()[:200] or None


# -- keepwarm's own action mails -------------------------------------------------------------------
# The digest's action links open a mail to yourself whose subject is a keepwarm command
# ("keepwarm: done maya@example.com reply_owed 2026-11-24 #TAG"). Its subject is kept even with
# [privacy] store_subjects = false: the daemon reads the command and never stores the message.
ACTION_PREFIX = "keepwarm:"


def is_action_subject(subject: str | None) -> bool:
    return bool(subject) and str(subject).lstrip().lower().startswith(ACTION_PREFIX)


def kept_subject(subject: str | None, keep: bool) -> str | None:
    """The subject as a record carries it: kept when subjects are, and always for an action."""
    return subject if subject and (keep or is_action_subject(subject)) else None


# -- the whole record ---------------------------------------------------------------------------
def message_from_headers(
    headers: Mapping[str, Sequence[str]],
    *,
    account: str,
    provider_id: str,
    fallback_date: datetime | None = None,
    lazy_fallback: Callable[[], datetime | None] | None = None,
    now: datetime | None = None,
    folder: str | None = None,
    labels: Iterable[str] = (),
    thread_hint: str | None = None,
    extra_markers: Iterable[str] = (),
    keep_subject: bool = True,
) -> MessageMeta | str:
    """Build a :class:`MessageMeta` from parsed headers, or return a skip reason string.

    The header date is used when plausible; otherwise ``fallback_date`` (or, computed only then,
    ``lazy_fallback()``: the provider's or file's
    time) if that is plausible; otherwise the message is skipped as ``"unparseable date"``.
    """
    if not headers:
        return "no headers"
    invalid = 0

    def addresses(value: str | None) -> tuple[Address, ...]:
        nonlocal invalid
        found, bad = parse_addresses_counted(value)
        invalid += bad
        return found

    from_list = with_x_names(addresses(first(headers, "from"))[:1], _x_field(headers, "from"))
    sender = from_list[0] if from_list else None
    if sender is None:
        sender_h = addresses(first(headers, "sender"))
        sender = sender_h[0] if sender_h else None
    to = with_x_names(addresses(", ".join(headers.get("to", []))), _x_field(headers, "to"))
    cc = with_x_names(addresses(", ".join(headers.get("cc", []))), _x_field(headers, "cc"))
    if sender is None and not to and not cc:
        return INVALID_ADDRESS if invalid else "no addresses"
    dated = _message_date(headers, fallback_date, lazy_fallback, now)
    if dated is None:
        return "unparseable date"
    date, from_provider = dated
    subject_raw = first(headers, "subject")
    subject = kept_subject(
        decode_words(subject_raw)[:MAX_SUBJECT] if subject_raw else None, keep_subject
    )
    irt = parse_message_ids(first(headers, "in-reply-to"), limit=1)
    bcc = addresses(", ".join(headers.get("bcc", [])))
    reply_to = addresses(first(headers, "reply-to"))
    return MessageMeta(
        account=account,
        provider_id=provider_id,
        date=date,
        sender=sender,
        to=to,
        cc=cc,
        bcc=bcc,
        reply_to=reply_to,
        message_id=normalize_message_id(first(headers, "message-id")),
        in_reply_to=irt[0] if irt else None,
        references=parse_message_ids(first(headers, "references")),
        subject=subject or None,
        thread_hint=thread_hint,
        folder=folder,
        labels=tuple(labels),
        list_id=list_id(headers),
        markers=_all_markers(headers, subject_raw, extra_markers, folder),
        date_from_provider=from_provider,
        invalid_addresses=invalid,
    )


def _message_date(
    headers: Mapping[str, Sequence[str]],
    fallback_date: datetime | None,
    lazy_fallback: Callable[[], datetime | None] | None,
    now: datetime | None,
) -> tuple[datetime, bool] | None:
    """The header date when plausible, else the plausible fallback (``lazy_fallback()`` computed
    only then), with whether it came from the provider; None when neither is plausible."""
    date = parse_date(first(headers, "date"))
    if date is not None and plausible(date, now):
        return date, False
    if fallback_date is None and lazy_fallback is not None:
        fallback_date = lazy_fallback()
    if fallback_date is not None and plausible(fallback_date, now):
        return fallback_date.astimezone(UTC), True
    return None


def _all_markers(
    headers: Mapping[str, Sequence[str]],
    subject_raw: str | None,
    extra_markers: Iterable[str],
    folder: str | None,
) -> tuple[str, ...]:
    """The headers' automation markers, the subject's, the connector's and ``sent-folder``."""
    sent = ("sent-folder",) if is_sent_folder(folder) else ()
    return automation_markers(headers) + subject_markers(subject_raw) + tuple(extra_markers) + sent
