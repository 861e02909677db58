"""Confirming digests that were handed over without an answer (a crash, a dropped connection).

Such a digest is ``sent`` but *unconfirmed* in the ledger: keepwarm cannot know whether the
server took it, and it never sends blindly again (two digests are worse than a late one). But the
digest goes to the user's own address, and keepwarm syncs that mailbox, so it can look:

1. **Confirmed** when a synced account has stored a message with the digest's Message-ID.
2. **Resent** (the same bytes, the same Message-ID, once) when it is still missing
   ``[digest] resend_after`` (30 minutes) after it was handed over, and an account that has
   received earlier digests has finished a sync at least that long after it: had it arrived,
   that account would have it. ``keepwarm status`` and the next digest say it was resent.
3. Otherwise (no account receives digests, or the resend too goes unseen) the next digest says
   it may not have arrived.

:func:`settle_deliveries` runs after syncs (the daemon's, ``keepwarm sync``) and before each
digest.
"""

from __future__ import annotations

import email
import logging
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta
from email.message import EmailMessage

from keepwarm.core.vocabulary import DIGEST_MARKER
from keepwarm.daemon.config import Config
from keepwarm.daemon.digest_job import (
    LedgerRow,
    chosen_delivery,
    delivery_claim,
    record_ledger,
)
from keepwarm.daemon.store import Store, ledger
from keepwarm.digests.deliver import POLICY, Delivery, DeliveryError

log = logging.getLogger(__name__)

LOOKBACK = timedelta(days=7)  # how far back unconfirmed digests are looked at


def _bare(message_id: str) -> str:
    return message_id.strip().strip("<>")


def seen_in_mail(store: Store, message_id: str) -> bool:
    """A synced account has stored the message with this Message-ID."""
    return ledger.message_stored(store, _bare(message_id))


def receiving_accounts(store: Store) -> list[str]:
    """Accounts that have stored a keepwarm digest: they show whether one arrived."""
    return ledger.accounts_with_marker(store, DIGEST_MARKER)


def _unconfirmed(store: Store, today: date) -> list[LedgerRow]:
    return ledger.unconfirmed_since(store, today - LOOKBACK)


def settle_deliveries(
    config: Config,
    store: Store,
    now: datetime,
    *,
    delivery: Delivery | None = None,
    clock: Callable[[], float] = time.time,
) -> list[str]:
    """Confirm or resend the unconfirmed digests of the last week; one line per action taken."""
    done: list[str] = []
    today = now.astimezone(config.zone).date()
    for row in _unconfirmed(store, today):
        day = date.fromisoformat(row.local_date)
        if seen_in_mail(store, row.message_id):
            record_ledger(
                store,
                day,
                unconfirmed=0,
                confirmed_at=int(clock()),
                message=None,
                last_error=("resent, and it arrived" if row.resent_at else "confirmed: it arrived"),
            )
            done.append(f"the digest of {day} arrived after all (confirmed)")
            continue
        wait: timedelta = config.digest.get("resend_after") or timedelta(minutes=30)
        if row.resent_at is not None or not _missing(store, row, now, wait):
            continue
        line = _resend(config, store, row, day, delivery, clock, wait)
        if line:
            done.append(line)
    for line in done:
        log.info("%s", line)
    return done


def _missing(store: Store, row: LedgerRow, now: datetime, wait: timedelta) -> bool:
    """Long enough after the handover, an account that receives digests synced without it."""
    handed = row.sent_at or row.created_at
    bound = handed + wait.total_seconds()
    if now.timestamp() < bound:
        return False
    accounts = receiving_accounts(store)
    if not accounts:
        return False
    synced = store.last_ok(accounts)
    return synced is not None and synced >= bound


def _resend(
    config: Config,
    store: Store,
    row: LedgerRow,
    day: date,
    delivery: Delivery | None,
    clock: Callable[[], float],
    wait: timedelta,
) -> str | None:
    blob = ledger.message_of(store, date.fromisoformat(row.local_date))
    if not blob:
        return None  # an older keepwarm kept no copy: the next digest says it may be lost
    message = email.message_from_bytes(bytes(blob), policy=POLICY)
    assert isinstance(message, EmailMessage)
    html_part = message.get_body(("html",))
    html = str(html_part.get_content()) if html_part is not None else ""
    with delivery_claim(store) as claimed:
        if not claimed:
            return None  # someone is delivering right now: look again after the next sync
        try:
            with chosen_delivery(config, delivery) as chosen:
                chosen.deliver(message, local_date=day, html=html, before_data=lambda: None)
        except DeliveryError as exc:
            if not exc.maybe_sent:
                log.warning("digest %s: could not be sent again: %s", day, exc)
                return None  # tried again after the next sync
        stamp = int(clock())
        record_ledger(
            store,
            day,
            resent_at=stamp,
            last_error=f"resent: it had not arrived in your mail {_span(wait)} after it was sent",
        )
    log.warning("digest %s: it had not arrived in your mail; sent it again (same message)", day)
    return f"the digest of {day} had not arrived: sent it again (the same message)"


def _span(wait: timedelta) -> str:
    minutes = int(wait.total_seconds() // 60)
    return f"{minutes} minutes" if minutes >= 1 else f"{int(wait.total_seconds())} seconds"
