"""vCard files (``kind = "vcard"``): an address-book export from a phone, Google Contacts, Apple
Contacts, Outlook or Thunderbird. A path is one ``.vcf`` file or a folder of them (searched
recursively); what a card gives keepwarm is described in :mod:`keepwarm.connectors.vcard`.

Re-scans are by content hash: an unchanged file is not read again; a changed file has its
contacts replaced (contacts that are no longer in it are removed), and a file that is gone takes
its contacts with it (an address book has no history).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from keepwarm.connectors.base import Batch, Deletion, Progress
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
from keepwarm.connectors.vcard import contacts_of

log = logging.getLogger(__name__)

KIND = "vcard"
MAX_FILE = 64 * 1024 * 1024
SUFFIXES = (".vcf", ".vcard")


class VcardConnector:
    """One .vcf file, or a folder of them, as a :class:`Connector` of contacts."""

    kind = KIND

    def __init__(self, account: str, path: str | Path, *, batch_size: int = DEFAULT_BATCH) -> None:
        self.account = account
        self.path = Path(path)
        self.batch_size = max(1, batch_size)

    def sync(self, cursor: str | None) -> Iterator[Batch]:
        data = decode_cursor(KIND, cursor) or {}
        old_files: dict[str, Any] = data.get("files") or {}
        if not isinstance(old_files, dict):
            old_files = {}
        files = files_under(require_path(self.path, KIND), SUFFIXES)
        state = dict(old_files)
        batch = Batch()
        skips = Skips()
        done = 0
        total = len(files)
        for rel in sorted(set(old_files) - set(files)):  # the file is gone: so are its contacts
            batch.deletions += [
                Deletion(self.account, pid, "contact") for pid in _ids(old_files[rel])
            ]
            del state[rel]
        for rel, full in files.items():
            done += 1
            raw = read_file(full, MAX_FILE, skips, log, "vcard: cannot read a contacts file")
            old = old_files.get(rel)
            if raw is None or unchanged(old, raw):
                continue
            state[rel] = self._read(rel, raw, old, batch, skips)
            if len(batch) >= self.batch_size:
                yield self._close(batch, state, skips, done, total)
                batch = Batch()
        if len(batch) or skips or state != old_files:
            yield self._close(batch, state, skips, done, total)

    def _read(self, rel: str, raw: bytes, old: Any, batch: Batch, skips: Skips) -> dict[str, Any]:
        """One vCard file read (again): its contacts in, the ones gone from it out."""
        contacts, skipped = contacts_of(_text(raw), self.account, rel)
        for reason, n in skipped.items():
            skips.add(reason, n)
        new_ids = {c.provider_id for c in contacts}
        batch.deletions += [
            Deletion(self.account, pid, "contact") for pid in _ids(old) if pid not in new_ids
        ]
        batch.contacts += contacts
        return {"h": file_hash(raw), "ids": pack(sorted(new_ids))}

    def _close(
        self, batch: Batch, state: dict[str, Any], skips: Skips, done: int, total: int
    ) -> Batch:
        batch.cursor = encode_cursor(KIND, {"files": state})
        batch.progress = Progress(done, total, "reading")
        batch.skipped = skips.take()
        return batch


def _ids(entry: Any) -> list[str]:
    if not isinstance(entry, dict):
        return []
    ids = unpack(entry.get("ids", pack([])))
    return [str(i) for i in ids] if isinstance(ids, list) else []


def _text(raw: bytes) -> str:
    """A vCard file's text: UTF-8 (with or without BOM), else UTF-16 (Outlook), else Latin-1."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return raw.decode("utf-16", "replace")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("latin-1")
