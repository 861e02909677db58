"""Maildir folders and maildir-like archives (the Enron ``user/folder/N.`` layout).

A scan lists the tree (following symlinks, but never into a directory twice), compares every
message file's name, mtime and size with what the cursor remembers, and then:

- files that changed become ``replaced`` :class:`Deletion` records, in the first batches;
- new (or changed) files are read *up to their header block only* and become records;
- files that are gone become deletions last (so a message moved between folders is stored from
  its new folder first): ``spam`` when the same file is now in a spam folder, ``vanished`` when
  its whole folder is gone (the batch carries a notice for the user), ``deleted`` otherwise.

Accepted layouts: a maildir (``cur/``, ``new/``, ``tmp/``; ``tmp/`` is ignored because files
there are still being delivered), Maildir++ sub-folders (``.Sent/cur``), nested folders, and
plain folders of one-message files (Enron, SpamAssassin). Trash and spam folders are skipped.
A message's id is its folder plus the maildir unique name (the part before ``:2,``), so a flag
change or a move from ``new/`` to ``cur/`` is not a new message.

The cursor remembers ``{id: "mtime:size"}`` for every file seen, as compressed fragments: each
batch appends one fragment (its own files), and the last batch of a scan compacts them. A batch
writes the cursor only when the entries added since the last cursor written reach a quarter of
it (or :data:`CURSOR_EVERY`); the other batches keep the stored cursor (``Batch.keep_cursor``)
and the scan's last batch always writes it. The cursor text written over an import then grows
with the archive, not with its square. A cursor written while reading also names the files the
batches until the next one will read, with the stamp :data:`UNKNOWN`: after a restart from it,
those files count as changed (their records are replaced) when they are there, and as deleted
when they are gone, as if each batch had written its cursor.

A re-scan where nothing changed lists nothing: the last full scan also remembers the mtime and
inode of every directory it listed, and the next scan first stats only those (a few per
folder). When none changed, no file was added, removed or renamed (a maildir's files are written
once; a flag change or a move is a rename), and the scan ends there. The directories are
remembered only when that is safe: none modified within 2 s of the scan's start (on a file system
with coarse timestamps a folder changed again in the same tick keeps its mtime), and every file
and folder was read (what could not be read is tried again). A file rewritten in place, which no
maildir tool does, is seen by the full scan that runs at least once a day.
"""

from __future__ import annotations

import errno
import functools
import logging
import os
import re
import stat
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from keepwarm.connectors.base import (
    Batch,
    CursorExpired,
    Deletion,
    MessageMeta,
    Progress,
    kept_notice,
)
from keepwarm.connectors.local.common import (
    SYMLINK_LOOP,
    TRASH,
    UNREADABLE,
    MailFileConnector,
    Skips,
    Unreadable,
    decode_cursor,
    encode_cursor,
    message_from_head,
    pack,
    read_head,
    require_path,
    unpack,
    utc_from_timestamp,
)
from keepwarm.connectors.local.envelope import envelope_date, is_envelope
from keepwarm.connectors.local.workers import PARALLEL_MIN, each

log = logging.getLogger(__name__)

KIND = "maildir"

_FLAGS = re.compile(r"[:!;][12],[^/]*$")
_METADATA_NAMES = frozenset(
    {"maildirfolder", "subscriptions", "cmds", "index", "tags", "notmuch-config", "mbox.index"}
)
_METADATA_PREFIXES = ("dovecot", "courierimap", "courierpop3", ".")
_METADATA_SUFFIXES = (".index", ".cache", ".log", ".lock", ".db", ".sqlite", ".journal")
_SPAM_NAMES = frozenset({"spam", "junk", "junk e-mail", "junk email", "junk mail", "bulk mail"})
_TRASH_NAMES = frozenset({"trash", "deleted", "deleted items", "deleted messages", "bin"})
# Directory mtimes that far before a scan's start are trusted by the next scan (2 s: FAT's
# granularity, and far above ext4's or a coarse kernel clock's).
MTIME_SLACK_NS = 2_000_000_000
FULL_SCAN_EVERY = 24 * 3600  # seconds: a file rewritten in place (no maildir tool does) is seen
# A batch writes the cursor when the entries added since the last one written reach this share
# of it, or CURSOR_EVERY entries (what a restart reads again stays bounded).
CURSOR_SHARE = 0.25
CURSOR_EVERY = 250_000
UNKNOWN = "?"  # the stamp of a file that the batches after a cursor written may store


