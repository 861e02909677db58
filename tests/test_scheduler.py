"""Scheduler logic with an injected clock: digest times across DST, catch-up, sync backoff."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from keepwarm.daemon.scheduler import (
    NEVER,
    PlannedScheduler,
    digest_time_on,
    in_catch_up_window,
    local_datetime,
    next_digest_at,
    next_sync_at,
    parse_clock,
    plan_digest,
)

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
H12 = timedelta(hours=12)


def utc(*a: int) -> datetime:
    return datetime(*a, tzinfo=UTC)  # type: ignore[misc]


def never_done(_d: date) -> bool:
    return False


def test_ordinary_day_in_winter_and_summer() -> None:
    assert digest_time_on(date(2026, 1, 15), "07:30", BERLIN) == utc(2026, 1, 15, 6, 30)
    assert digest_time_on(date(2026, 7, 15), "07:30", BERLIN) == utc(2026, 7, 15, 5, 30)
    assert digest_time_on(date(2026, 7, 15), "07:30", NEW_YORK) == utc(2026, 7, 15, 11, 30)


def test_spring_forward_nonexistent_time_moves_forward_by_the_gap() -> None:
    # 2026-03-29 in Berlin: 02:00 CET jumps to 03:00 CEST; 02:30 does not exist.
    at = digest_time_on(date(2026, 3, 29), "02:30", BERLIN)
    assert at == utc(2026, 3, 29, 1, 30)
    assert at.astimezone(BERLIN).strftime("%H:%M %Z") == "03:30 CEST"
    # Happens once that day: the next one is on the 30th at 02:30 CEST.
    assert next_digest_at(at, "02:30", BERLIN) == utc(2026, 3, 30, 0, 30)
    # New York, 2026-03-08: 02:00 EST jumps to 03:00 EDT.
    ny = digest_time_on(date(2026, 3, 8), "02:30", NEW_YORK)
    assert ny.astimezone(NEW_YORK).strftime("%H:%M %Z") == "03:30 EDT"


def test_fall_back_ambiguous_time_runs_once_at_its_first_occurrence() -> None:
    # 2026-10-25 in Berlin: 03:00 CEST falls back to 02:00 CET; 02:30 happens twice.
    first = digest_time_on(date(2026, 10, 25), "02:30", BERLIN)
    assert first == utc(2026, 10, 25, 0, 30)  # 02:30 CEST
    # Right after it (during the repeated hour) the next digest is the next day, not 02:30 CET.
    just_after = first + timedelta(minutes=1)
    assert next_digest_at(just_after, "02:30", BERLIN) == utc(2026, 10, 26, 1, 30)
    # Walking through the whole night in 5-minute steps gives exactly one due time that day.
    seen = set()
    t = utc(2026, 10, 24, 20, 0)
    while t < utc(2026, 10, 25, 20, 0):
        seen.add(next_digest_at(t, "02:30", BERLIN))
        t += timedelta(minutes=5)
    assert seen == {first, utc(2026, 10, 26, 1, 30)}


def test_new_york_fall_back_and_the_day_is_25_hours_long() -> None:
    # 2026-11-01: 02:00 EDT falls back to 01:00 EST.
    a = digest_time_on(date(2026, 10, 31), "07:00", NEW_YORK)
    b = digest_time_on(date(2026, 11, 1), "07:00", NEW_YORK)
    assert b - a == timedelta(hours=25)
    assert next_digest_at(a, "07:00", NEW_YORK) == b
    amb = digest_time_on(date(2026, 11, 1), "01:30", NEW_YORK)
    assert amb.astimezone(NEW_YORK).tzname() == "EDT"


def test_plan_is_today_at_the_local_time_or_tomorrow() -> None:
    morning = utc(2026, 6, 1, 3, 0)  # 05:00 in Berlin
    plan = plan_digest(morning, "07:30", BERLIN, H12, never_done)
    assert (plan.due, plan.local_date, plan.catch_up) == (
        utc(2026, 6, 1, 5, 30),
        date(2026, 6, 1),
        False,
    )
    sent = {date(2026, 6, 1)}
    after = utc(2026, 6, 1, 6, 0)
    plan = plan_digest(after, "07:30", BERLIN, H12, lambda d: d in sent)
    assert (plan.due, plan.local_date, plan.catch_up) == (
        utc(2026, 6, 2, 5, 30),
        date(2026, 6, 2),
        False,
    )


def test_a_missed_morning_is_caught_up_once_within_the_window() -> None:
    woke = utc(2026, 6, 1, 9, 0)  # 11:00 in Berlin: the machine slept through 07:30
    ledger: set[date] = set()
    plan = plan_digest(woke, "07:30", BERLIN, H12, lambda d: d in ledger)
    assert plan.catch_up and plan.due == woke and plan.local_date == date(2026, 6, 1)
    ledger.add(plan.local_date)  # the digest job records it in the ledger
    plan = plan_digest(woke + timedelta(minutes=1), "07:30", BERLIN, H12, lambda d: d in ledger)
    assert not plan.catch_up and plan.local_date == date(2026, 6, 2)


def test_past_the_window_the_missed_digest_is_skipped() -> None:
    late = utc(2026, 6, 1, 18, 0)  # 20:00: 12.5 h after 07:30
    plan = plan_digest(late, "07:30", BERLIN, H12, never_done)
    assert not plan.catch_up and plan.local_date == date(2026, 6, 2)
    assert not in_catch_up_window(late, date(2026, 6, 1), "07:30", BERLIN, H12)
    assert in_catch_up_window(late, date(2026, 6, 1), "07:30", BERLIN, timedelta(hours=13))


def test_local_datetime_round_trips_on_ordinary_times() -> None:
    for day in (date(2026, 1, 1), date(2026, 3, 29), date(2026, 10, 25)):
        for clock in ("00:00", "07:30", "12:00", "23:59"):
            at = local_datetime(day, parse_clock(clock), BERLIN)
            assert at.astimezone(BERLIN).strftime("%Y-%m-%d %H:%M") == f"{day} {clock}"


def test_sync_intervals_jitter_backoff_and_parking() -> None:
    now = utc(2026, 6, 1, 12, 0)
    rng = random.Random(4)
    common = {
        "interval": timedelta(minutes=15),
        "jitter": timedelta(minutes=2),
        "max_backoff": timedelta(hours=6),
        "rng": rng,
    }
    for _ in range(50):
        ok = next_sync_at(now, "ok", failures=0, **common)  # type: ignore[arg-type]
        assert ok is not None
        assert timedelta(minutes=15) <= ok - now <= timedelta(minutes=17)
    assert next_sync_at(now, "auth_required", failures=1, **common) is None  # type: ignore[arg-type]
    delays = []
    for failures in (1, 2, 3, 4, 20):
        at = next_sync_at(now, "backoff", failures=failures, **common)  # type: ignore[arg-type]
        assert at is not None
        delays.append((at - now).total_seconds())
    assert 30 <= delays[0] <= 60
    assert 240 <= delays[3] <= 480
    assert delays[4] <= 6 * 3600
    at = next_sync_at(now, "backoff", failures=1, retry_after=900, **common)  # type: ignore[arg-type]
    assert at is not None and (at - now).total_seconds() >= 900


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def test_planned_jobs_run_at_their_utc_time_and_park_after_running() -> None:
    clock = FakeClock(utc(2026, 10, 25, 0, 0))
    sched = PlannedScheduler(clock)
    ran: list[str] = []
    a = sched.add(lambda: ran.append("a"), utc(2026, 10, 25, 0, 30), "sync", "a")
    b = sched.add(lambda: ran.append("b"), utc(2026, 10, 25, 1, 10), "digest")
    assert sched.idle_seconds == 30 * 60
    sched.run_pending()
    assert ran == []
    clock.now = utc(2026, 10, 25, 1, 5)  # during Berlin's repeated hour: a only
    sched.run_pending()
    assert ran == ["a"] and a.parked and a.due == NEVER
    assert sched.job("digest") is b and sched.next_due() == b.due
    clock.now = utc(2026, 10, 25, 1, 10)
    sched.run_pending()
    assert ran == ["a", "b"] and sched.idle_seconds is None
    a.plan(clock.now + timedelta(minutes=15))
    assert not a.parked and sched.idle_seconds == 15 * 60


@pytest.mark.parametrize("zone", ["Europe/Berlin", "America/New_York", "Asia/Kolkata", "UTC"])
def test_every_day_of_a_year_has_exactly_one_digest(zone: str) -> None:
    tz = ZoneInfo(zone)
    t = datetime(2026, 1, 1, tzinfo=tz).astimezone(UTC)
    end = datetime(2027, 1, 1, tzinfo=tz).astimezone(UTC)
    days = []
    while True:
        t = next_digest_at(t, "02:30", tz)
        if t >= end:
            break
        days.append(t.astimezone(tz).date())
    assert days == [date(2026, 1, 1) + timedelta(days=i) for i in range(365)]


def test_digest_time_may_carry_seconds() -> None:
    from keepwarm.daemon.config import ConfigError, loads

    base = '[me]\nname = "T"\naddresses = ["me@example.com"]\ntimezone = "Europe/Berlin"\n'
    cfg = loads(base + '[digest]\ntime = "7:05:09"\n')
    assert cfg.digest["time"] == "07:05:09"
    assert digest_time_on(date(2026, 1, 15), cfg.digest["time"], BERLIN) == datetime(
        2026, 1, 15, 6, 5, 9, tzinfo=UTC
    )
    with pytest.raises(ConfigError, match="HH:MM"):
        loads(base + '[digest]\ntime = "07:05:60"\n')
