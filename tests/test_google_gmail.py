"""Gmail connector against the local Gmail emulator, through the real google-api-python-client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from contract import ConnectorContract, stored_ids
from fakes.google_api import GMAIL_METADATA, GoogleEmulator
from fakes.google_world import GoogleFaults, fast_retry, gmail_connector, write_token
from leakcheck import close_after_test

from keepwarm.connectors.base import AuthRequired, Batch
from keepwarm.connectors.google.gmail import history_actions, to_record
from keepwarm.connectors.google.quota import RetryPolicy
from keepwarm.daemon.store import Store
from keepwarm.daemon.sync import run_account


@pytest.fixture
def emu() -> Iterator[GoogleEmulator]:
    with GoogleEmulator() as e:
        yield e
        e.check()


class GmailWorld(GoogleFaults):
    kind = "gmail"

    def __init__(self, emu: GoogleEmulator, tmp: Path, account: str = "gm") -> None:
        self.emu = emu
        self.account = account
        self.token = write_token(emu, tmp / "token.json", (GMAIL_METADATA,))

    def connector(self, **opts: object) -> object:
        base: dict[str, object] = {"page_size": 5, "batch_size": 3, "records_per_batch": 4}
        return gmail_connector(self.emu, self.token, self.account, **{**base, **opts})

    def add_messages(self, n: int) -> None:
        self.emu.add_mail(n)

    def delete_one(self) -> str:
        msg = next(iter(self.emu.mailbox.messages.values()))
        mid = {k.lower(): v for k, v in msg.headers}["message-id"].strip("<>")
        self.emu.mailbox.delete(msg.id)
        return mid

    def expected_ids(self) -> set[str]:
        return self.emu.message_ids()

    def expire_cursor(self) -> None:
        self.emu.mailbox.expire_history()


class TestGmailContract(ConnectorContract):
    @pytest.fixture
    def world(self, emu: GoogleEmulator, tmp_path: Path) -> GmailWorld:
        return GmailWorld(emu, tmp_path)


@pytest.fixture
def world(emu: GoogleEmulator, tmp_path: Path) -> GmailWorld:
    return GmailWorld(emu, tmp_path)


def sync(store: Store, world: GmailWorld, **opts: object) -> str:
    return run_account(store, world.connector(**opts)).state  # type: ignore[arg-type]


def test_spam_and_trash_are_removed_and_restored(world: GmailWorld) -> None:
    store = close_after_test(Store.memory())
    msgs = world.emu.add_mail(6)
    assert sync(store, world) == "ok"
    world.emu.mailbox.add_labels(msgs[0].id, ["SPAM"])
    world.emu.mailbox.remove_labels(msgs[1].id, ["INBOX"])  # archived: still an interaction
    world.emu.mailbox.add_labels(msgs[2].id, ["TRASH"])
    assert sync(store, world) == "ok"
    assert stored_ids(store, "gm") == sorted(world.expected_ids())
    assert len(stored_ids(store, "gm")) == 4
    # history: the trashed message stays (it happened), the spam one is gone (issue 15, 11)
    spam_id = dict(msgs[0].headers)["Message-ID"].strip("<>")
    history = {r[0] for r in store.conn.execute("SELECT message_id FROM messages")}
    assert len(history) == 5 and spam_id not in history
    world.emu.mailbox.remove_labels(msgs[0].id, ["SPAM"])
    assert sync(store, world) == "ok"
    assert len(stored_ids(store, "gm")) == 5
    assert stored_ids(store, "gm") == sorted(world.expected_ids())


def test_archived_and_categorised_mail_is_kept_with_markers_drafts_are_not(
    world: GmailWorld,
) -> None:
    store = close_after_test(Store.memory())
    world.emu.add_mail(2, labels={"CATEGORY_PROMOTIONS"})
    world.emu.add_mail(1, labels={"DRAFT"})
    world.emu.add_mail(1, labels={"SENT"})
    batches: list[Batch] = []
    run_account(store, world.connector(), on_batch=lambda _a, _p, b: batches.append(b))  # type: ignore[arg-type]
    msgs = [m for b in batches for m in b.messages]
    assert len(msgs) == 3
    promo = [m for m in msgs if "CATEGORY_PROMOTIONS" in m.labels]
    assert len(promo) == 2 and all("category:promotions" in m.markers for m in promo)
    assert all(m.folder == "ARCHIVE" for m in promo)
    sent = [m for m in msgs if m.folder == "SENT"]
    assert len(sent) == 1 and sent[0].sender and sent[0].sender.email == "me@example.com"
    assert all(m.thread_hint for m in msgs)
    assert sum(b.skipped.get("spam, trash, draft or chat", 0) for b in batches) == 1


def test_subjects_are_dropped_when_privacy_says_so(world: GmailWorld) -> None:
    world.emu.add_mail(3)
    batches: list[Batch] = []
    run_account(
        close_after_test(Store.memory()),
        world.connector(store_subjects=False),
        on_batch=lambda _a, _p, b: batches.append(b),
    )  # type: ignore[arg-type]
    msgs = [m for b in batches for m in b.messages]
    assert msgs and all(m.subject is None for m in msgs)


def test_backfill_window_stops_paging(world: GmailWorld) -> None:
    from datetime import timedelta

    day = 86_400_000
    import time

    now = int(time.time() * 1000)
    world.emu.add_mail(20, start_ms=now - 400 * day, step_ms=day)  # 400..381 days old
    world.emu.add_mail(5, start_ms=now - 10 * day, step_ms=day)
    store = close_after_test(Store.memory())
    assert sync(store, world, backfill=timedelta(days=365)) == "ok"
    assert len(stored_ids(store, "gm")) == 5
    assert world.emu.calls["gmail.users.messages.get"] < 15  # did not fetch the whole mailbox


def test_backfill_tolerates_list_order_that_disagrees_with_dates(world: GmailWorld) -> None:
    """messages.list is not guaranteed newest-first: one old message listed 4th among 600
    recent ones must not end the backfill (it stored 249 of 600 and said ok)."""
    import time
    from datetime import timedelta

    day = 86_400_000
    now = int(time.time() * 1000)
    world.emu.add_mail(20, start_ms=now - 500 * day, step_ms=day)  # really old, listed last
    world.emu.add_mail(600, start_ms=now - 600 * 60_000)  # the last 10 hours
    old = world.emu.add_mail(1, start_ms=now - 400 * day)[0]
    world.emu.mailbox.misplace(old.id, at=3)
    store = close_after_test(Store.memory())
    opts = {"page_size": 500, "batch_size": 50, "records_per_batch": 250}
    out = run_account(store, world.connector(backfill=timedelta(days=365), **opts))  # type: ignore[arg-type]
    assert out.state == "ok"
    assert len(stored_ids(store, "gm")) == 600
    assert out.skipped == {"older than the backfill window": 21}  # reported, not silent
    assert world.emu.calls["gmail.users.messages.get"] == 621  # stopped after an all-old page


def test_empty_history_pages_with_a_next_page_token_are_followed(world: GmailWorld) -> None:
    world.emu.add_mail(4)
    store = close_after_test(Store.memory())
    assert sync(store, world) == "ok"
    world.emu.add_mail(7)
    world.emu.mailbox.empty_history_pages = 2
    assert sync(store, world) == "ok"
    assert stored_ids(store, "gm") == sorted(world.expected_ids())
    assert len(stored_ids(store, "gm")) == 11


def test_header_names_arrive_whatever_their_case(world: GmailWorld) -> None:
    headers = [
        ("from", "Ann <ann@example.org>"),
        ("To", "me@example.com"),
        ("CC", "Bob <bob@example.org>"),
        ("Date", "Tue, 03 Sep 2024 10:12:33 +0200"),
        ("Message-Id", "<x1@example.org>"),
        ("In-reply-to", "<y1@example.org>"),
        ("List-ID", "Team news <news.example.org>"),
        ("Auto-submitted", "auto-generated"),
    ]
    world.emu.mailbox.add(headers, labels={"INBOX"})
    batches: list[Batch] = []
    run_account(
        close_after_test(Store.memory()),
        world.connector(),
        on_batch=lambda _a, _p, b: batches.append(b),
    )  # type: ignore[arg-type]
    (msg,) = [m for b in batches for m in b.messages]
    assert msg.sender is not None and msg.sender.email == "ann@example.org"
    assert [a.email for a in msg.cc] == ["bob@example.org"]
    assert msg.message_id == "x1@example.org" and msg.in_reply_to == "y1@example.org"
    assert msg.list_id == "news.example.org"
    assert "auto-submitted:auto-generated" in msg.markers


def test_incremental_without_change_costs_one_call(world: GmailWorld) -> None:
    world.emu.add_mail(7)
    store = close_after_test(Store.memory())
    assert sync(store, world) == "ok"
    before, units = world.emu.calls.copy(), world.emu.units_used
    assert sync(store, world) == "ok"
    diff = world.emu.calls - before
    assert diff == {"gmail.users.history.list": 1}
    assert world.emu.units_used - units == 2


def test_rate_limits_and_part_failures_are_retried(world: GmailWorld) -> None:
    world.emu.add_mail(30)
    world.emu.fail_next(2, "429")
    world.emu.inject(0.0, part_rate=0.3)
    store = close_after_test(Store.memory())
    # Retry-After: 1 is within the in-process cap: waited out, not handed back to the daemon.
    assert sync(store, world, retry=RetryPolicy(attempts=6, base=0.01, cap=2.0)) == "ok"
    assert world.emu.faults_injected["429"] == 2 and sum(world.emu.faults_injected.values()) > 2
    assert stored_ids(store, "gm") == sorted(world.expected_ids())


def test_refused_too_long_gives_transient_error_with_retry_after(world: GmailWorld) -> None:
    world.emu.add_mail(3)
    world.emu.fail_next(100, "429")
    store = close_after_test(Store.memory())
    out = run_account(store, world.connector(retry=fast_retry(3)))  # type: ignore[arg-type]
    assert out.state == "backoff" and out.retry_after is not None and out.retry_after >= 1


def test_missing_token_file_asks_for_auth(world: GmailWorld) -> None:
    world.token.unlink()
    out = run_account(close_after_test(Store.memory()), world.connector())  # type: ignore[arg-type]
    assert out.state == "auth_required" and out.fix == "keepwarm auth google gm"


def test_invalid_grant_is_auth_required(world: GmailWorld) -> None:
    world.emu.add_mail(2)
    world.emu.revoke_all()
    with pytest.raises(AuthRequired) as exc:
        list(world.connector().sync(None))  # type: ignore[attr-defined]
    assert exc.value.fix == "keepwarm auth google gm"
    assert "7 days" in str(exc.value)


def test_password_change_revokes_gmail_tokens_and_says_so(
    world: GmailWorld, tmp_path: Path
) -> None:
    from fakes.google_api import CALENDAR_READONLY
    from fakes.google_world import calendar_connector

    world.emu.add_mail(2)
    cal_token = write_token(world.emu, tmp_path / "cal.json", (CALENDAR_READONLY,))
    world.emu.change_password()
    out = run_account(close_after_test(Store.memory()), world.connector())  # type: ignore[arg-type]
    assert out.state == "auth_required" and out.fix == "keepwarm auth google gm"
    assert "password" in (out.error or "")
    # a token without Gmail scopes survives a password change
    assert (
        run_account(
            close_after_test(Store.memory()), calendar_connector(world.emu, cal_token)
        ).state
        == "ok"
    )


def test_refreshed_token_is_saved_0600(world: GmailWorld) -> None:
    world.emu.add_mail(2)
    assert sync(close_after_test(Store.memory()), world) == "ok"
    assert world.token.stat().st_mode & 0o777 == 0o600
    import json

    saved = json.loads(world.token.read_text())
    assert saved["token"].startswith("ya29.emu-") and saved["refresh_token"]
    calls = world.emu.calls.copy()
    assert sync(close_after_test(Store.memory()), world) == "ok"  # reuses the saved access token
    assert world.emu.calls - calls  # it did sync


def _sync_until_caught_up(store: Store, world: GmailWorld, tries: int = 40) -> list[str]:
    states: list[str] = []
    while len(states) < tries:
        states.append(
            sync(store, world, page_size=40, batch_size=10, records_per_batch=20, timeout=0.3)
        )
        if states[-1] == "ok" and '"incr"' in (store.cursor("gm") or ""):
            break
    return states


def test_twenty_percent_faults_converge(world: GmailWorld) -> None:
    world.emu.stall_seconds = 0.6
    world.emu.add_mail(300)  # enough requests that every kind of fault is drawn
    world.emu.inject(0.2)
    store = close_after_test(Store.memory())
    assert _sync_until_caught_up(store, world)[-1] == "ok"
    world.emu.add_mail(20)
    for _ in range(3):
        world.delete_one()
    assert _sync_until_caught_up(store, world)[-1] == "ok"
    world.emu.heal()
    assert sync(store, world) == "ok"
    assert stored_ids(store, "gm") == sorted(world.expected_ids())
    kinds = world.emu.faults_injected
    assert kinds["drop"] and kinds["timeout"] and kinds["500"] + kinds["503"]
    assert sum(kinds.values()) > 20


def test_history_actions() -> None:
    recs = [
        {"id": "1", "messagesAdded": [{"message": {"id": "a", "labelIds": ["INBOX"]}}]},
        {"id": "2", "messagesAdded": [{"message": {"id": "b", "labelIds": ["SPAM"]}}]},
        {
            "id": "3",
            "labelsAdded": [{"message": {"id": "c", "labelIds": ["TRASH"]}, "labelIds": ["TRASH"]}],
        },
        {
            "id": "4",
            "labelsRemoved": [
                {"message": {"id": "d", "labelIds": ["INBOX"]}, "labelIds": ["SPAM"]}
            ],
        },
        {
            "id": "5",
            "labelsRemoved": [{"message": {"id": "e", "labelIds": []}, "labelIds": ["UNREAD"]}],
        },
        {"id": "6", "messagesDeleted": [{"message": {"id": "a"}}]},
    ]
    assert history_actions(recs) == {"a": "delete", "b": "spam", "c": "delete", "d": "fetch"}


def test_to_record_falls_back_to_internal_date() -> None:
    from datetime import UTC, datetime

    msg = {
        "id": "x1",
        "threadId": "t1",
        "labelIds": ["INBOX", "CATEGORY_SOCIAL"],
        "internalDate": "1725351153000",
        "payload": {
            "headers": [
                {"name": "From", "value": "A <a@example.com>"},
                {"name": "Date", "value": "garbage"},
            ]
        },
    }
    rec = to_record(msg, account="gm", store_subjects=True, now=datetime(2025, 1, 1, tzinfo=UTC))
    assert not isinstance(rec, str)
    assert rec.date == datetime.fromtimestamp(1725351153, UTC) and rec.date_from_provider
    assert "category:social" in rec.markers and rec.thread_hint == "t1"


def test_damaged_or_foreign_cursor_starts_a_clean_full_sync(world: GmailWorld) -> None:
    world.emu.add_mail(5)
    for bad in ("not json", '{"v": 99}', '{"v": 1, "mode": "incr", "history_id": "x"}'):
        store = close_after_test(Store.memory())
        store.ensure_account("gm", "gmail")
        store.conn.execute("UPDATE accounts SET cursor = ? WHERE name = 'gm'", (bad,))
        assert sync(store, world) == "ok"
        assert stored_ids(store, "gm") == sorted(world.expected_ids())


# -- per-user concurrency and rate limits as Gmail answers them ------------------------------------
def test_batches_adapt_to_gmail_per_user_concurrency(tmp_path: Path) -> None:
    """Real Gmail refuses batch parts with 429 "Too many concurrent requests for user" at 50-100
    parts and sometimes above 20: batches start small, grow while clean and halve when parts are
    refused, so the sync neither gives up nor loops on back-off."""
    with GoogleEmulator(gmail_concurrency=20, latency=0.02) as emu:
        emu.add_mail(600)
        token = write_token(emu, tmp_path / "token.json", (GMAIL_METADATA,))
        sleeps: list[float] = []
        retry = RetryPolicy(attempts=6, base=0.05, cap=1.0, sleep=sleeps.append)
        connector = gmail_connector(
            emu, token, batch_size=50, max_concurrency=10, retry=retry, concurrency=10
        )
        store = close_after_test(Store.memory())
        out = run_account(store, connector)
        assert out.state == "ok", out.error
        assert len(stored_ids(store, "gm")) == 600
        # a few probes of the limit, not a storm: about 50 on an idle machine, more when threads
        # overlap on a busy one; without the adaptive window, 480 and back-off
        assert emu.concurrency_rejections <= 150
        assert sum(sleeps) < 0.5  # refused parts are re-sent in smaller batches, not waited on
        emu.check()


@pytest.mark.parametrize("reply", ["403user", "403rate", "429bare"])
def test_rate_limits_without_retry_after_slow_the_pace(tmp_path: Path, reply: str) -> None:
    """Over the per-user quota Gmail may answer 403 userRateLimitExceeded / rateLimitExceeded
    or 429 without Retry-After: keepwarm slows down until it fits, without giving up."""
    with GoogleEmulator(gmail_units_per_minute=400, quota_window=1.0) as emu:  # 400 units/s
        emu.quota_reply = reply
        emu.add_mail(240)  # 1,200 units: three seconds at the real pace
        token = write_token(emu, tmp_path / "token.json", (GMAIL_METADATA,))
        retry = RetryPolicy(attempts=6, base=0.1, cap=2.0)
        # configured at three times the quota the project really has
        connector = gmail_connector(emu, token, units_per_minute=72_000, retry=retry, batch_size=20)
        store = close_after_test(Store.memory())
        out = run_account(store, connector)
        assert out.state == "ok", out.error
        assert len(stored_ids(store, "gm")) == 240
        assert emu.quota_rejections < 120  # it learnt the pace instead of hammering
        emu.check()


def test_batch_window_starts_small_grows_while_clean_and_halves_on_refusals() -> None:
    from keepwarm.connectors.google.gmail import BatchWindow

    w = BatchWindow(50)
    assert w.size == 10 and w.batch() == 5  # half the window: one batch on its way, one answered
    w.clean()
    w.clean()
    assert w.size == 40  # doubling at first
    w.refused()
    assert w.size == 20 and w.refusals == 1
    w.clean()
    assert w.size == 21  # then one part at a time above the size that was refused
    for _ in range(200):
        w.clean()
    assert w.size == 100 and w.batch() == 50  # never past two full batches in flight


def test_token_bucket_slows_down_only_when_refusals_mean_quota() -> None:
    from keepwarm.connectors.google.quota import TokenBucket

    now = [0.0]
    bucket = TokenBucket(6000, clock=lambda: now[0], sleep=lambda s: None)
    full = bucket.rate
    bucket.throttled(None, 1.0, 64.0)  # one 429: maybe the concurrency limit
    assert bucket.rate == full and bucket.strikes == 1
    bucket.clean()
    bucket.throttled(None, 1.0, 64.0, quota=True)  # a 403 rate limit: the budget is too high
    assert bucket.rate < full
    now[0] += 1
    bucket.throttled(None, 1.0, 64.0)  # refused again: slower still, and a pause
    assert bucket.strikes == 2 and bucket.rate < 0.8 * full
    before = bucket.strikes
    bucket.throttled(None, 1.0, 64.0)  # during the pause: the same refusal, counted once
    assert bucket.strikes == before
    for _ in range(100):
        bucket.clean()
    assert bucket.rate == full and bucket.strikes == 0
    bucket.throttled(30.0, 1.0, 64.0)  # with Retry-After: just wait that long
    assert bucket.rate == full
