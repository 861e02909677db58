"""How fresh keepwarm's view is: an empty store, old mail, accounts that are behind.

``people``, ``digest``, ``status`` and ``doctor`` say the same thing, with the command to run,
instead of showing an empty or old view as if it were today's. "Up to date" means the account's
last successful sync is recent for its sync interval, not only that the last one succeeded.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from keepwarm.daemon.config import Account, Config
from keepwarm.daemon.store import AccountState, Store, reads
from keepwarm.digests.render import ACCOUNT_STATES

STALE_AFTER = timedelta(days=3)  # newest mail older than this: the view is old
MIN_WINDOW = timedelta(hours=1)
STATE_WORDS = ACCOUNT_STATES


def newest(store: Store, until: datetime) -> datetime | None:
    """The newest message date or event start up to ``until`` (both read through an index)."""
    found = reads.newest(store.conn, int(until.timestamp()))
    return datetime.fromtimestamp(found, UTC) if found is not None else None


def days(n: int) -> str:
    return "1 day" if n == 1 else f"{n:,} days"


def data_problem(store: Store, now: datetime, config: Config) -> str | None:
    """One sentence when keepwarm's view is empty or old as of ``now``, with what to run."""
    return problem_of(newest(store, now), now, config)


def problem_of(latest: datetime | None, now: datetime, config: Config) -> str | None:
    if latest is None:
        return (
            "keepwarm has no mail or calendar yet: import some with `keepwarm import maildir "
            "PATH` (or mbox, ics), or add an account to the config and run `keepwarm sync`"
        )
    if now - latest <= STALE_AFTER:
        return None
    then = latest.astimezone(config.zone).date()
    age = (now.astimezone(config.zone).date() - then).days
    day = then.isoformat()
    return (
        f"the newest mail or meeting keepwarm has is from {day}, {days(age)} before today: "
        "run `keepwarm sync` (or the same `keepwarm import` again) for newer mail, "
        f"or look at that time with --as-of {day}"
    )


@dataclass(frozen=True)
class AccountFreshness:
    """One account as status and the digest show it."""

    name: str
    kind: str
    configured: bool  # in the config (the daemon syncs it) or only imported
    enabled: bool
    state: str  # a key of STATE_WORDS
    last_ok_at: datetime | None
    last_attempt_at: datetime | None
    next_attempt_at: datetime | None
    last_error: str | None
    fix: str | None
    progress: tuple[int, int | None] | None = None

    @property
    def words(self) -> str:
        return STATE_WORDS.get(self.state, self.state.replace("_", " "))

    @property
    def up_to_date(self) -> bool:
        return self.state == "ok"


def _dt(ts: int | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC)


def window(config: Config, interval: timedelta) -> timedelta:
    """How long after a successful sync an account still counts as up to date."""
    jitter: timedelta = config.daemon.get("jitter") or timedelta(0)
    return max(MIN_WINDOW, 2 * interval + jitter + timedelta(minutes=15))


def accounts(config: Config, store: Store, now: datetime) -> list[AccountFreshness]:
    """Every account: the configured ones (in config order), then those only in the database
    (created by ``keepwarm import``)."""
    states = {s.name: s for s in store.account_states()}
    out = [_configured(acct, states.pop(acct.name, None), config, now) for acct in config.accounts]
    return out + [_imported(s) for s in states.values()]


def _configured(
    acct: Account, s: AccountState | None, config: Config, now: datetime
) -> AccountFreshness:
    """A configured account, as its stored state says (``new`` when it has none yet)."""
    if s is None:
        return AccountFreshness(
            acct.name, acct.kind, True, acct.enabled, "new", None, None, None, None, None, None
        )
    state: str = s.state  # or "stale": synced, but not for longer than its interval allows
    fix = s.fix
    last_ok = _dt(s.last_ok_at)
    if state == "ok" and last_ok is not None and now - last_ok > window(config, acct.sync_interval):
        state = "stale"
        fix = f"keepwarm sync {acct.name} (is the daemon running? keepwarm status)"
    return AccountFreshness(
        acct.name,
        acct.kind,
        True,
        acct.enabled,
        state,
        last_ok,
        _dt(s.last_attempt_at),
        _dt(s.next_attempt_at),
        s.last_error,
        fix,
        (s.progress_done, s.progress_total) if s.progress_done is not None else None,
    )


def _imported(s: AccountState) -> AccountFreshness:
    """An account only in the database (made by ``keepwarm import``)."""
    imported = s.state in ("ok", "new", "interrupted")
    return AccountFreshness(
        s.name,
        s.kind,
        False,
        True,
        "imported" if imported else s.state,
        _dt(s.last_ok_at),
        _dt(s.last_attempt_at),
        None,
        s.last_error,
        s.fix,
    )


def sent_days(store: Store) -> set[str]:
    """Local dates (ISO) whose digest the ledger records as sent."""
    return reads.sent_days(store.conn)


def next_digest(config: Config, now: datetime, sent: set[str]) -> tuple[datetime, bool]:
    """When the next digest is due (tomorrow's once today's went out) and whether it is a
    catch-up of today's that is due now."""
    from keepwarm.daemon.scheduler import plan_digest

    plan = plan_digest(
        now,
        config.digest["time"],
        config.zone,
        config.digest["catch_up_window"],
        lambda day: day.isoformat() in sent,
    )
    return plan.due, plan.catch_up
