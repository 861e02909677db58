"""One logged-in IMAP connection (imapclient) with the few raw commands keepwarm needs, and the
settings of an account."""

from __future__ import annotations

import contextlib
import imaplib
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from imapclient import IMAPClient
from imapclient.imap_utf7 import decode as decode_utf7
from imapclient.response_parser import parse_fetch_response, parse_response

from keepwarm.connectors.base import SourceError
from keepwarm.connectors.headers import (
    WANTED_HEADERS,
    first,
    normalize_message_id,
    parse_header_block,
)
from keepwarm.connectors.imap.parsing import (
    SKIP_SPECIAL_USE,
    Fetched,
    parse_fetch_item,
    parse_search,
    server_words,
    split_fetch_responses,
)
from keepwarm.connectors.imap.state import UidSet

log = logging.getLogger(__name__)

# imaplib refuses response lines over 1 MB; a plain (non-ESEARCH) "UID SEARCH ALL" of a 200,000
# message folder (Gmail's All Mail) is longer than that. Literals are read by size, not by line.
imaplib._MAXLINE = max(imaplib._MAXLINE, 64 * 1024 * 1024)  # type: ignore[attr-defined]

FETCH_CHUNK = 2500  # UIDs per FETCH round trip and per batch
HEADER_ITEM = "BODY.PEEK[HEADER.FIELDS (" + " ".join(h.upper() for h in WANTED_HEADERS) + ")]"

# Errors that mean "the connection is gone": reconnect, then give up as transient.
NETWORK_ERRORS: tuple[type[BaseException], ...] = (
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


def chunks(uids: Sequence[int], n: int) -> Iterator[Sequence[int]]:
    for i in range(0, len(uids), n):
        yield uids[i : i + n]


# -- the connection ------------------------------------------------------------------------------
class Session:
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
                f'a folder (it said "{server_words(str(detail))}")'
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
