"""``keepwarm run``: the long-running process (foreground, as systemd expects).

Threads: the *main loop* owns the schedule, the signals and every sd_notify message; one *worker*
thread does the work (account syncs, the digest) with its own database connection, one task at
a time. Signal handlers only write a byte to a socketpair; the worker writes one when a task
ends. The main loop sleeps in ``select`` until the next job is due, a byte arrives, the
watchdog needs a ping, or at most a minute has passed (monotonic timeouts stop while the machine
sleeps, so the loop re-reads the wall clock at least once a minute after a resume).

WATCHDOG=1 is sent from the main loop only, and only while the worker is idle or has shown
progress (a heartbeat per batch) within the watchdog interval, so a wedged connector stops the
pings and systemd restarts the service.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import queue
import selectors
import signal
import socket
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from keepwarm.connectors.base import Batch, Connector, ConnectorError, Progress
from keepwarm.daemon import config as cfgmod
from keepwarm.daemon.actions import ActionInbox
from keepwarm.daemon.config import Account, Config, ConfigError
from keepwarm.daemon.delivery_check import settle_deliveries
from keepwarm.daemon.doctor import permission_problems
from keepwarm.daemon.errors import StartupError as StartupError
from keepwarm.daemon.lock import InstanceLock, lock_path_for
from keepwarm.daemon.scheduler import (
    Clock,
    DigestPlan,
    PlannedJob,
    PlannedScheduler,
    in_catch_up_window,
    local_date,
    next_sync_at,
    plan_digest,
    utc_now,
)
from keepwarm.daemon.store import (
    AccountState,
    Store,
    StoreError,
    database_problem,
    ledger,
    unwritable_directory,
)
from keepwarm.daemon.sync import SyncOutcome, backoff_delay, run_account
from keepwarm.daemon.systemd import Notifier

if TYPE_CHECKING:  # the digest job loads when a digest runs
    from keepwarm.daemon.digest_job import DigestOutcome

log = logging.getLogger("keepwarm.daemon")

EXIT_USER = 2  # as the CLI's: the user must act; the units do not restart on it
MAX_SLEEP = 60.0  # seconds; re-read the wall clock at least this often (suspend/resume)
STOP_GRACE = 20.0  # seconds to let the batch in hand finish on SIGTERM
PROGRESS_EVERY = 30.0  # seconds between progress lines of a long sync
DIGEST_RETRY_CAP = timedelta(hours=1)
IN_PROGRESS_RECHECK = timedelta(minutes=5)  # another process holds the delivery: look again
_WAKE = 0  # byte written by the worker; signals write their number


DigestJob = Callable[..., "DigestOutcome"]
ConnectorFactory = Callable[[Account, Config], Connector]


def default_digest_job(
    config: Config, store: Store, *, now: datetime, send: bool = True
) -> DigestOutcome:
    from keepwarm.daemon.digest_job import run_digest  # the engine loads when a digest runs

    result: DigestOutcome = run_digest(config, store, now=now, send=send)
    return result


def default_connector(account: Account, config: Config) -> Connector:
    from keepwarm.daemon.accounts import make_connector

    return make_connector(account, config)


# -- the worker -----------------------------------------------------------------------------------
@dataclass
class Task:
    kind: str  # sync | digest
    config: Config
    account: str | None = None
    day: date | None = None


@dataclass
class TaskResult:
    task: Task
    sync: SyncOutcome | None = None
    digest: DigestOutcome | None = None
    crash: str | None = None  # an unexpected exception, already logged
    failures: int = 0
    preempted: bool = False


class Worker(threading.Thread):
    """Runs tasks one at a time with its own Store; reports each result to the main loop."""

    def __init__(
        self,
        store_path: Path,
        wake: Callable[[], None],
        digest_job: DigestJob,
        connector_factory: ConnectorFactory,
        clock: Clock,
    ) -> None:
        super().__init__(name="keepwarm-worker", daemon=True)
        self.store_path = store_path
        self.wake = wake
        self.digest_job = digest_job
        self.connector_factory = connector_factory
        self.clock = clock
        # The digest goes before queued syncs (and interrupts a running one between batches).
        self.tasks: queue.PriorityQueue[tuple[int, int, Task | None]] = queue.PriorityQueue()
        self._seq = itertools.count()
        self.results: queue.SimpleQueue[TaskResult] = queue.SimpleQueue()
        self.shutdown = threading.Event()
        self.interrupt = threading.Event()  # the current sync stops after its batch in hand
        self.heartbeat = time.monotonic()
        self.busy: Task | None = None
        self.pending = 0
        self.opened = threading.Event()
        self.open_error: str | None = None
        self._store: Store | None = None  # the worker's own connection, while it runs
        self.fatal: str | None = None  # the database cannot be used: the daemon stops

    def submit(self, task: Task) -> None:
        self.pending += 1
        self.tasks.put((0 if task.kind == "digest" else 1, next(self._seq), task))

    def finish(self) -> None:
        """Stop after the tasks in hand (queued ones are skipped once ``shutdown`` is set)."""
        self.tasks.put((2, next(self._seq), None))

    def stalled(self, limit: float) -> bool:
        return self.busy is not None and time.monotonic() - self.heartbeat > limit

    def abandonable(self) -> bool:
        """Busy with a sync that is reading its source, with no transaction open: stopping the
        process now loses nothing (the next start resumes after its last stored batch)."""
        busy, store = self.busy, self._store
        return (
            busy is not None
            and busy.kind == "sync"
            and store is not None
            and not store.conn.in_transaction
        )

    def run(self) -> None:
        try:
            store = Store.open(self.store_path)
        except StoreError as exc:
            self.open_error = str(exc)
            self.opened.set()
            self.wake()
            return
        self._store = store
        self.opened.set()
        try:
            while True:
                _prio, _seq, task = self.tasks.get()
                if task is None:
                    return
                self.busy = task
                self.heartbeat = time.monotonic()
                try:
                    result = self._run(store, task)
                finally:
                    self.busy = None
                    self.heartbeat = time.monotonic()
                self.results.put(result)
                self.wake()
        finally:
            store.close()

    def _run(self, store: Store, task: Task) -> TaskResult:
        if self.shutdown.is_set():
            return TaskResult(task, crash="not started: shutting down")
        try:
            if task.kind == "sync":
                return self._sync(store, task)
            return self._digest(store, task)
        except Exception as exc:  # a bug or an unclassified failure must not kill the daemon
            problem = database_problem(self.store_path, exc)
            if problem is not None:  # the database, not the task: one line, no traceback
                log.error("%s %s: %s", task.kind, task.account or "", problem)
                if problem.fatal:
                    self.fatal = str(problem)
                return TaskResult(task, crash=str(problem))
            log.exception("%s %s: unexpected error", task.kind, task.account or "")
            return TaskResult(task, crash=f"{type(exc).__name__}: {exc}")

    def _sync(self, store: Store, task: Task) -> TaskResult:
        assert task.account is not None
        account = task.config.account(task.account)
        store.forget_deleted = task.config.forget_deleted
        self.interrupt.clear()
        if self.shutdown.is_set():
            self.interrupt.set()
        try:
            connector = self.connector_factory(account, task.config)
        except ConnectorError as exc:
            outcome = SyncOutcome(account.name, state="failing", error=str(exc))
            store.set_account_state(
                account.name, account.kind, "failing", error=str(exc), now=time.time()
            )
        else:
            outcome = run_account(
                store,
                connector,
                on_batch=self._progress(account.name),
                stop=self.interrupt,
                intercept=ActionInbox(task.config, store),
            )
            if outcome.state == "ok":  # a digest lost in a crash may have arrived by now
                settle_deliveries(task.config, store, self.clock())
        preempted = outcome.state == "interrupted" and not self.shutdown.is_set()
        return TaskResult(
            task, sync=outcome, failures=store.failures(account.name), preempted=preempted
        )

    def _progress(self, account: str) -> Callable[[str, Progress | None, Batch], None]:
        started = last = time.monotonic()
        done = 0

        def on_batch(_account: str, progress: Progress | None, batch: Batch) -> None:
            nonlocal last, done
            now = time.monotonic()
            self.heartbeat = now
            done = progress.done if progress else done + len(batch)
            if now - last >= PROGRESS_EVERY:
                last = now
                total = f" of about {progress.total:,}" if progress and progress.total else ""
                log.info(
                    "account %s: %s%s records synced so far (%d min)",
                    account,
                    f"{done:,}",
                    total,
                    int((now - started) // 60),
                )

        return on_batch

    def _digest(self, store: Store, task: Task) -> TaskResult:
        settle_deliveries(task.config, store, self.clock())
        outcome = self.digest_job(task.config, store, now=self.clock(), send=True)
        return TaskResult(task, digest=outcome)


# -- per-account bookkeeping in the main loop -----------------------------------------------------
@dataclass
class AccountRuntime:
    name: str
    state: str = "new"
    last_ok: float | None = None
    last_error: str | None = None
    fix: str | None = None
    failures: int = 0
    watch: Path | None = None  # the file whose change un-parks an auth-required account
    watch_stamp: float | None = None
    job: PlannedJob | None = None


@dataclass
class DigestRuntime:
    plan: DigestPlan | None = None
    given_up: set[date] = field(default_factory=set)
    failures: int = 0
    last: str | None = None  # e.g. "sent 2026-11-22"
    job: PlannedJob | None = None


STATE_WORDS = {
    "ok": "ok",
    "new": "not synced yet",
    "backoff": "backing off",
    "auth_required": "auth required",
    "failing": "failing",
    "interrupted": "ok",
}


def _mtime(path: Path | None) -> float | None:
    if path is None:
        return None
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def _ago(seconds: float) -> str:
    if seconds < 90:
        return "just now"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min ago"
    if seconds < 36 * 3600:
        return f"{round(seconds / 3600)} h ago"
    return f"{round(seconds / 86400)} d ago"


# -- the service ----------------------------------------------------------------------------------
class Service:
    def __init__(
        self,
        config_path: str | None,
        config: Config,
        *,
        notifier: Notifier | None = None,
        digest_job: DigestJob = default_digest_job,
        connector_factory: ConnectorFactory = default_connector,
        clock: Clock = utc_now,
        log_level_fixed: bool = False,
    ) -> None:
        self.config_path = config_path
        self.log_level_fixed = log_level_fixed  # -v on the command line wins over the config
        self.config = config
        self.notifier = notifier or Notifier(None)
        self.digest_job = digest_job
        self.connector_factory = connector_factory
        self.clock = clock
        self.scheduler = PlannedScheduler(clock)
        self.accounts: dict[str, AccountRuntime] = {}
        self.digest = DigestRuntime()
        self.lock = InstanceLock(lock_path_for(config.store_path))
        self.store: Store | None = None
        self.worker: Worker | None = None
        self.stopping = False
        self.stop_deadline = 0.0
        self._rsock, self._wsock = socket.socketpair()
        self._rsock.setblocking(False)
        self._wsock.setblocking(False)
        self._selector = selectors.DefaultSelector()
        self._last_ping = 0.0
        self._old_handlers: dict[int, Any] = {}

    # -- start-up ---------------------------------------------------------------------------------
    def start(self) -> None:
        """Check permissions, take the lock, open the store, start the worker, plan the jobs;
        a start that fails closes what it had opened (lock, store, worker, wake-up sockets)."""
        try:
            self._start()
        except BaseException:
            self.close()
            raise

    def _start(self) -> None:
        problems = permission_problems(self.config)
        if problems:
            lines = "\n".join(f"  - {p.detail}; fix: {p.fix}" for p in problems)
            raise StartupError(
                "refusing to start: private files are accessible to other users "
                f"(they hold your mail history or credentials):\n{lines}"
            )
        try:
            self.lock.acquire(str(self.config.path) if self.config.path else None)
        except OSError as exc:
            raise StartupError(
                unwritable_directory(self.lock.path.parent)
                or f"cannot create the lock file {self.lock.path}: {exc.strerror or exc}"
            ) from None
        try:
            self.store = Store.open(self.config.store_path)
        except StoreError as exc:
            raise StartupError(str(exc)) from None
        self.worker = Worker(
            self.config.store_path, self._wake, self.digest_job, self.connector_factory, self.clock
        )
        self.worker.start()
        self.worker.opened.wait(30)
        if self.worker.open_error:
            raise StartupError(self.worker.open_error)
        if self.config.delivery_method == "file":  # debris of a write killed mid-way
            from keepwarm.digests.deliver import FileOutbox

            FileOutbox(self.config.outbox).clean()
        self._selector.register(self._rsock, selectors.EVENT_READ)
        self._install_signals()
        try:
            self._reconcile_accounts(startup=True)
            self._plan_digest()
        except sqlite3.DatabaseError as exc:
            problem = database_problem(self.config.store_path, exc)
            if problem is None:
                raise
            raise StartupError(str(problem)) from None
        names = ", ".join(sorted(self.accounts)) or "none"
        log.info(
            "started (pid %d): %d account(s) [%s]; %s",
            os.getpid(),
            len(self.accounts),
            names,
            self._digest_status(),
        )
        self.notifier.ready(self.status_line())
        self._ping(force=True)

    def _install_signals(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            self._old_handlers[sig] = signal.signal(sig, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        """Only enqueue: no logging, no locks (the main loop does the work)."""
        if signum == signal.SIGINT:
            signal.signal(signal.SIGINT, signal.SIG_DFL)  # a second Ctrl-C stops at once
        with contextlib.suppress(OSError):
            self._wsock.send(bytes([signum]))

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wsock.send(bytes([_WAKE]))

    # -- the loop -------------------------------------------------------------------------------
    def run(self) -> int:
        """The main loop; returns the exit code (0 after SIGTERM/SIGINT, 2 when the database is
        damaged or cannot be written: the service manager must not restart into the same wall)."""
        try:
            return self._loop()
        except (sqlite3.DatabaseError, StoreError) as exc:
            problem = database_problem(self.config.store_path, exc)
            if problem is None:
                raise
            return self._fatal(str(problem))

    def _fatal(self, problem: str) -> int:
        log.critical("stopping: %s", problem)
        self.notifier.status(f"stopped: {problem}"[:200])
        self.close()
        return EXIT_USER

    def _loop(self) -> int:
        assert self.worker is not None
        while True:
            self._selector.select(self._timeout())
            for code in self._drain():
                if code in (signal.SIGTERM, signal.SIGINT):
                    self._begin_stop(code)
                elif code == signal.SIGHUP and not self.stopping:
                    self.reload()
            self._collect_results()
            if self.worker.fatal and not self.stopping:
                return self._fatal(self.worker.fatal)
            if not self.worker.is_alive() and not self.stopping:
                log.critical(
                    "the worker thread died; exiting so the service manager restarts keepwarm"
                )
                self.close()
                return 1
            if self.stopping:
                if self._may_exit():
                    break
                continue
            self._check_parked()
            self.scheduler.run_pending()
            self._ping()
            self.notifier.status(self.status_line())
        self.close()
        log.info("stopped")
        return 0

    def _may_exit(self) -> bool:
        """While stopping: whether the loop may end now (nothing in hand, a sync that may be
        abandoned, or the grace period is over)."""
        assert self.worker is not None
        if self.worker.busy is None and self.worker.pending == 0:
            return True
        if self.worker.abandonable():
            busy = self.worker.busy
            log.info(
                "stopping the sync of %s now: it is reading its source and nothing of "
                "it is uncommitted (the next start resumes after its last stored batch)",
                busy.account if busy else "?",
            )
            self.stop_deadline = time.monotonic()  # close() does not wait for it
            return True
        if time.monotonic() > self.stop_deadline:
            log.error(
                "a sync did not reach the end of its batch within %d s; exiting anyway "
                "(every committed batch is kept)",
                int(STOP_GRACE),
            )
            return True
        return False

    def _timeout(self) -> float:
        if self.stopping:
            return 0.5
        limits = [MAX_SLEEP]
        idle = self.scheduler.idle_seconds
        if idle is not None:
            limits.append(max(0.0, idle))
        wd = self.notifier.watchdog_interval
        if wd:
            limits.append(max(0.05, wd / 3 - (time.monotonic() - self._last_ping)))
        return min(limits)

    def _drain(self) -> list[int]:
        codes: list[int] = []
        while True:
            try:
                data = self._rsock.recv(256)
            except (BlockingIOError, InterruptedError):
                return codes
            if not data:
                return codes
            codes.extend(data)

    def _ping(self, force: bool = False) -> None:
        wd = self.notifier.watchdog_interval
        if not wd or self.worker is None:
            return
        now = time.monotonic()
        if force or now - self._last_ping >= wd / 3 - 0.01:
            if not self.worker.stalled(wd):
                self.notifier.watchdog()
            # else no progress: skip this ping and let systemd's watchdog restart us
            self._last_ping = now

    def _begin_stop(self, signum: int) -> None:
        if self.stopping:
            return
        assert self.worker is not None
        self.stopping = True
        self.stop_deadline = time.monotonic() + STOP_GRACE
        self.notifier.stopping()
        busy = self.worker.busy
        what = f"; stopping the sync of {busy.account}" if busy and busy.account else ""
        log.info("%s received%s", signal.Signals(signum).name, what)
        self.worker.shutdown.set()
        self.worker.interrupt.set()

    def close(self) -> None:
        if self.worker is not None and self.worker.is_alive():
            self.worker.shutdown.set()
            self.worker.interrupt.set()
            self.worker.finish()
            self.worker.join(
                5 if not self.stopping else max(0.1, self.stop_deadline - time.monotonic())
            )
        if self.store is not None:
            self.store.close()
            self.store = None
        for sig, handler in self._old_handlers.items():
            signal.signal(sig, handler)
        self._old_handlers.clear()
        self._selector.close()
        self._rsock.close()
        self._wsock.close()
        self.lock.release()
        self.notifier.close()

    # -- accounts ---------------------------------------------------------------------------------
    def _db_states(self) -> dict[str, Any]:
        assert self.store is not None
        return {s.name: s for s in self.store.account_states()}

    def _watch_path(self, account: Account) -> Path | None:
        if account.spec.oauth:
            return self.config.token_path(account)
        f = account.secret.file
        return Path(f) if f else None

    def _reconcile_accounts(self, *, startup: bool = False) -> None:
        """Make one sync job per enabled account; drop jobs of removed or disabled ones."""
        wanted = {a.name: a for a in self.config.accounts if a.enabled}
        for name in list(self.accounts):
            if name not in wanted:
                rt = self.accounts.pop(name)
                if rt.job is not None:
                    self.scheduler.cancel_job(rt.job)
                log.info("account %s: no longer in the config (or disabled); not syncing it", name)
        states = self._db_states()
        now = self.clock()
        for name, account in wanted.items():
            existing = self.accounts.get(name)
            rt = existing or self._add_account(name, states.get(name), now, startup)
            rt.watch = self._watch_path(account)
            if rt.state == "auth_required" and not startup:
                assert rt.job is not None
                if rt.job.parked and not self._syncing(name):
                    rt.job.plan(now)  # a reload may carry the fix: try once more
            rt.watch_stamp = _mtime(rt.watch)

    def _add_account(
        self, name: str, s: AccountState | None, now: datetime, startup: bool
    ) -> AccountRuntime:
        """A sync job for a new account, resuming what the database says of it."""
        rt = AccountRuntime(name)
        due = now
        if s is not None:
            rt.state, rt.last_error, rt.fix = s.state, s.last_error, s.fix
            rt.last_ok, rt.failures = s.last_ok_at, s.failures
            if s.next_attempt_at and s.state != "auth_required":
                due = max(now, datetime.fromtimestamp(s.next_attempt_at, now.tzinfo))
        rt.job = self.scheduler.add(self._sync_job(name), due, "sync", name)
        self.accounts[name] = rt
        if not startup:
            log.info("account %s: added; first sync now", name)
        return rt

    def _syncing(self, name: str) -> bool:
        """Whether the worker is syncing this account right now."""
        return bool(self.worker and self.worker.busy and self.worker.busy.account == name)

    def _sync_job(self, name: str) -> Callable[[], None]:
        def job() -> None:
            assert self.worker is not None
            self.worker.submit(Task("sync", self.config, account=name))

        return job

    def _check_parked(self) -> None:
        for rt in self.accounts.values():
            if rt.state != "auth_required" or rt.job is None or not rt.job.parked:
                continue
            if self._syncing(rt.name):
                continue
            stamp = _mtime(rt.watch)
            if stamp is not None and stamp != rt.watch_stamp:
                rt.watch_stamp = stamp
                log.info("account %s: credentials changed; trying again", rt.name)
                rt.job.plan(self.clock())

    def _collect_results(self) -> None:
        assert self.worker is not None
        while True:
            try:
                result = self.worker.results.get_nowait()
            except queue.Empty:
                return
            self.worker.pending -= 1
            if result.task.kind == "sync":
                self._sync_done(result)
            else:
                self._digest_done(result)

    def _sync_done(self, result: TaskResult) -> None:
        name = result.task.account
        assert name is not None
        rt = self.accounts.get(name)
        outcome = result.sync
        if rt is None or rt.job is None:
            return  # removed by a reload while it ran
        now = self.clock()
        if outcome is None:  # crashed or skipped at shutdown
            if not self.stopping:
                rt.failures += 1
                delay = backoff_delay(rt.failures, timedelta(minutes=1), self._max_backoff())
                rt.job.plan(now + timedelta(seconds=delay))
            return
        old = rt.state
        new = "ok" if outcome.state == "interrupted" else outcome.state
        rt.failures = result.failures
        if new == "ok":
            rt.last_ok, rt.last_error, rt.fix = now.timestamp(), None, None
        else:
            rt.last_error, rt.fix = outcome.error, outcome.fix
        rt.state = new
        if self.stopping:
            return
        account = self.config.account(name)
        if result.preempted:
            due: datetime | None = now  # resume right after the job that needed the worker
        else:
            due = next_sync_at(
                now,
                new,
                interval=account.sync_interval,
                jitter=self.config.daemon["jitter"],
                failures=rt.failures,
                max_backoff=self._max_backoff(),
                retry_after=outcome.retry_after,
            )
        rt.job.plan(due)
        if due is None:
            rt.watch_stamp = _mtime(rt.watch)
        self._record_next_attempt(name, due)
        self._log_transition(rt, old, outcome, due)

    def _max_backoff(self) -> timedelta:
        value = self.config.daemon["max_backoff"]
        assert isinstance(value, timedelta)
        return value

    def _record_next_attempt(self, name: str, due: datetime | None) -> None:
        assert self.worker is not None
        # Written by the worker's connection would need a task; this one row is tiny and the
        # worker is idle for this account, so the main connection writes it.
        assert self.store is not None
        try:
            self.store.set_next_attempt(name, due)
        except StoreError as exc:
            log.error("cannot record the next attempt of %s: %s", name, exc)

    def _log_transition(
        self, rt: AccountRuntime, old: str, outcome: SyncOutcome, due: datetime | None
    ) -> None:
        when = "parked until you re-authorise" if due is None else self._in(due)
        if rt.state == "ok":
            if old != "ok":
                log.info(
                    "account %s: %s -> ok (%s)",
                    rt.name,
                    STATE_WORDS.get(old, old),
                    outcome.summary(),
                )
            elif outcome.added or outcome.deleted:
                log.info("account %s: %s", rt.name, outcome.summary())
            else:
                log.debug("account %s: up to date; next sync %s", rt.name, when)
            return
        if rt.state == old:
            log.debug("account %s: still %s; next attempt %s", rt.name, STATE_WORDS[rt.state], when)
            return
        fix = f"; to fix: {rt.fix}" if rt.fix else ""
        level = logging.ERROR if rt.state in ("auth_required", "failing") else logging.WARNING
        log.log(
            level,
            "account %s: %s -> %s: %s; next attempt %s%s",
            rt.name,
            STATE_WORDS.get(old, old),
            STATE_WORDS.get(rt.state, rt.state),
            rt.last_error or "unknown error",
            when,
            fix,
        )

    def _in(self, due: datetime) -> str:
        secs = max(0, int((due - self.clock()).total_seconds()))
        if secs < 120:
            return f"in {secs} s"
        if secs < 7200:
            return f"in {secs // 60} min"
        return f"at {due.astimezone(self.config.zone):%Y-%m-%d %H:%M %Z}"

    # -- the digest -----------------------------------------------------------------------------
    def _digest_done_for(self, day: date) -> bool:
        if day in self.digest.given_up:
            return True
        assert self.store is not None
        return ledger.state_of(self.store, day) == "sent"

    def _plan_digest(self, *, retry_at: datetime | None = None) -> None:
        d = self.config.digest
        now = self.clock()
        if retry_at is not None and self.digest.plan is not None:
            plan = DigestPlan(retry_at, self.digest.plan.local_date, catch_up=True)
        else:
            plan = plan_digest(
                now, d["time"], self.config.zone, d["catch_up_window"], self._digest_done_for
            )
        self.digest.plan = plan
        if plan.catch_up and retry_at is None:
            log.info(
                "digest for %s was missed (machine off or asleep); catching up now", plan.local_date
            )
        if self.digest.job is None:
            self.digest.job = self.scheduler.add(self._digest_job, plan.due, "digest")
        else:
            self.digest.job.plan(plan.due)

    def _digest_job(self) -> None:
        assert self.worker is not None and self.digest.plan is not None
        d = self.config.digest
        now = self.clock()
        day = self.digest.plan.local_date
        if local_date(now, self.config.zone) != day or not in_catch_up_window(
            now, day, d["time"], self.config.zone, d["catch_up_window"]
        ):
            if now > self.digest.plan.due:
                log.warning(
                    "digest for %s not sent: woke up after the catch-up window (%s) had passed",
                    day,
                    d["catch_up_window"],
                )
                self.digest.given_up.add(day)
            self._plan_digest()
            return
        if self.worker.busy is not None and self.worker.busy.kind == "sync":
            self.worker.interrupt.set()  # the sync resumes right after the digest
        self.worker.submit(Task("digest", self.config, day=day))

    def _digest_done(self, result: TaskResult) -> None:
        day = result.task.day
        assert day is not None
        out = result.digest
        if out is None:
            state, error, transient = "failed", result.crash, False
        else:
            state, error, transient = out.state, out.error, bool(out.transient)
        if state == "in_progress":  # another process (keepwarm digest --send) is delivering it
            log.info("digest for %s is being delivered by another keepwarm process", day)
            if not self.stopping:
                self._plan_digest(retry_at=self.clock() + IN_PROGRESS_RECHECK)
            return
        if state in ("sent", "already_sent", "written"):
            self.digest.failures = 0
            self.digest.last = f"{state.replace('_', ' ')} {day}"
            if state == "already_sent":
                log.info("digest for %s: already sent earlier; not sending again", day)
            else:
                log.info("digest for %s %s", day, "sent" if state == "sent" else "written")
            self.digest.given_up.add(day)
        else:
            self.digest.failures += 1
            self.digest.last = f"failed {day}"
            if transient and not self.stopping:
                delay = backoff_delay(self.digest.failures, timedelta(minutes=1), DIGEST_RETRY_CAP)
                retry = self.clock() + timedelta(seconds=delay)
                d = self.config.digest
                if in_catch_up_window(
                    retry, day, d["time"], self.config.zone, d["catch_up_window"]
                ):
                    log.warning(
                        "digest for %s failed (%s); retrying %s", day, error, self._in(retry)
                    )
                    if not self.stopping:
                        self._plan_digest(retry_at=retry)
                    return
            log.error("digest for %s failed: %s; not retrying today", day, error)
            self.digest.given_up.add(day)
        if not self.stopping:
            self._plan_digest()

    def _digest_status(self) -> str:
        plan = self.digest.plan
        if plan is None:
            return "no digest planned"
        if plan.catch_up:
            return f"catching up the digest of {plan.local_date}"
        local = plan.due.astimezone(self.config.zone)
        today = local_date(self.clock(), self.config.zone)
        when = f"{local:%H:%M}" if local.date() == today else f"{local:%a %H:%M}"
        return f"next digest {when} {self.config.timezone}"

    # -- reload -----------------------------------------------------------------------------------
    def reload(self) -> bool:
        """SIGHUP: re-read the config; on any problem keep the running one and log every problem."""
        self.notifier.reloading()
        try:
            new = cfgmod.load(self.config_path)
        except ConfigError as exc:
            where = f" in {exc.path}" if exc.path else ""
            log.error(
                "reload failed: %d problem(s)%s; keeping the running config",
                len(exc.problems),
                where,
            )
            for p in exc.problems:
                log.error("  - %s", p)
            self.notifier.ready(self.status_line())
            return False
        problems = permission_problems(new)
        if problems:
            log.error(
                "reload refused: private files are accessible to other users; keeping the running config"
            )
            for check in problems:
                log.error("  - %s; fix: %s", check.detail, check.fix)
            self.notifier.ready(self.status_line())
            return False
        if new.store_path != self.config.store_path:
            log.warning(
                "the database path changed to %s; restart keepwarm to use it", new.store_path
            )
            new = _with_store(new, self.config)
        self.config = new
        from keepwarm.daemon.logs import configure

        if not self.log_level_fixed:
            configure(new.daemon["log_level"])
        self._reconcile_accounts()
        self.digest.given_up = {d for d in self.digest.given_up if self._digest_done_for_ledger(d)}
        self.digest.failures = 0
        if self.worker is None or self.worker.busy is None or self.worker.busy.kind != "digest":
            self._plan_digest()
        log.info("config reloaded: %d account(s); %s", len(self.accounts), self._digest_status())
        self.notifier.ready(self.status_line())
        return True

    def _digest_done_for_ledger(self, day: date) -> bool:
        assert self.store is not None
        return ledger.state_of(self.store, day) == "sent"

    # -- status -----------------------------------------------------------------------------------
    def status_line(self) -> str:
        """'synced work-gmail 3 min ago; next digest 07:30 Europe/Berlin' plus any trouble."""
        parts: list[str] = []
        busy = self.worker.busy if self.worker else None
        if busy is not None:
            parts.append(
                f"syncing {busy.account}" if busy.kind == "sync" else "building the digest"
            )
        synced = [rt for rt in self.accounts.values() if rt.last_ok]
        if synced:
            last = max(synced, key=lambda rt: rt.last_ok or 0)
            ago = self.clock().timestamp() - (last.last_ok or 0)
            parts.append(f"synced {last.name} {_ago(ago)}")
        trouble = [
            f"{rt.name} {STATE_WORDS.get(rt.state, rt.state)}"
            for rt in self.accounts.values()
            if rt.state in ("backoff", "auth_required", "failing")
        ]
        parts += trouble
        parts.append(self._digest_status())
        return "; ".join(parts)


def _with_store(new: Config, old: Config) -> Config:
    from dataclasses import replace

    return replace(new, store_path=old.store_path)