@dataclass(slots=True)
class Frags:
    """The cursor's fragments, and how many entries the last cursor written holds."""

    items: list[str]
    written: int = 0  # entries in the fragments of the last cursor written
    pending: int = 0  # entries in the fragments added since
    ahead: int = 0  # the files to read up to this index are in the last cursor written
    force: bool = False  # the next batch writes the cursor

    def add(self, entries: list[list[str]]) -> None:
        self.items.append(pack(entries))
        self.pending += len(entries)

    def due(self) -> bool:
        """True when the cursor is worth writing now."""
        return self.force or (
            self.pending > 0
            and (self.pending >= CURSOR_SHARE * self.written or self.pending >= CURSOR_EVERY)
        )

    def wrote(self) -> None:
        self.written += self.pending
        self.pending = 0
        self.force = False


@dataclass(frozen=True, slots=True)
class Entry:
    """One message file found by the listing."""

    path: str
    folder: str
    stamp: str  # "mtime:size"
    mtime: float
    trash: bool  # in a trash or spam folder: never read
    spam: bool = False  # in a spam folder

    def __reduce__(self) -> tuple[type[Entry], tuple[str, str, str, float, bool, bool]]:
        return Entry, (self.path, self.folder, self.stamp, self.mtime, self.trash, self.spam)


def _is_metadata(name: str) -> bool:
    low = name.lower()
    return (
        low in _METADATA_NAMES
        or low.startswith(_METADATA_PREFIXES)
        or low.endswith(_METADATA_SUFFIXES)
    )


@functools.lru_cache(maxsize=4096)  # asked once per file, of a few folders
def _folder_name(rel: str) -> str:
    """Display folder for a relative folder path: Maildir++ dots stripped, root is INBOX."""
    if not rel:
        return "INBOX"
    return "/".join(part.lstrip(".") or part for part in rel.split("/"))


def _folder_names(rel: str) -> set[str]:
    return {part.strip().lower().replace("_", " ").strip() for part in re.split(r"[/.]", rel)}


@functools.lru_cache(maxsize=4096)  # asked once per file, of a few folders
def _is_trash(rel: str) -> bool:
    """A trash or spam folder (never read)."""
    return bool(_folder_names(rel) & (_TRASH_NAMES | _SPAM_NAMES))


@functools.lru_cache(maxsize=4096)  # asked once per file, of a few folders
def _is_spam(rel: str) -> bool:
    return bool(_folder_names(rel) & _SPAM_NAMES)


def _folder_of(pid: str) -> str:
    return pid.rsplit("/", 1)[0] if "/" in pid else ""


def _is_maildir_folder(path: str) -> bool:
    return os.path.isdir(os.path.join(path, "cur")) or os.path.isdir(os.path.join(path, "new"))


@dataclass(frozen=True, slots=True)
class Read:
    """What reading the new and changed files came to."""

    yielded: bool  # batches were yielded
    unreadable: bool  # a file could not be read (tried again by the next full scan)


def dir_stamp(st: os.stat_result) -> list[int]:
    """What says a directory's list of names is unchanged: its mtime (ns) and inode."""
    return [st.st_mtime_ns, st.st_ino]


