"""Google API quota: a per-user token bucket in quota units, a concurrency limit, and retries.

Gmail charges quota *units* per call (messages.get 5, messages.list 5, history.list 2, getProfile 1)
against a per-user budget per minute (6,000 for projects created after 2026-05-01, Gmail API
usage limits page); Calendar counts requests (600 per user per minute). The bucket refills at a
safety share of the budget and holds at most the remaining share, so that no sliding minute ever
sees more than the budget even right after an idle spell.

Retries: 429, 403 with reason ``rateLimitExceeded``/``userRateLimitExceeded`` (Calendar also
``quotaExceeded``), 5xx, timeouts and dropped connections are retried with exponential backoff and
full jitter, never sooner than the server's ``Retry-After``. The reason is read from the error
body's JSON, never from the message text. After the bounded number of attempts
:class:`TransientError` is raised with ``retry_after``.

A rate-limit answer *without* ``Retry-After`` (Google sends 403s and 429s without one): a 403
``userRateLimitExceeded``/``rateLimitExceeded``, or 429s twice in a row, mean the configured
budget is more than Google grants right now: the bucket spends 15% slower (never below a quarter
of the budget) and, when refusals continue, pauses for ``base``, then twice as long, up to
``cap``; clean answers win the pace back 2% at a time. A single 429 is more likely the per-user
concurrency limit, which the Gmail connector's batch window answers.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from keepwarm.connectors.base import TransientError

RATE_LIMIT_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded", "quotaExceeded"})
SAFETY = 0.95  # refill at 95% of the budget; the other 5% is the burst capacity
SLOWER, FASTER, FLOOR = 0.85, 1.02, 0.25  # pace after a refusal, after a clean round, lowest


def error_body(content: bytes | str | None) -> dict[str, Any]:
    """The ``error`` object of a Google error response, or ``{}``."""
    if not content:
        return {}
    try:
        data = json.loads(content)
    except (ValueError, UnicodeDecodeError):
        return {}
    err = data.get("error") if isinstance(data, dict) else None
    return err if isinstance(err, dict) else {}


def error_reason(content: bytes | str | None) -> str | None:
    """The machine reason (``errors[0].reason``, else ``status``) from an error body."""
    err = error_body(content)
    errors = err.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        reason = errors[0].get("reason")
        if isinstance(reason, str):
            return reason
    status = err.get("status")
    return status if isinstance(status, str) else None


def is_retryable(status: int, reason: str | None) -> bool:
    """429, 5xx, and 403 only when the body says it is a rate limit."""
    if status == 429 or status >= 500:
        return True
    return status == 403 and reason in RATE_LIMIT_REASONS


def retry_after_seconds(value: str | None) -> float | None:
    """A Retry-After header in seconds (HTTP-dates are rare here and treated as unknown)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


class TokenBucket:
    """Thread-safe token bucket: ``acquire(units)`` blocks until the budget allows ``units``."""

    def __init__(
        self,
        units_per_minute: float,
        *,
        safety: float = SAFETY,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.full_rate = self.rate = units_per_minute * safety / 60.0
        self.capacity = max(1.0, units_per_minute * (1.0 - safety))
        self.strikes = 0  # refusals without Retry-After since the last clean round
        self._clock = clock
        self._sleep = sleep
        self._tokens = self.capacity
        self._stamp = clock()
        self._paused_until = 0.0
        self._lock = threading.Lock()
        self.waited = 0.0

    def largest_request(self) -> int:
        """The most units one call may take at once (a batch is sized to fit)."""
        return int(self.capacity)

    def acquire(self, units: float) -> None:
        units = min(units, self.capacity)
        while True:
            with self._lock:
                now = self._clock()
                self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
                self._stamp = now
                wait = self._paused_until - now
                if wait <= 0 and self._tokens >= units:
                    self._tokens -= units
                    return
                if wait <= 0:
                    wait = (units - self._tokens) / self.rate
            self.waited += wait
            self._sleep(wait)

    def pause(self, seconds: float) -> None:
        """The server said slow down: nobody spends before ``seconds`` from now."""
        with self._lock:
            self._paused_until = max(self._paused_until, self._clock() + seconds)
            self._tokens = 0.0

    def throttled(
        self, retry_after: float | None, base: float, cap: float, *, quota: bool = False
    ) -> None:
        """Google refused for rate: wait its Retry-After. Without one, a 429 may be the per-user
        concurrency limit (the batch size deals with that), so a first one changes nothing here;
        a 403 rate limit (``quota``) or a second refusal in a row means the budget is too high:
        spend slower and pause ``base``, ``2 * base``... up to ``cap``. Refusals that arrive
        during a pause (requests already in flight) count once."""
        if retry_after is not None:
            self.pause(min(retry_after, cap))
            return
        with self._lock:
            now = self._clock()
            if now < self._paused_until:
                return
            self.strikes += 1
            if quota or self.strikes > 1:
                self.rate = max(self.full_rate * FLOOR, self.rate * SLOWER)
            wait = 0.0 if self.strikes == 1 else min(cap, base * 2 ** (self.strikes - 2))
            self._paused_until = now + wait
            self._tokens = 0.0

    def clean(self) -> None:
        """A round went through without refusals: win the pace back, a little at a time."""
        with self._lock:
            self.strikes = 0
            self.rate = min(self.full_rate, self.rate * FASTER)


@dataclass
class RetryPolicy:
    """How often and how long to retry one call (or one batch round)."""

    attempts: int = 8
    base: float = 1.0
    cap: float = 64.0
    rng: random.Random = field(default_factory=random.Random)
    sleep: Callable[[float], None] = time.sleep

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Full jitter on ``base * 2**attempt`` capped, but never below Retry-After."""
        exp = min(self.cap, self.base * (2**attempt))
        d = self.rng.uniform(0, exp)
        return max(d, retry_after) if retry_after is not None else d


class Limits:
    """The quota bucket plus the concurrency limit shared by one account's calls."""

    def __init__(self, bucket: TokenBucket, max_concurrency: int) -> None:
        self.bucket = bucket
        self.max_concurrency = max(1, max_concurrency)
        self._slots = threading.BoundedSemaphore(self.max_concurrency)

    @contextmanager
    def slot(self, units: float) -> Iterator[None]:
        self.bucket.acquire(units)
        with self._slots:
            yield


def give_up(what: str, retry_after: float | None) -> TransientError:
    return TransientError(
        f"Google kept refusing {what} (rate limits or server errors); keepwarm will try again later",
        retry_after=retry_after,
    )
