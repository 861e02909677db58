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
import logging
import queue
import random
import ssl
import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from imapclient import IMAPClient
from imapclient.exceptions import LoginError

from keepwarm.connectors.base import (
    AuthRequired,
    Batch,
    Deletion,
    DeletionReason,
    MessageMeta,
    Progress,
    SourceError,
    TransientError,
    kept_notice,
)
from keepwarm.connectors.headers import message_from_headers, parse_header_block
from keepwarm.connectors.imap.parsing import (
    Fetched,
    describe_error,
    folder_skipped,
    has_folder,
    imap_date,
    same_folder,
    server_words,
    skip_reason,
)
from keepwarm.connectors.imap.session import NETWORK_ERRORS, ImapSettings, Session, chunks
from keepwarm.connectors.imap.state import FolderState, SyncState, UidSet
from keepwarm.connectors.registry import is_loopback_host

log = logging.getLogger(__name__)

DELETE_CHUNK = 5000  # deletions per batch
JUNK_NAMES = frozenset({"junk", "junk e-mail", "junk email", "junk mail", "spam", "bulk mail"})
SPAM_LOOKBACK = 2000  # newest messages of a spam folder compared with deletions


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
            session: Session | None = None
            try:
                session = self._connect(password)
                for batch in self._pass(session, state):
                    failures = 0
                    yield batch
                return
            except NETWORK_ERRORS as exc:
                log.debug("account %s: connection error detail: %r", self.account, exc)
                failures += 1
                if failures > self.settings.retries:
                    raise TransientError(
                        f"the connection to {self.settings.host} keeps failing ({describe_error(exc)}); "
                        "keepwarm will retry later"
                    ) from None
                delay = self.settings.retry_base * (2 ** (failures - 1))
                log.info(
                    "account %s: connection lost (%s); reconnecting in %.1fs",
                    self.account,
                    describe_error(exc),
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
                        f'(it said "{server_words(text)}")'
                    ) from None
                raise SourceError(
                    f"the IMAP server {self.settings.host} refused a command "
                    f'(it said "{server_words(text)}")'
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
        except NETWORK_ERRORS as exc:
            raise TransientError(
                f"cannot reach the IMAP server {self.settings.host} ({describe_error(exc)})"
            ) from None
        try:
            folders = self._select(session, session.list_folders())
        except imaplib.IMAP4.error as exc:
            raise SourceError(
                f"the IMAP server {self.settings.host} refused a command "
                f'(it said "{server_words(str(exc))}")'
            ) from None
        except NETWORK_ERRORS as exc:
            raise TransientError(
                f"the connection to {self.settings.host} dropped ({describe_error(exc)})"
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

    def _connect(self, password: str) -> Session:
        s = self.settings
        host, port = s.host, s.effective_port
        if s.security == "none" and not is_loopback_host(host):
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
        return Session(client, s)

    # -- one pass -----------------------------------------------------------------------------
    def _select(
        self, session: Session, listed: list[tuple[tuple[bytes, ...], str, str]]
    ) -> list[str]:
        s = self.settings
        names = [n for _f, _d, n in listed]
        if session.gmail and not s.folders:  # one "All Mail" pass instead of every label
            for flags, _d, name in listed:
                if b"\\all" in {f.lower() for f in flags}:
                    return [name]
        if s.folders:
            chosen = self._configured_folders(names)
        else:
            chosen = [n for f, d, n in listed if not folder_skipped(f, n, d, session.special_use)]
        return [n for n in chosen if not any(same_folder(n, x) for x in s.exclude_folders)]

    def _configured_folders(self, names: list[str]) -> list[str]:
        """The server's folders that the config's ``folders`` name (each must exist)."""
        s = self.settings
        missing = [f for f in s.folders if not has_folder(names, f)]
        if missing:
            raise SourceError(
                f"folder(s) {', '.join(missing)} not found on {s.host}; "
                f"available folders: {', '.join(sorted(names))}"
            )
        return [n for n in names if any(same_folder(n, f) for f in s.folders)]

    def _pass(self, session: Session, state: SyncState) -> Iterator[Batch]:
        before = state.dump()
        listed = session.list_folders()
        names = [n for _f, _d, n in listed]
        folders = self._select(session, listed)
        statuses = {name: session.status(name) for name in folders}
        work = [n for n in folders if not _clean(state.folders.get(n), statuses[n])]
        total = sum(self._estimate(state.folders.get(n), statuses[n]) for n in work)
        progress = [0, total]
        finals: list[_Final] = [
            _Final(n, UidSet(), None, gone=True, vanished=not has_folder(names, n))
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
        self, session: Session, listed: list[tuple[tuple[bytes, ...], str, str]]
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
        session: Session,
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
        for chunk in chunks(new, self.settings.fetch_chunk):
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
            reason = skip_reason(f)
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
            for batch in self._folder_deletions(state, fin, st, progress, spam):
                last_cursor = batch.cursor
                yield batch
        final = state.dump()
        if final != last_cursor:
            yield Batch(cursor=final, progress=Progress(progress[0], max(progress), phase="done"))

    def _folder_deletions(
        self,
        state: SyncState,
        fin: _Final,
        st: FolderState,
        progress: list[int],
        spam: list[str],
    ) -> Iterator[Batch]:
        """One folder's deletions, in chunks; its state is committed with the last one."""
        doomed: list[tuple[int, int]] = [(uv, u) for uv, s in st.stale for u in s]
        doomed += [(st.uidvalidity, u) for u in (st.known if fin.gone else fin.deleted)]
        reason, notices = _why_gone(fin, len(doomed))
        after = st.copy()
        after.known = after.known.minus(fin.deleted)
        after.stale = []
        after.check = fin.check if after.done else None
        for i in range(0, len(doomed), DELETE_CHUNK):
            if i + DELETE_CHUNK >= len(doomed):
                self._commit_folder(state, fin, after)
            yield Batch(
                deletions=[
                    Deletion(self.account, f"{fin.name}/{uv}/{u}", reason=reason)
                    for uv, u in doomed[i : i + DELETE_CHUNK]
                ],
                cursor=state.dump(),
                progress=Progress(progress[0], max(progress), phase="deletions"),
                notices=notices if i == 0 else [],
                spam_message_ids=spam if reason == "deleted" else [],
            )
        if not doomed:
            self._commit_folder(state, fin, after)

    @staticmethod
    def _commit_folder(state: SyncState, fin: _Final, after: FolderState) -> None:
        if fin.gone:
            state.folders.pop(fin.name, None)
        else:
            state.folders[fin.name] = after


def _why_gone(fin: _Final, doomed: int) -> tuple[DeletionReason, list[str]]:
    """Why a folder's messages leave it: deleted, or the folder vanished (with a notice when
    messages are kept) or is no longer selected."""
    if not fin.gone:
        return "deleted", []
    if not fin.vanished:
        return "unselected", []
    notices = [kept_notice(f"folder {fin.name} is gone from the server", doomed)] if doomed else []
    return "vanished", notices


def _clean(st: FolderState | None, status: tuple[int, int, int]) -> bool:
    return st is not None and st.done and not st.stale and st.check == status
