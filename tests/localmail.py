"""Test helpers for the local connectors: messages made with the stdlib ``email`` package, and
mutable maildir / mbox worlds for the connector contract suite."""

from __future__ import annotations

import itertools
import os
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

from keepwarm.connectors.base import Connector
from keepwarm.connectors.local.maildir import MaildirConnector

T0 = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
_counter = itertools.count()


def make_message(
    n: int | None = None,
    *,
    sender: str = "alice@example.com",
    to: str = "me@example.com",
    subject: str | None = None,
    date: datetime | None = None,
    message_id: str | None = None,
    body: str = "Hello there.\n",
    extra: dict[str, str] | None = None,
) -> EmailMessage:
    """One plain message; ``n`` makes its Message-ID, subject and date distinct."""
    n = next(_counter) if n is None else n
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject if subject is not None else f"Message number {n}"
    msg["Date"] = format_datetime(date or (T0 + timedelta(minutes=n)))
    msg["Message-ID"] = message_id or f"<msg{n}@test.example>"
    for k, v in (extra or {}).items():
        msg[k] = v
    msg.set_content(body)
    return msg


def write_maildir_message(folder: Path, name: str, data: bytes, sub: str = "cur") -> Path:
    (folder / "tmp").mkdir(parents=True, exist_ok=True)
    (folder / "new").mkdir(exist_ok=True)
    (folder / "cur").mkdir(exist_ok=True)
    path = folder / sub / name
    path.write_bytes(data)
    return path


class MaildirWorld:
    """A maildir with an INBOX and a nested Maildir++ folder, for the contract suite."""

    kind = "maildir"

    def __init__(self, root: Path, account: str = "mdir", batch_size: int = 5) -> None:
        self.root = root
        self.account = account
        self.batch_size = batch_size
        self.files: dict[str, Path] = {}  # Message-ID -> file
        self._n = 0
        root.mkdir(parents=True, exist_ok=True)

    def connector(self) -> Connector:
        return MaildirConnector(self.account, self.root, batch_size=self.batch_size)

    def add_messages(self, n: int) -> None:
        for _ in range(n):
            i = self._n
            self._n += 1
            msg = make_message(10_000 + i)
            folder = self.root if i % 3 else self.root / ".Projects"
            sub = "new" if i % 2 else "cur"
            name = f"{1700000000 + i}.M{i}P1.host" + (":2,S" if sub == "cur" else "")
            self.files[f"msg{10_000 + i}@test.example"] = write_maildir_message(
                folder, name, msg.as_bytes(), sub
            )

    def delete_one(self) -> str:
        mid = sorted(self.files)[len(self.files) // 2]
        self.files.pop(mid).unlink()
        return mid

    def expected_ids(self) -> set[str]:
        return set(self.files)

    def expire_cursor(self) -> None:  # pragma: no cover - maildirs have no expiring cursor
        raise NotImplementedError

    def break_auth(self) -> None:  # pragma: no cover
        raise NotImplementedError

    def fail_transiently(self) -> None:  # pragma: no cover
        raise NotImplementedError

    def heal(self) -> None:  # pragma: no cover
        raise NotImplementedError


def envelope(when: datetime, sender: str = "alice@example.com") -> bytes:
    return f"From {sender} {when.strftime('%a %b %d %H:%M:%S %Y')}\n".encode()


def mbox_entry(msg: EmailMessage, when: datetime | None = None) -> bytes:
    """One mbox entry: envelope line, the message (mboxrd-quoted), a blank line."""
    raw = msg.as_bytes().replace(b"\r\n", b"\n")
    lines = raw.split(b"\n")
    quoted = [b">" + ln if ln.lstrip(b">").startswith(b"From ") else ln for ln in lines]
    body = b"\n".join(quoted).rstrip(b"\n") + b"\n"
    return envelope(when or T0) + body + b"\n"


class MboxWorld:
    """An mbox file that only grows (messages are appended); a deletion rewrites the file."""

    kind = "mbox"

    def __init__(self, path: Path, account: str = "mb", batch_size: int = 5) -> None:
        self.path = path
        self.account = account
        self.batch_size = batch_size
        self.entries: list[tuple[str, bytes]] = []
        self._n = 0
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")

    def connector(self) -> Connector:
        from keepwarm.connectors.local.mbox import MboxConnector

        return MboxConnector(self.account, self.path, batch_size=self.batch_size)

    def add_messages(self, n: int) -> None:
        with open(self.path, "ab") as fh:
            for _ in range(n):
                i = self._n
                self._n += 1
                msg = make_message(20_000 + i, body=f"Hi\n\nFrom the desk of number {i}\nbye\n")
                entry = mbox_entry(msg)
                self.entries.append((f"msg{20_000 + i}@test.example", entry))
                fh.write(entry)

    def delete_one(self) -> str:
        mid, _ = self.entries.pop(len(self.entries) // 2)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_bytes(b"".join(e for _, e in self.entries))
        os.replace(tmp, self.path)
        return mid

    def expected_ids(self) -> set[str]:
        return {mid for mid, _ in self.entries}

    def expire_cursor(self) -> None:  # pragma: no cover
        raise NotImplementedError

    def break_auth(self) -> None:  # pragma: no cover
        raise NotImplementedError

    def fail_transiently(self) -> None:  # pragma: no cover
        raise NotImplementedError

    def heal(self) -> None:  # pragma: no cover
        raise NotImplementedError


def double_unless_seven(chunk: list[int]) -> list[int]:
    """Work for worker processes in tests (importable by them): fails on a chunk holding 7."""
    if 7 in chunk:
        raise ValueError("a bug in the parser")
    return [x * 2 for x in chunk]
