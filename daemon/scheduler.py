"""When each job runs next: account syncs (interval, jitter, backoff, parking) and the daily digest.

Everything here takes an explicit, timezone-aware ``now`` so it can be tested with an injected
clock, across DST changes.

Why the jobs are ``schedule`` jobs with our own next-run times: ``schedule`` keeps its clock as
naive *process-local* time (``datetime.now()``). Under systemd the process zone is usually UTC,
not the user's ``[me].timezone``, and naive local arithmetic is wrong across DST changes (a job
can fire an hour early or late in the repeated hour, or a "07:30" that does not exist is
skipped). So the daemon keeps ``schedule`` for what it is good at (a registry of tagged jobs,
``run_pending()`` dispatch in due order, ``idle_seconds``), and :class:`PlannedJob` replaces its
two clock decisions: ``should_run`` compares an aware UTC ``due`` against the injected clock, and
the next run is computed here (``next_digest_at`` with zoneinfo; sync intervals in UTC
seconds). ``next_run`` is still filled in (naive local, as ``schedule`` expects) so sorting and
``repr`` keep working.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import schedule

from keepwarm.daemon.sync import backoff_delay

Clock = Callable[[], datetime]

# A job that must not run until something else reschedules it (in flight, or parked).
NEVER = datetime(9999, 1, 1, tzinfo=UTC)
BACKOFF_BASE = timedelta(minutes=1)


def utc_now() -> datetime:
    return datetime.now(UTC)


# -- the digest -----------------------------------------------------------------------------------
def parse_clock(value: str) -> time:
    """``"07:30"`` or ``"07:30:15"`` (as validated by the config) -> time."""
    parts = [int(p) for p in value.split(":")] + [0]
    return time(parts[0], parts[1], parts[2])


def local_datetime(day: date, at: time, zone: ZoneInfo) -> datetime:
    """``day`` at ``at`` in ``zone`` as an aware UTC instant, DST-safe.

    A time that does not exist that day (spring forward: 02:30 in Europe/Berlin) becomes the
    instant the same wall-clock offset reaches, i.e. moved forward by the gap (03:30 local). A
    time that happens twice (fall back) means its first occurrence.
    """
    # zoneinfo with fold=0 reads a gap time with the offset in force before the jump, which
    # lands the instant after the jump by the gap's length; and an ambiguous time as its first
    # occurrence. Both are what we want.
    return datetime.combine(day, at).replace(tzinfo=zone, fold=0).astimezone(UTC)


def digest_time_on(day: date, clock: str, zone: ZoneInfo) -> datetime:
    return local_datetime(day, parse_clock(clock), zone)


def local_date(now: datetime, zone: ZoneInfo) -> date:
    return now.astimezone(zone).date()


@dataclass(frozen=True)
class DigestPlan:
    """The next digest attempt: when, and for which local date."""

    due: datetime
    local_date: date
    catch_up: bool = False


def plan_digest(
    now: datetime,
    clock: str,
    zone: ZoneInfo,
    window: timedelta,
    done: Callable[[date], bool],
) -> DigestPlan:
    """The next time the digest should be attempted.

    ``done(local_date)`` says whether that day's digest needs no more attempts (the ledger says
    sent, or it failed for good). Today's digest is due at its local time; if that time has
    passed less than ``window`` ago and today is not done (the machine was off or asleep), it is
    due now, once; otherwise the next day's local time.
    """
    today = local_date(now, zone)
    for offset in range(0, 3):
        day = today + timedelta(days=offset)
        at = digest_time_on(day, clock, zone)
        if done(day):
            continue
        if at > now:
            return DigestPlan(at, day)
        if now - at < window:
            return DigestPlan(now, day, catch_up=True)
    day = today + timedelta(days=3)  # pragma: no cover - only if three days are all done
    return DigestPlan(digest_time_on(day, clock, zone), day)


def next_digest_at(now: datetime, clock: str, zone: ZoneInfo) -> datetime:
    """The next scheduled local digest time strictly after ``now`` (ignores the ledger)."""
    return plan_digest(now, clock, zone, timedelta(0), lambda d: False).due


def in_catch_up_window(
    now: datetime, day: date, clock: str, zone: ZoneInfo, window: timedelta
) -> bool:
    return timedelta(0) <= now - digest_time_on(day, clock, zone) < window


# -- account syncs --------------------------------------------------------------------------------
def next_sync_at(
    now: datetime,
    state: str,
    *,
    interval: timedelta,
    jitter: timedelta,
    failures: int,
    max_backoff: timedelta,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> datetime | None:
    """When an account syncs next after an attempt ended in ``state``; None = parked.

    ok / interrupted: one interval plus up to ``jitter``. backoff / failing: exponential backoff
    from one minute, capped by ``max_backoff`` (and never longer than the interval would be for
    a transient error), never shorter than the server's Retry-After. auth_required: parked until
    the user re-authorises.
    """
    r = rng or random
    if state == "auth_required":
        return None
    if state in ("ok", "interrupted", "new"):
        extra = r.uniform(0, jitter.total_seconds()) if jitter.total_seconds() > 0 else 0.0
        return now + interval + timedelta(seconds=extra)
    delay = backoff_delay(max(1, failures), BACKOFF_BASE, max_backoff, retry_after)
    return now + timedelta(seconds=delay)


# -- schedule integration -------------------------------------------------------------------------
class PlannedScheduler(schedule.Scheduler):  # type: ignore[misc]
    """A ``schedule.Scheduler`` whose jobs run at aware UTC times from an injected clock."""

    def __init__(self, clock: Clock = utc_now) -> None:
        super().__init__()
        self.clock = clock

    def add(self, func: Callable[[], Any], due: datetime, *tags: Hashable) -> PlannedJob:
        job = PlannedJob(self, due)
        job.tag(*tags)
        job.do(func)
        return job

    def job(self, tag: Hashable) -> PlannedJob | None:
        for j in self.get_jobs(tag):
            assert isinstance(j, PlannedJob)
            return j
        return None

    def next_due(self) -> datetime | None:
        dues = [j.due for j in self.jobs if isinstance(j, PlannedJob) and j.due < NEVER]
        return min(dues) if dues else None

    @property
    def idle_seconds(self) -> float | None:
        due = self.next_due()
        if due is None:
            return None
        return (due - self.clock()).total_seconds()


class PlannedJob(schedule.Job):  # type: ignore[misc]
    """A job with an aware UTC ``due`` time set by the daemon, not by ``schedule``'s naive clock.

    After it runs it is parked (``NEVER``) until the daemon plans it again from the outcome (the
    work itself runs on the worker thread, so the next time is known only when it finishes).
    """

    def __init__(self, scheduler: PlannedScheduler, due: datetime) -> None:
        super().__init__(1, scheduler)
        self.unit = "seconds"
        self.clock = scheduler.clock
        self.due = due

    def plan(self, due: datetime | None) -> None:
        self.due = NEVER if due is None else due.astimezone(UTC)
        self._sync_next_run()

    def _sync_next_run(self) -> None:
        if self.due >= NEVER:
            self.next_run = datetime.max
        else:
            self.next_run = self.due.astimezone().replace(tzinfo=None)

    @property
    def parked(self) -> bool:
        return self.due >= NEVER

    @property
    def should_run(self) -> bool:
        return bool(self.due < NEVER and self.clock() >= self.due)

    def _schedule_next_run(self) -> None:
        # Called by schedule after do() and after each run: keep the planned time on do(),
        # park after a run until the daemon plans the next one.
        if self.last_run is not None:
            self.due = NEVER
        self._sync_next_run()

    def __lt__(self, other: Any) -> bool:
        return bool(self.due < other.due) if isinstance(other, PlannedJob) else NotImplemented