def settled(dirs: dict[str, list[int]], started_ns: int) -> bool:
    """True when no directory was modified within :data:`MTIME_SLACK_NS` of the scan's start:
    a change made later then gives it another mtime, whatever the file system's granularity
    (a directory modified just before it was listed may be modified again in the same tick)."""
    return all(mtime < started_ns - MTIME_SLACK_NS for mtime, _ino in dirs.values())


def unchanged(root: Path, dirs: dict[str, list[int]]) -> bool:
    """True when every directory of the last full scan still has its stamp: no message file was
    added, removed or renamed (maildir files are written once; flags change by renaming)."""
    for rel, stamp in dirs.items():
        try:
            st = os.stat(os.path.join(root, rel))
        except OSError:
            return False
        if dir_stamp(st) != stamp:
            return False
    return True


def _compare(
    state: dict[str, str], listing: dict[str, Entry]
) -> tuple[list[str], list[str], list[str]]:
    """The files gone since the cursor, those changed, and those to read (new, then changed).
    A file of :data:`UNKNOWN` stamp (maybe stored before a restart) is changed, or gone."""
    gone = sorted(pid for pid in state if pid not in listing)
    changed = sorted(pid for pid, e in listing.items() if pid in state and state[pid] != e.stamp)
    todo = sorted(pid for pid in listing if pid not in state) + changed
    return gone, changed, todo


