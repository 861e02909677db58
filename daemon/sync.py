"""Run one account's connector into the store: each batch and its cursor in one transaction.

This is the only place the cursor protocol is implemented; every connector relies on it.
Failures are classified by the connector's error class: transient -> back off; auth -> park the account until
the user re-authorises; cursor expired -> forget the cursor and do one full sync right away;
source error -> failing, with the message for the user.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal

from keepwarm.connectors.base import (
    AuthRequired,
    Batch,
    Connector,
    ConnectorError,
    CursorExpired,
    Progress,
    SourceError,
    TransientError,
)
from keepwarm.daemon.store import ApplyResult, Store

log = logging.getLogger(__name__)

ProgressCallback = Callable[[str, Progress | None, Batch], None]


# How a sync ended: caught up, to be retried later, waiting for a sign-in, failing (the user must
# act), or stopped between batches (the rest comes next time).
SyncState = Literal["ok", "backoff", "auth_required", "failing", "interrupted"]


@dataclass
class SyncOutcome:
    account: str
    state: SyncState = "ok"
    added: int = 0
    merged: int = 0
    unchanged: int = 0
    deleted: int = 0
    kept: int = 0  # deleted at the source (or their folder vanished), kept as history
    batches: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    invalid_addresses: int = 0  # left out of stored messages (a message with none left is skipped)
    error: str | None = None
    fix: str | None = None
    retry_after: float | None = None
    full_resync: bool = False

    def count(self, res: ApplyResult) -> None:
        """Add what one applied batch changed."""
        self.batches += 1
        self.added += res.added
        self.merged += res.merged
        self.unchanged += res.unchanged
        self.deleted += res.deleted
        self.kept += res.kept
        self.invalid_addresses += res.invalid_addresses
        for reason, n in res.skipped.items():
            self.skipped[reason] = self.skipped.get(reason, 0) + n

    def failed(self, exc: ConnectorError, kind: str) -> None:
        """Record why the sync stopped: back off, sign in again (with the fix), or failing."""
        self.error = str(exc)
        if isinstance(exc, TransientError):
            self.state, self.retry_after = "backoff", exc.retry_after
        elif isinstance(exc, AuthRequired):
            self.state, self.fix = (
                "auth_required",
                exc.fix or f"keepwarm auth {kind} {self.account}",
            )
        elif isinstance(exc, SourceError):
            self.state, self.fix = "failing", exc.fix or None
        else:
            self.state = "failing"

    def to_json(self) -> dict[str, object]:
        """The outcome as ``sync --json`` and ``import --json`` print it."""
        return {
            "account": self.account,
            "state": self.state,
            "added": self.added,
            "merged": self.merged,
            "unchanged": self.unchanged,
            "deleted": self.deleted,
            "skipped": dict(self.skipped),
            "error": self.error,
            "fix": self.fix,
            "summary": self.summary(),
        }

    def summary(self) -> str:
        """One line: '12,408 imported, 31 skipped: 29 unparseable date, 2 unreadable'."""
        parts = [f"{self.added:,} imported"]
        if self.invalid_addresses:
            n = self.invalid_addresses
            parts[0] += f" ({n:,} invalid address{'es' if n != 1 else ''} left out)"
        if self.merged:
            parts.append(f"{self.merged:,} already known from elsewhere")
        if self.deleted:
            parts.append(f"{self.deleted:,} removed")
        if self.kept:
            parts.append(f"{self.kept:,} deleted at the source, kept in your history")
        text = ", ".join(parts)
        total_skipped = sum(self.skipped.values())
        if total_skipped:
            reasons = ", ".join(
                f"{n:,} {r}" for r, n in sorted(self.skipped.items(), key=lambda kv: -kv[1])
            )
            text += f", {total_skipped:,} skipped: {reasons}"
        return text


def backoff_delay(
    failures: int, base: timedelta, cap: timedelta, retry_after: float | None = None
) -> float:
    """Exponential backoff with full jitter, never shorter than the server's Retry-After."""
    exp = min(cap.total_seconds(), base.total_seconds() * (2 ** max(0, failures - 1)))
    delay = random.uniform(exp / 2, exp)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return min(delay, cap.total_seconds()) if retry_after is None else delay


def run_account(
    store: Store,
    connector: Connector,
    *,
    on_batch: ProgressCallback | None = None,
    stop: threading.Event | None = None,
    now: Callable[[], float] = time.time,
    intercept: Callable[[Batch], None] | None = None,
) -> SyncOutcome:
    """Sync one account until its connector is caught up, ``stop`` is set, or an error occurs.

    ``stop`` is checked between batches only, so a batch in hand is always committed whole.
    ``intercept`` sees each batch first and may take records out of it (the digest's action
    mails, daemon/actions.py: applied, never stored).
    """
    account, kind = connector.account, connector.kind
    outcome = SyncOutcome(account)
    with store.atomic():
        store.ensure_account(account, kind)
    if store.forget_deleted:  # [privacy] forget_deleted: including what was kept before
        store.forget_deleted_mail(account)
    for attempt in range(2):
        try:
            for batch in connector.sync(store.cursor(account)):
                if intercept is not None:
                    intercept(batch)
                outcome.count(store.apply_batch(account, kind, batch))
                if on_batch is not None:
                    on_batch(account, batch.progress, batch)
                if stop is not None and stop.is_set():
                    outcome.state = "interrupted"
                    break
            break
        except CursorExpired as exc:
            if attempt == 1:
                outcome.state, outcome.error = "failing", f"cursor expired twice in a row: {exc}"
                break
            log.warning("account %s: %s; starting a full resync", account, exc)
            store.clear_cursor(account)
            outcome.full_resync = True
        except ConnectorError as exc:  # transient, auth, source or another connector error
            outcome.failed(exc, kind)
            break
    state = outcome.state
    if state == "ok" or state == "interrupted":
        store.set_account_state(account, kind, "ok", now=now(), ok=True)
        store.set_skipped(account, outcome.skipped)
    else:
        store.set_account_state(
            account, kind, state, error=outcome.error, fix=outcome.fix, now=now()
        )
    return outcome
