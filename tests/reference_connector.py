"""The reference connector: an in-memory mail source in the fewest lines that keep the whole
contract (CONTRIBUTING.md, "Adding a connector"). Copy it to start a new kind.

The source is an append-only change log; the cursor is ``EPOCH:POSITION`` in it, so resuming
from any committed batch reads exactly what followed, and a new epoch expires old cursors.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from keepwarm.connectors.base import (
    Address,
    AuthRequired,
    Batch,
    Connector,
    CursorExpired,
    Deletion,
    MessageMeta,
    TransientError,
)
from keepwarm.connectors.registry import ConnectorKind, Context, option


@dataclass
class Source:
    """What a real server would hold: the log of changes, and the ways it can fail."""

    log: list[tuple[str, str]] = field(default_factory=list)  # ("add" | "del", message id)
    epoch: int = 1
    failure: str | None = None  # "auth" or "transient"


SOURCES: dict[str, Source] = {}  # by name, as a server would be found by its address


@dataclass(frozen=True)
class MemoryOptions:
    """``[[accounts]] kind = "memory"``."""

    source: str = option(doc="the name of the in-memory source")
    batch_size: int = option(5, doc="records per batch", range=(1, 1000))


class MemoryConnector:
    kind = "memory"

    def __init__(self, account: str, source: Source, batch_size: int) -> None:
        self.account, self.source, self.batch_size = account, source, batch_size

    def sync(self, cursor: str | None) -> Iterator[Batch]:
        if self.source.failure == "auth":
            raise AuthRequired("the source refused the login", fix="keepwarm auth memory")
        if self.source.failure == "transient":
            raise TransientError("the source is busy", retry_after=1.0)
        epoch, _, pos = (cursor or f"{self.source.epoch}:0").partition(":")
        if int(epoch) != self.source.epoch:
            raise CursorExpired("the source forgot that position; reading it whole")
        start = int(pos)
        while start < len(self.source.log):
            batch = Batch(cursor=f"{epoch}:{start + self.batch_size}")
            for op, mid in self.source.log[start : start + self.batch_size]:
                if op == "add":
                    batch.messages.append(_message(self.account, mid))
                else:
                    batch.deletions.append(Deletion(self.account, mid))
            batch.cursor = f"{epoch}:{min(start + self.batch_size, len(self.source.log))}"
            start += self.batch_size
            yield batch


def _message(account: str, mid: str) -> MessageMeta:
    n = int(mid.split("-")[1].split("@")[0])
    when = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=n)
    sender = Address(f"friend{n % 3}@example.com", f"Friend {n % 3}")
    return MessageMeta(account, mid, when, sender, to=(Address("me@example.com"),), message_id=mid)


def build(options: MemoryOptions, context: Context) -> Connector:
    source = SOURCES.setdefault(options.source, Source())
    return MemoryConnector(context.account, source, options.batch_size)


def probe(options: MemoryOptions, _context: Context, _timeout: float) -> str:
    return f"{len(SOURCES.get(options.source, Source()).log)} changes in {options.source}"


MEMORY = ConnectorKind(
    kind="memory",
    options=MemoryOptions,
    build=build,
    probe=probe,
    summary="an in-memory mail source (the reference connector)",
)