class Lister:
    """Walks a maildir tree once, collecting message files and counting what cannot be read."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.entries: dict[str, Entry] = {}
        self.folders: set[str] = {""}  # every folder that exists, even empty (relative paths)
        self.skips = Skips()
        # every directory whose listing the result depends on: its stamp, taken before listing it
        self.dirs: dict[str, list[int]] = {}
        self._seen_dirs: set[tuple[int, int]] = set()

    def run(self) -> dict[str, Entry]:
        st = os.stat(self.root)
        self._seen_dirs.add((st.st_dev, st.st_ino))
        self.dirs[""] = dir_stamp(st)
        self._walk(str(self.root), "")
        return self.entries

    def _walk(self, path: str, rel: str) -> None:
        self.folders.add(rel)
        try:
            with os.scandir(path) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            log.info("maildir: cannot list a folder (%s)", exc.strerror)
            self.skips.add(UNREADABLE)
            return
        names = {e.name for e in entries}
        maildir = ("cur" in names or "new" in names) and _is_maildir_folder(path)
        for e in entries:
            child_rel = f"{rel}/{e.name}" if rel else e.name
            kind, st = self._kind(e)
            if kind == "dir" and st is not None:
                self._enter_dir(e, child_rel, path, maildir, st)
            elif kind == "file" and st is not None and not maildir and not _is_metadata(e.name):
                self._add(rel, e.name, e.path, st)

    def _kind(self, e: os.DirEntry[str]) -> tuple[str, os.stat_result | None]:
        try:
            st = e.stat()  # follows symlinks
        except OSError as exc:
            self.skips.add(SYMLINK_LOOP if exc.errno == errno.ELOOP else UNREADABLE)
            return "error", None
        if stat.S_ISDIR(st.st_mode):
            return "dir", st
        if stat.S_ISREG(st.st_mode):
            return "file", st
        return "other", None  # sockets, fifos, devices: never messages

    def _enter_dir(
        self, e: os.DirEntry[str], rel: str, parent: str, maildir: bool, st: os.stat_result
    ) -> None:
        key = (st.st_dev, st.st_ino)
        if key in self._seen_dirs:
            if e.is_symlink():
                self.skips.add(SYMLINK_LOOP)
            return
        self.dirs[rel] = dir_stamp(st)  # (a dot folder left out: it may become a maildir)
        if maildir and e.name in ("cur", "new"):
            self._seen_dirs.add(key)
            self._list_messages(e.path, rel.rsplit("/", 1)[0] if "/" in rel else "")
            return
        if maildir and e.name == "tmp":
            del self.dirs[rel]  # messages still being delivered: never read
            return
        if e.name.startswith(".") and not _is_maildir_folder(e.path):
            return  # .notmuch, .git, .cache ...: not mail
        self._seen_dirs.add(key)
        self._walk(e.path, rel)

    def _list_messages(self, path: str, folder_rel: str) -> None:
        """The files of a maildir ``cur/`` or ``new/`` directory."""
        self.folders.add(folder_rel)
        try:
            with os.scandir(path) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError:
            self.skips.add(UNREADABLE)
            return
        for e in entries:
            if e.name.startswith("."):
                continue
            kind, st = self._kind(e)
            if kind == "file" and st is not None:
                self._add(folder_rel, _FLAGS.sub("", e.name), e.path, st)

    def _add(self, folder_rel: str, name: str, path: str, st: os.stat_result) -> None:
        pid = f"{folder_rel}/{name}" if folder_rel else name
        if pid in self.entries:
            return  # the same message in new/ and cur/ for a moment: read it once
        self.entries[pid] = Entry(
            path=path,
            folder=_folder_name(folder_rel),
            stamp=f"{int(st.st_mtime)}:{st.st_size}",
            mtime=st.st_mtime,
            trash=_is_trash(folder_rel),
            spam=_is_spam(folder_rel),
        )


class MaildirConnector(MailFileConnector):
    """A maildir (or an archive of one-message files) as a :class:`Connector`."""

    kind = KIND

    # -- state -------------------------------------------------------------------------------
    @staticmethod
    def _load(frags: list[Any]) -> dict[str, str]:
        state: dict[str, str] = {}
        for frag in frags:
            for pid, stamp in unpack(frag):
                if stamp:
                    state[pid] = stamp
                else:
                    state.pop(pid, None)
        return state

    def _cursor(self, frags: list[str], dirs: dict[str, list[int]] | None = None) -> str:
        data: dict[str, Any] = {"frags": frags}
        if dirs is not None:  # only the last batch of a full scan: then they describe the files
            data["dirs"] = {"at": time.time(), "stamps": pack(dirs)}
        return encode_cursor(KIND, data)

    # -- sync --------------------------------------------------------------------------------
    def sync(self, cursor: str | None) -> Iterator[Batch]:
        data = decode_cursor(KIND, cursor) or {}
        root = require_path(self.path, KIND, want_dir=True)
        old_dirs = self._quick(data)
        if old_dirs is not None and unchanged(root, old_dirs):
            return  # no directory changed since the last full scan: nothing to read
        yield from self._scan(root, data, old_dirs)

    def _scan(
        self, root: Path, data: dict[str, Any], old_dirs: dict[str, list[int]] | None
    ) -> Iterator[Batch]:
        """A full scan: every file's name, mtime and size compared with the cursor's."""
        raw_frags = data.get("frags")
        frags = Frags(list(raw_frags) if isinstance(raw_frags, list) else [])
        state = self._load(frags.items)
        frags.written = len(state)
        started_ns = time.time_ns()
        lister = Lister(root)
        listing = lister.run()
        skips = lister.skips
        retry = bool(skips)  # unreadable folders or symlink loops: list everything next time

        gone, changed, todo = _compare(state, listing)
        total = len(todo)

        # 1. Changed files: their records go first (they are read again below).
        replaced = [Deletion(self.account, pid, reason="replaced") for pid in changed]
        yielded = yield from self._removals(replaced, frags, skips, total, [])

        # 2. New and changed files.
        work = [(pid, listing[pid]) for pid in todo]
        done = yield from self._records(work, frags, skips)
        yielded = yielded or done.yielded
        retry = retry or done.unreadable

        # 3. Files that are gone, after the new ones: a message moved to another folder is then
        # already stored from there, so it is never taken for deleted mail in between.
        removals, notices = self._gone(gone, listing, lister.folders)
        yielded = (yield from self._removals(removals, frags, skips, total, notices)) or yielded

        # 4. Compact the fragments into one, so the next scan starts from a small cursor; and
        # remember the directories when they are settled, so the next scan can skip the listing.
        dirs = None if retry or not settled(lister.dirs, started_ns) else lister.dirs
        if (yielded and (len(frags.items) > 1 or frags.pending)) or (
            dirs is not None and (yielded or dirs != old_dirs)
        ):
            yield self._last(frags.items, dirs, total)

    def _last(self, frags: list[str], dirs: dict[str, list[int]] | None, total: int) -> Batch:
        """The scan's last batch, which always writes the cursor: its fragments compacted into
        one, and the directories (when settled) with the time of this full scan."""
        if len(frags) > 1:
            final = self._load(frags)
            frags[:] = [pack(sorted([pid, stamp] for pid, stamp in final.items()))]
        return Batch(cursor=self._cursor(frags, dirs), progress=Progress(total, total, "done"))

    @staticmethod
    def _quick(data: dict[str, Any]) -> dict[str, list[int]] | None:
        """The directories of the last full scan, when it is recent enough to be trusted
        (a full scan also runs once every :data:`FULL_SCAN_EVERY`); else None."""
        quick = data.get("dirs")
        if not isinstance(quick, dict):
            return None
        scanned = quick.get("at")
        if not isinstance(scanned, int | float) or not 0 <= time.time() - scanned < FULL_SCAN_EVERY:
            return None
        dirs = unpack(quick.get("stamps"))
        if not isinstance(dirs, dict):
            raise CursorExpired("the stored maildir position is damaged")
        return dirs

    def _records(
        self, work: list[tuple[str, Entry]], frags: Frags, skips: Skips
    ) -> Generator[Batch, None, Read]:
        """Batches of the records of new and changed files (parsed in worker processes when
        there are many), each remembering its files in the cursor."""
        batch = Batch()
        seen: list[list[str]] = []
        done, total = 0, len(work)
        yielded = unreadable = False
        big = len(work) >= PARALLEL_MIN
        for (pid, entry), result in each(self._read_all, work, parallel=big, workers=self.workers):
            done += 1
            if isinstance(result, Unreadable):
                log.info("maildir: cannot read a message file (%s)", result.reason)
                skips.add(UNREADABLE)  # not remembered: tried again on the next scan
                unreadable = True
            else:
                seen.append([pid, entry.stamp])
                if isinstance(result, str):
                    skips.add(result)
                else:
                    batch.messages.append(result)
            if len(seen) + sum(skips.values()) >= self.batch_size:
                self._ahead(frags, work, done)
                yield self._close(batch, frags, seen, skips, Progress(done, total, "reading"))
                yielded = True
                batch, seen = Batch(), []
        if seen or skips or batch.messages:
            self._ahead(frags, work, done)
            yield self._close(batch, frags, seen, skips, Progress(done, total, "reading"))
            yielded = True
        return Read(yielded, unreadable)

    def _ahead(self, frags: Frags, work: list[tuple[str, Entry]], done: int) -> None:
        """Before a batch that has read ``work[:done]``: when it read files that no cursor
        written names, or the next batch may, this batch writes the cursor, which names the
        files the next batches will read (:data:`UNKNOWN`), up to the next cursor written."""
        if done <= frags.ahead and (done == len(work) or done + self.batch_size <= frags.ahead):
            return
        frags.force = True
        span = self.batch_size + max(
            self.batch_size, min(CURSOR_EVERY, int(CURSOR_SHARE * (frags.written + frags.pending)))
        )
        if coming := [[pid, UNKNOWN] for pid, _entry in work[done : done + span]]:
            frags.add(coming)
        frags.ahead = done + span

    def _removals(
        self,
        removals: list[Deletion],
        frags: Frags,
        skips: Skips,
        total: int,
        notices: list[str],
    ) -> Generator[Batch, None, bool]:
        """Batches of deletions, each forgetting its files in the cursor; True if any."""
        for i in range(0, len(removals), self.batch_size):
            part = removals[i : i + self.batch_size]
            frags.add([[d.provider_id, ""] for d in part])
            yield self._position(
                Batch(
                    deletions=part,
                    progress=Progress(0, total, "removing"),
                    skipped=skips.take(),
                    notices=notices if i == 0 else [],
                ),
                frags,
            )
        return bool(removals)

    def _gone(
        self, gone: list[str], listing: dict[str, Entry], folders: set[str]
    ) -> tuple[list[Deletion], list[str]]:
        """The deletions of the files that are gone, and the notices of the folders that went."""
        in_spam = {pid.rsplit("/", 1)[-1] for pid, e in listing.items() if e.spam}
        removals = [self._deletion(pid, in_spam, folders) for pid in gone]
        return removals, self._vanished_notices(gone, folders)

    def _deletion(self, pid: str, in_spam: set[str], folders: set[str]) -> Deletion:
        """A file that is gone: moved into a spam folder (its unique name is there now), part
        of a folder that vanished, or deleted."""
        if pid.rsplit("/", 1)[-1] in in_spam:
            return Deletion(self.account, pid, reason="spam")
        if _folder_of(pid) not in folders:
            return Deletion(self.account, pid, reason="vanished")
        return Deletion(self.account, pid)

    @staticmethod
    def _vanished_notices(gone: list[str], folders: set[str]) -> list[str]:
        lost: dict[str, int] = {}
        for pid in gone:
            rel = _folder_of(pid)
            if rel not in folders and not _is_trash(rel):
                lost[rel] = lost.get(rel, 0) + 1
        return [
            kept_notice(f"folder {_folder_name(rel)} is gone", n) for rel, n in sorted(lost.items())
        ]

    def _close(
        self,
        batch: Batch,
        frags: Frags,
        seen: list[list[str]],
        skips: Skips,
        progress: Progress,
    ) -> Batch:
        if seen:
            frags.add(seen)
        batch.progress = progress
        batch.skipped = skips.take()
        return self._position(batch, frags)

    def _position(self, batch: Batch, frags: Frags) -> Batch:
        """The batch with the whole cursor when it is due, else keeping the stored one."""
        if frags.due():
            batch.cursor = self._cursor(frags.items)
            frags.wrote()
        else:
            batch.keep_cursor = True
        return batch

    def _read_all(self, work: list[tuple[str, Entry]]) -> list[MessageMeta | str | Unreadable]:
        return [self._read(pid, entry) for pid, entry in work]

    def _read(self, pid: str, entry: Entry) -> MessageMeta | str | Unreadable:
        """The record for one file, a skip reason, or :class:`Unreadable`."""
        if entry.trash:
            return TRASH
        try:
            head = read_head(entry.path)
        except OSError as exc:
            return Unreadable(str(exc.strerror))
        fallbacks = []
        if head.startswith(b"From "):
            fallbacks.append(envelope_date(head[: head.find(b"\n")]) if is_envelope(head) else None)
        fallbacks.append(utc_from_timestamp(entry.mtime))
        return message_from_head(
            head,
            account=self.account,
            provider_id=pid,
            fallback_dates=fallbacks,
            now=self.now,
            folder=entry.folder,
            keep_subject=self.keep_subjects,
        )


def layout(root: Path, limit: int = 2000) -> str | None:
    """What :class:`MaildirConnector` will find under ``root``: a maildir, or a folder of message
    files (Enron, SpamAssassin); None when the first ``limit`` entries hold no file at all."""
    seen = 0
    for folder, dirs, files in os.walk(root):
        if {"cur", "new"} & set(dirs) or Path(folder).name in ("cur", "new"):
            return "maildir"
        if any(not f.startswith(".") for f in files):
            return "a folder of message files"
        seen += len(dirs) + len(files)
        if seen > limit:
            break
    return None
