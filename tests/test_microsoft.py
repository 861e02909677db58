"""Microsoft 365 connector behaviour against the emulator, through real msal and requests."""

from __future__ import annotations

import json
import os
import stat
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import pytest
from contract import stored_ids
from fakes.graph_api import GraphEmulator
from leakcheck import close_after_test
from ms_world import ACCOUNT, auth_for, connector_for, sign_in

from keepwarm.connectors.base import AuthRequired, Batch, TransientError
from keepwarm.connectors.microsoft.account import make_client
from keepwarm.connectors.microsoft.auth import MicrosoftAuth
from keepwarm.connectors.microsoft.graph import GraphClient, parse_retry_after
from keepwarm.connectors.microsoft.records import BODY_FIELDS, MESSAGE_FIELDS
from keepwarm.connectors.microsoft.send import send_mail
from keepwarm.daemon.store import Store
from keepwarm.daemon.sync import run_account


@pytest.fixture
def emu() -> Iterator[GraphEmulator]:
    with GraphEmulator() as e:
        yield e


@pytest.fixture
def token(tmp_path: Path, emu: GraphEmulator) -> Path:
    path = tmp_path / "tokens" / "office.json"
    sign_in(emu, path)
    return path


def sync(store: Store, emu: GraphEmulator, token: Path, **kw: object) -> str:
    return run_account(store, connector_for(emu, token, **kw)).state  # type: ignore[arg-type]


def sources(store: Store) -> list[tuple[str, str, str | None]]:
    rows = store.conn.execute(
        """SELECT m.message_id, s.provider_id, s.folder FROM message_sources s
           JOIN messages m ON m.id = s.message ORDER BY m.message_id"""
    ).fetchall()
    return [(r[0], r[1], r[2]) for r in rows]


def msgid(emu: GraphEmulator, mid: str) -> str:
    return str(emu.messages[mid]["internetMessageId"]).strip("<>")


# -- auth -----------------------------------------------------------------------------------------
def test_device_flow_creates_a_private_cache_with_an_account(
    emu: GraphEmulator, tmp_path: Path
) -> None:
    path = tmp_path / "t" / "office.json"
    who = sign_in(emu, path)
    assert who == emu.user
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    cache = json.loads(path.read_text())
    assert cache["Account"] and cache["RefreshToken"]
    assert emu.token_requests["urn:ietf:params:oauth:grant-type:device_code"] >= 1


def test_silent_token_comes_from_the_cache_and_the_file_is_not_rewritten(
    emu: GraphEmulator, token: Path
) -> None:
    before = (token.stat().st_mtime_ns, token.read_text())
    with auth_for(emu, token) as auth:
        assert auth.access_token().startswith("at-")
    assert emu.token_requests["refresh_token"] == 0  # scope echo -> cache hit, no refresh
    assert (token.stat().st_mtime_ns, token.read_text()) == before


def test_expired_refresh_token_parks_the_account_with_the_fix(
    emu: GraphEmulator, tmp_path: Path
) -> None:
    emu.access_token_lifetime = 1  # msal treats it as expired at once and refreshes
    path = tmp_path / "office.json"
    sign_in(emu, path)
    emu.refresh_tokens.clear()  # the refresh token expired (AADSTS700082)
    store = close_after_test(Store.memory())
    emu.add_message()
    outcome = run_account(store, connector_for(emu, path))
    assert outcome.state == "auth_required"
    assert outcome.fix == f"keepwarm auth microsoft {ACCOUNT}"
    state = {s.name: s for s in store.account_states()}[ACCOUNT]
    assert state.fix == f"keepwarm auth microsoft {ACCOUNT}" and state.last_error
    assert "at-" not in (state.last_error or "") and "rt-" not in (state.last_error or "")


def test_no_sign_in_yet_is_auth_required(emu: GraphEmulator, tmp_path: Path) -> None:
    outcome = run_account(
        close_after_test(Store.memory()), connector_for(emu, tmp_path / "none.json")
    )
    assert outcome.state == "auth_required"
    assert outcome.fix == f"keepwarm auth microsoft {ACCOUNT}"


def test_wrong_client_id_is_a_clear_error(emu: GraphEmulator, tmp_path: Path) -> None:
    from keepwarm.connectors.base import SourceError

    with (
        auth_for(emu, tmp_path / "x.json", client_id="not-registered") as auth,
        pytest.raises(SourceError, match="client_id"),
    ):
        auth.start_device_flow()


# -- mail -----------------------------------------------------------------------------------------
def test_only_metadata_fields_are_requested_with_immutable_ids(
    emu: GraphEmulator, token: Path
) -> None:
    emu.add_bulk(30)
    store = close_after_test(Store.memory())
    assert sync(store, emu, token) == "ok"
    assert emu.selected and not (emu.selected & BODY_FIELDS)
    assert emu.selected <= {*MESSAGE_FIELDS, "parentFolderId", "id"}
    assert all('IdType="ImmutableId"' in p for p in emu.prefers)
    assert any("odata.maxpagesize=" in p for p in emu.prefers)
    dump = "\n".join(store.conn.iterdump())
    assert "SECRET" not in dump


def test_records_are_mapped_from_graph_fields(emu: GraphEmulator, token: Path) -> None:
    sent = datetime(2025, 3, 4, 10, 0, tzinfo=UTC)
    emu.add_message(
        "sentitems",
        sender=emu.user,
        to=["Bob.Smith@Example.ORG"],
        cc=["carol@example.net"],
        bcc=["dave@example.com"],
        subject="Quarterly review",
        sent=sent,
        message_id="<abc-1@mail.contoso.test>",
        inference="other",
        conversation="conv-1",
    )
    batches: list[Batch] = []
    run_account(
        close_after_test(Store.memory()),
        connector_for(emu, token, now=datetime(2025, 6, 1, tzinfo=UTC)),
        on_batch=lambda _a, _p, b: batches.append(b),
    )
    [m] = [m for b in batches for m in b.messages]
    assert m.sender is not None and m.sender.email == emu.user
    assert [a.email for a in m.to] == ["bob.smith@example.org"]
    assert [a.email for a in m.cc] == ["carol@example.net"]
    assert [a.email for a in m.bcc] == ["dave@example.com"]
    assert m.date == sent and m.message_id == "abc-1@mail.contoso.test"
    assert m.subject == "Quarterly review" and m.thread_hint == "conv-1"
    assert m.folder == "Sent Items" and "inference:other" in m.markers


def test_junk_deleted_drafts_and_draft_flags_are_skipped(emu: GraphEmulator, token: Path) -> None:
    keep = emu.add_message("inbox")
    emu.add_message("junkemail")
    emu.add_message("deleteditems")
    emu.add_message("drafts", is_draft=True)
    emu.add_message("inbox", is_draft=True)
    sub = emu.create_folder("Old project", "deleteditems")
    emu.add_message(sub)
    store = close_after_test(Store.memory())
    assert sync(store, emu, token) == "ok"
    assert stored_ids(store, ACCOUNT) == [msgid(emu, keep)]


def test_backfill_window_is_applied(emu: GraphEmulator, token: Path) -> None:
    now = datetime.now(UTC)
    recent = emu.add_message(sent=now - timedelta(days=30))
    emu.add_message(sent=now - timedelta(days=400))
    store = close_after_test(Store.memory())
    assert sync(store, emu, token, backfill=timedelta(days=365)) == "ok"
    assert stored_ids(store, ACCOUNT) == [msgid(emu, recent)]


def test_message_moved_between_folders_stays_one_interaction(
    emu: GraphEmulator, token: Path
) -> None:
    projects = emu.create_folder("Projects", "inbox")
    a = emu.add_message("inbox")
    b = emu.add_message(projects)
    store = close_after_test(Store.memory())
    assert sync(store, emu, token, page_size=1) == "ok"
    emu.move_message(a, projects)  # source folder synced before the target
    emu.move_message(b, "inbox")  # target folder synced before the source
    assert sync(store, emu, token, page_size=1) == "ok"
    got = sources(store)
    assert got == sorted([(msgid(emu, a), a, "Inbox/Projects"), (msgid(emu, b), b, "Inbox")])
    assert store.counts()["messages"] == 2
    emu.move_message(a, "deleteditems")  # moved to Deleted Items: gone from the mailbox
    assert sync(store, emu, token) == "ok"
    assert stored_ids(store, ACCOUNT) == [msgid(emu, b)]
    assert store.counts()["messages"] == 2  # but it happened: kept as history (issue 15)
    emu.move_message(b, "junkemail")  # reported as spam: never an interaction
    assert sync(store, emu, token) == "ok"
    history = {r[0] for r in store.conn.execute("SELECT message_id FROM messages")}
    assert history == {msgid(emu, a)}


def test_folders_created_renamed_and_deleted_later(emu: GraphEmulator, token: Path) -> None:
    emu.add_message("inbox")
    store = close_after_test(Store.memory())
    assert sync(store, emu, token) == "ok"
    clients = emu.create_folder("Clients", "inbox")
    c1 = emu.add_message(clients)
    assert sync(store, emu, token) == "ok"
    assert msgid(emu, c1) in stored_ids(store, ACCOUNT)
    emu.rename_folder(clients, "Customers")
    c2 = emu.add_message(clients)
    assert sync(store, emu, token) == "ok"
    assert (msgid(emu, c2), c2, "Inbox/Customers") in sources(store)
    emu.delete_folder(clients)  # moves under Deleted Items
    assert sync(store, emu, token) == "ok"
    assert stored_ids(store, ACCOUNT) == sorted(emu.expected_message_ids())
    assert msgid(emu, c1) not in stored_ids(store, ACCOUNT)
    history = {r[0] for r in store.conn.execute("SELECT message_id FROM messages")}
    assert {msgid(emu, c1), msgid(emu, c2)} <= history  # a vanished folder is kept, and told
    assert [n.text for n in store.notices(ACCOUNT)] == [
        "folder Inbox/Customers is gone from the mailbox; its 2 messages stay in your history"
    ]


def test_expired_delta_token_resyncs_only_that_round_without_duplicates(
    emu: GraphEmulator, token: Path
) -> None:
    emu.add_bulk(40)
    store = close_after_test(Store.memory())
    assert sync(store, emu, token, page_size=7) == "ok"
    emu.expire_tokens()
    emu.add_bulk(5)
    outcome = run_account(store, connector_for(emu, token, page_size=7))
    assert outcome.state == "ok" and not outcome.full_resync
    assert stored_ids(store, ACCOUNT) == sorted(emu.expected_message_ids())
    assert outcome.added == 5


def test_incremental_sync_with_no_change_is_cheap(emu: GraphEmulator, token: Path) -> None:
    emu.add_bulk(200)
    store = close_after_test(Store.memory())
    assert sync(store, emu, token) == "ok"
    before = emu.graph_requests
    assert sync(store, emu, token) == "ok"
    # folder listing (1) + one delta per synced folder (inbox, sent, archive) + calendar (1)
    assert emu.graph_requests - before <= 6


# -- throttling and faults ------------------------------------------------------------------------
def test_retry_after_is_parsed_as_float() -> None:
    assert parse_retry_after("2.128") == pytest.approx(2.128)
    assert parse_retry_after("10") == 10.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") is None
    assert parse_retry_after(None) is None


def _client(emu: GraphEmulator, token: Path, sleeps: list[float] | None = None) -> GraphClient:
    client = close_after_test(make_client(auth_for(emu, token), graph_endpoint=emu.graph_endpoint))
    if sleeps is not None:
        client.sleep = sleeps.append
    return client


def test_429_and_503_honour_retry_after(emu: GraphEmulator, token: Path) -> None:
    sleeps: list[float] = []
    client = _client(emu, token, sleeps)
    emu.retry_after = "0.125"
    emu.force("429", "503", "429")
    assert client.get("me/mailFolders")["value"]
    assert sleeps == [pytest.approx(0.125), pytest.approx(0.02), pytest.approx(0.125)]


def test_other_failures_back_off_exponentially_then_give_up(
    emu: GraphEmulator, token: Path
) -> None:
    sleeps: list[float] = []
    client = _client(emu, token, sleeps)
    client.max_attempts = 4
    emu.force("500", "drop", "500", "500")
    with pytest.raises(TransientError):
        client.get("me/mailFolders")
    assert len(sleeps) == 3
    assert all(0 <= s <= client.backoff_base * 2**i for i, s in enumerate(sleeps))


def test_long_retry_after_is_left_to_the_daemon(emu: GraphEmulator, token: Path) -> None:
    client = _client(emu, token, [])
    emu.retry_after = "120"
    emu.force("429")
    with pytest.raises(TransientError) as exc:
        client.get("me/mailFolders")
    assert exc.value.retry_after == 120.0


def test_429_without_retry_after_backs_off_exponentially(emu: GraphEmulator, token: Path) -> None:
    sleeps: list[float] = []
    client = _client(emu, token, sleeps)
    client.backoff_base = 1.0
    emu.retry_after = None
    emu.force("429", "429", "429")
    assert "value" in client.get("me/mailFolders")
    assert len(sleeps) == 3 and max(sleeps) > 0  # jittered exponential, not a tight loop
    # ... and so do throttled $batch members
    mid = emu.add_message()
    sleeps.clear()
    emu.force("none", "429")  # the envelope passes, its member is throttled
    found = client.batch_get({mid: f"/me/messages/{mid}?$select=id"})
    assert found[mid][0] == 200 and len(sleeps) == 1


def test_long_retry_after_on_batch_members_is_left_to_the_daemon(
    emu: GraphEmulator, token: Path
) -> None:
    sleeps: list[float] = []
    client = _client(emu, token, sleeps)
    mid = emu.add_message()
    emu.retry_after = "120"
    emu.force("none", "429")
    with pytest.raises(TransientError) as exc:
        client.batch_get({mid: f"/me/messages/{mid}?$select=id"})
    assert exc.value.retry_after == 120.0
    assert sleeps == []  # not two minutes asleep inside the sync


@pytest.mark.parametrize("status", [410, 400])
def test_expired_delta_state_as_410_with_location_or_400_sync_state_not_found(
    emu: GraphEmulator, token: Path, status: int
) -> None:
    emu.sync_state_status = status
    emu.add_bulk(30)
    emu.add_event(subject="Before")
    store = close_after_test(Store.memory())
    assert sync(store, emu, token, page_size=7) == "ok"
    emu.expire_tokens()
    emu.add_bulk(4)
    emu.add_event(subject="After")
    outcome = run_account(store, connector_for(emu, token, page_size=7))
    assert outcome.state == "ok" and outcome.added == 5
    assert stored_ids(store, ACCOUNT) == sorted(emu.expected_message_ids())
    assert store.counts()["events"] == 2


def test_replayed_delta_items_are_stored_once(emu: GraphEmulator, token: Path) -> None:
    emu.replay = 2  # every page repeats its first two changes
    emu.add_bulk(30)
    now = datetime.now(UTC)
    for d in range(5):
        emu.add_event(subject=f"Meeting {d}", start=now - timedelta(days=d + 1))
    store = close_after_test(Store.memory())
    first = run_account(store, connector_for(emu, token, page_size=4))
    assert first.state == "ok" and first.added == 35
    gone = emu.add_message()
    emu.delete_message(emu.add_message())
    assert sync(store, emu, token, page_size=4) == "ok"
    emu.delete_message(gone)
    assert sync(store, emu, token, page_size=4) == "ok"
    assert stored_ids(store, ACCOUNT) == sorted(emu.expected_message_ids())
    assert store.counts()["events"] == 5


def test_calendar_window_over_graphs_1825_day_limit_is_clamped_and_said(
    emu: GraphEmulator, token: Path, caplog: pytest.LogCaptureFixture
) -> None:
    now = datetime.now(UTC)
    emu.add_event(subject="Recent", start=now - timedelta(days=30))
    emu.add_event(subject="Four years ago", start=now - timedelta(days=4 * 365))
    emu.add_event(subject="Six years ago", start=now - timedelta(days=6 * 365))
    conn = connector_for(emu, token)
    conn.options.window_past = timedelta(days=10 * 365)
    store = close_after_test(Store.memory())
    with caplog.at_level("WARNING"):
        out = run_account(store, conn)
    assert out.state == "ok", out.error
    titles = {r[0] for r in store.conn.execute("SELECT title FROM events")}
    assert titles == {"Recent", "Four years ago"}
    assert any("1825" in r.getMessage() and "1811 days" in r.getMessage() for r in caplog.records)


def _concurrently(*jobs: Callable[[], object]) -> list[BaseException]:
    """Run each job in its own thread; the exceptions they raised."""
    errors: list[BaseException] = []

    def guarded(job: Callable[[], object]) -> None:
        try:
            job()
        except BaseException as exc:  # pragma: no cover - reported by the caller
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(j,)) for j in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def test_at_most_four_concurrent_requests_per_mailbox(emu: GraphEmulator, token: Path) -> None:
    emu.latency = 0.05
    clients = [_client(emu, token) for _ in range(2)]  # two clients, one mailbox

    def work(c: GraphClient) -> None:
        for _ in range(3):
            c.get("me/mailFolders")

    assert not _concurrently(*(partial(work, clients[i % 2]) for i in range(10)))
    assert emu.concurrency_rejections == 0
    assert emu.max_inflight == 4


def test_batch_members_count_towards_the_four_concurrent_requests(
    emu: GraphEmulator, token: Path
) -> None:
    """Graph hands Outlook up to four members of a $batch at once, and they count against the
    mailbox's four concurrent requests: a batch sent beside three folder requests must wait."""
    ids = [emu.add_message() for _ in range(12)]
    emu.latency = 0.05
    client = _client(emu, token)

    def folders() -> None:
        for _ in range(4):
            client.get("me/mailFolders")

    def batch() -> None:
        for _ in range(3):
            found = client.batch_get({m: f"/me/messages/{m}?$select=id" for m in ids})
            assert {k: v[0] for k, v in found.items()} == dict.fromkeys(ids, 200)

    assert not _concurrently(folders, folders, folders, batch)
    assert emu.concurrency_rejections == 0
    assert emu.max_inflight <= 4


def _converge(store: Store, emu: GraphEmulator, token: Path) -> list[str]:
    states: list[str] = []
    for _ in range(20):
        states.append(sync(store, emu, token, page_size=50, timeout=0.4))
        if states[-1] == "ok":
            break
    return states


def test_twenty_percent_faults_converge_with_nothing_lost(emu: GraphEmulator, token: Path) -> None:
    projects = emu.create_folder("Projects", "inbox")
    ids = emu.add_bulk(1500, folders=("inbox", "sentitems", projects))
    emu.add_event(subject="Standup")
    emu.timeout_sleep = 0.6
    emu.fault_rate = 0.2
    store = close_after_test(Store.memory())
    states = _converge(store, emu, token)  # a backfill under faults
    assert states[-1] == "ok", states
    assert stored_ids(store, ACCOUNT) == sorted(emu.expected_message_ids())
    for mid in ids[:20]:
        emu.move_message(
            mid, "inbox" if emu.messages[mid]["parentFolderId"] == projects else projects
        )
    for mid in ids[20:40]:
        emu.delete_message(mid)
    emu.add_bulk(300, folders=("inbox", projects))
    states = _converge(store, emu, token)  # incremental rounds under faults
    assert states[-1] == "ok", states
    assert sum(emu.faults_injected.values()) > 5
    assert len(emu.faults_injected) >= 3  # several kinds of fault were served
    assert stored_ids(store, ACCOUNT) == sorted(emu.expected_message_ids())
    # the 20 deleted messages stay as history; nothing else is extra, nothing is twice
    assert store.counts()["messages"] == len(emu.expected_message_ids()) + 20


# -- calendar -------------------------------------------------------------------------------------
def test_calendar_events_are_mapped_and_bodies_never_stored(
    emu: GraphEmulator, token: Path
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    emu.add_event(
        subject="Budget review",
        start=now - timedelta(days=2),
        organizer="alice@example.com",
        attendees=[
            ("alice@example.com", "organizer", "required"),
            (emu.user, "accepted", "required"),
            ("bob@example.org", "declined", "optional"),
            ("room-4@contoso.test", "accepted", "resource"),
        ],
        my_response="tentativelyAccepted",
    )
    emu.add_event(subject="Cancelled sync", start=now - timedelta(days=1), is_cancelled=True)
    master = emu.add_event(
        subject="Weekly", start=now - timedelta(days=7), event_type="seriesMaster"
    )
    emu.add_event(
        subject="Weekly",
        start=now - timedelta(days=7),
        event_type="occurrence",
        series_master=master,
    )
    emu.add_event(
        subject="Holiday", start=now + timedelta(days=3), show_as="oof", is_organizer=True
    )
    batches: list[Batch] = []
    store = close_after_test(Store.memory())
    run_account(store, connector_for(emu, token), on_batch=lambda _a, _p, b: batches.append(b))
    events = {e.title: e for b in batches for e in b.events}
    assert set(events) == {"Budget review", "Cancelled sync", "Weekly", "Holiday"}
    review = events["Budget review"]
    assert review.my_response == "tentative" and review.start == now - timedelta(days=2)
    assert review.organizer is not None and review.organizer.email == "alice@example.com"
    by = {a.email: a for a in review.attendees}
    assert by["alice@example.com"].organizer and by["alice@example.com"].response == "accepted"
    assert by["bob@example.org"].optional and by["bob@example.org"].response == "declined"
    assert by["room-4@contoso.test"].resource
    assert by[emu.user].is_self
    assert events["Cancelled sync"].status == "cancelled"
    assert events["Weekly"].recurring
    assert (
        events["Holiday"].event_type == "outOfOffice"
        and events["Holiday"].my_response == "accepted"
    )
    dump = "\n".join(store.conn.iterdump())
    assert "SECRET AGENDA" not in dump
    assert store.counts()["events"] == 4


def test_recurring_meetings_take_their_people_from_the_series_master(
    emu: GraphEmulator, token: Path
) -> None:
    """calendarView/delta sends occurrences with only id, type, seriesMasterId, start and end:
    organizer, attendees, my response and showAs come from the series master, fetched once
    (when the master is not in the payload); an exception's own attendees win."""
    now = datetime.now(UTC).replace(microsecond=0)
    one_on_one = [("alice@example.com", "accepted", "required"), (emu.user, "accepted", "required")]
    # a weekly 1:1 that began long before the window: its master is not in the payload
    _m, weekly = emu.add_series(
        subject="Alice 1:1",
        start=now - timedelta(days=1200),
        count=180,
        organizer="alice@example.com",
        attendees=one_on_one,
        my_response="accepted",
    )
    # a team meeting series inside the window, with one exception that has its own attendees
    _t, team = emu.add_series(
        subject="Team",
        start=now - timedelta(days=20),
        count=3,
        organizer=emu.user,
        is_organizer=True,
        attendees=[("bob@example.org", "accepted", "required")],
    )
    emu.make_exception(
        team[1], attendees=[{"type": "required", "status": {"response": "accepted"},
                             "emailAddress": {"address": "carol@example.org", "name": "Carol"}}]
    )  # fmt: skip
    # a recurring out-of-office block
    emu.add_series(subject="Away", start=now - timedelta(days=30), count=2, show_as="oof",
                   is_organizer=True, organizer=emu.user)  # fmt: skip
    batches: list[Batch] = []
    store = close_after_test(Store.memory())
    before = emu.routes.copy()
    run_account(store, connector_for(emu, token), on_batch=lambda _a, _p, b: batches.append(b))
    events = [e for b in batches for e in b.events]
    alice = [e for e in events if e.title == "Alice 1:1"]
    lo, hi = now - timedelta(days=730), now + timedelta(days=14)
    in_window = [o for o in weekly if lo < _parse(emu.events[o]["start"]["dateTime"]) < hi]
    assert len(alice) == len(in_window) > 100
    for e in alice:
        assert e.recurring and e.organizer and e.organizer.email == "alice@example.com"
        assert {a.email for a in e.attendees} == {"alice@example.com", emu.user}
        assert e.my_response == "accepted"
    team_events = sorted((e for e in events if e.title == "Team"), key=lambda e: e.start)
    assert [sorted(a.email for a in e.attendees) for e in team_events] == [
        ["bob@example.org"],
        ["carol@example.org"],
        ["bob@example.org"],
    ]
    assert all(e.my_response == "accepted" for e in team_events)
    away = [e for e in events if e.title == "Away"]
    assert len(away) == 2 and all(e.event_type == "outOfOffice" for e in away)
    assert emu.routes["events/{id}"] - before["events/{id}"] == 1  # only Alice's master
    dump = "\n".join(store.conn.iterdump())
    assert "SECRET AGENDA" not in dump

    # The organiser adds Dave to the series: the next sync updates every occurrence.
    emu.update_event(_m, attendees=[*emu.events[_m]["attendees"],
                                     {"type": "optional", "status": {"response": "none"},
                                      "emailAddress": {"address": "dave@example.org"}}])  # fmt: skip
    batches.clear()
    run_account(store, connector_for(emu, token), on_batch=lambda _a, _p, b: batches.append(b))
    again = [e for b in batches for e in b.events if e.title == "Alice 1:1"]
    assert len(again) == len(in_window)
    assert all("dave@example.org" in {a.email for a in e.attendees} for e in again)


def test_occurrences_of_a_series_whose_master_is_gone_are_skipped(
    emu: GraphEmulator, token: Path
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    master, _occ = emu.add_series(subject="Old", start=now - timedelta(days=800), count=200)
    with emu.lock:
        del emu.events[master]  # deleted between the delta and the lookup
    batches: list[Batch] = []
    out = run_account(
        close_after_test(Store.memory()),
        connector_for(emu, token),
        on_batch=lambda _a, _p, b: batches.append(b),
    )
    assert out.state == "ok"
    assert not [e for b in batches for e in b.events]
    assert out.skipped.get("recurring series deleted", 0) > 0


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value[:19]).replace(tzinfo=UTC)


def test_calendar_deletions_and_window(emu: GraphEmulator, token: Path) -> None:
    now = datetime.now(UTC)
    keep = emu.add_event(subject="Keep", start=now - timedelta(days=5))
    drop = emu.add_event(subject="Drop", start=now - timedelta(days=4))
    emu.add_event(subject="Too old", start=now - timedelta(days=1000))
    store = close_after_test(Store.memory())
    assert sync(store, emu, token) == "ok"
    assert store.counts()["events"] == 2
    emu.delete_event(drop)
    emu.update_event(keep, subject="Kept")
    assert sync(store, emu, token) == "ok"
    titles = [r[0] for r in store.conn.execute("SELECT title FROM events")]
    assert titles == ["Kept"] or store.counts()["events"] == 1


def test_titles_are_not_stored_when_subjects_are_off(emu: GraphEmulator, token: Path) -> None:
    emu.add_event(subject="Private title")
    emu.add_message(subject="Private subject")
    conn = connector_for(emu, token)
    conn.options.keep_subjects = False
    store = close_after_test(Store.memory())
    assert run_account(store, conn).state == "ok"
    dump = "\n".join(store.conn.iterdump())
    assert "Private title" not in dump and "Private subject" not in dump


# -- sendMail -------------------------------------------------------------------------------------
def test_send_mail_needs_mail_send_and_is_accepted(emu: GraphEmulator, tmp_path: Path) -> None:
    plain = tmp_path / "plain.json"
    sign_in(emu, plain)
    client = close_after_test(make_client(auth_for(emu, plain), graph_endpoint=emu.graph_endpoint))
    with pytest.raises(AuthRequired):
        send_mail(client, to=["me@contoso.test"], subject="Digest", text="hi")
    with_send = tmp_path / "send.json"
    sign_in(emu, with_send, send=True)
    client = close_after_test(
        make_client(auth_for(emu, with_send, send=True), graph_endpoint=emu.graph_endpoint)
    )
    send_mail(
        client,
        to=["me@contoso.test"],
        subject="Digest",
        text="hi",
        headers={"X-Keepwarm-Digest": "2026-01-01"},
    )
    [sent] = emu.sent
    assert sent["message"]["toRecipients"][0]["emailAddress"]["address"] == "me@contoso.test"
    assert sent["message"]["internetMessageHeaders"] == [
        {"name": "X-Keepwarm-Digest", "value": "2026-01-01"}
    ]


def test_send_mail_is_not_retried_after_a_dropped_connection(
    emu: GraphEmulator, tmp_path: Path
) -> None:
    path = tmp_path / "send.json"
    sign_in(emu, path, send=True)
    client = close_after_test(
        make_client(auth_for(emu, path, send=True), graph_endpoint=emu.graph_endpoint)
    )
    emu.force("drop")
    with pytest.raises(TransientError):
        send_mail(client, to=["me@contoso.test"], subject="Digest", text="hi")
    assert emu.routes["sendMail"] == 0 and not emu.sent


def test_token_file_permissions_survive_refresh(emu: GraphEmulator, tmp_path: Path) -> None:
    emu.access_token_lifetime = 1
    path = tmp_path / "office.json"
    sign_in(emu, path)
    os.chmod(path, 0o600)
    with auth_for(emu, path) as auth:
        auth.access_token()
    assert emu.token_requests["refresh_token"] == 1
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_send_mime_keeps_every_header(emu: GraphEmulator, tmp_path: Path) -> None:
    from email.message import EmailMessage

    from keepwarm.connectors.microsoft.send import send_mime

    path = tmp_path / "send.json"
    sign_in(emu, path, send=True)
    client = close_after_test(
        make_client(auth_for(emu, path, send=True), graph_endpoint=emu.graph_endpoint)
    )
    msg = EmailMessage()
    msg["From"] = msg["To"] = emu.user
    msg["Subject"] = "Your keepwarm digest"
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Keepwarm-Digest"] = "2026-01-02"
    msg.set_content("Three people to get back to.")
    send_mime(client, msg)
    [sent] = emu.sent
    assert sent["headers"]["Auto-Submitted"] == "auto-generated"
    assert sent["headers"]["X-Keepwarm-Digest"] == "2026-01-02"
    assert b"Three people" in sent["mime"]


def test_a_request_graph_rejects_is_a_failing_state_not_a_crash(
    emu: GraphEmulator, token: Path
) -> None:
    emu.add_message()
    emu.force("400")
    outcome = run_account(close_after_test(Store.memory()), connector_for(emu, token))
    assert outcome.state == "failing"
    assert outcome.error and "ErrorInvalidRequest" in outcome.error


def test_keepwarm_digests_in_sent_items_are_marked(emu: GraphEmulator, token: Path) -> None:
    emu.add_message(
        "sentitems",
        sender=emu.user,
        to=[emu.user],
        message_id="<digest.2026-01-02.ab12cd34ef@keepwarm.invalid>",
    )
    batches: list[Batch] = []
    run_account(
        close_after_test(Store.memory()),
        connector_for(emu, token),
        on_batch=lambda _a, _p, b: batches.append(b),
    )
    [m] = [m for b in batches for m in b.messages]
    assert "keepwarm-digest" in m.markers


def test_calendar_window_moves_forward_with_time(emu: GraphEmulator, token: Path) -> None:
    t0 = datetime.now(UTC).replace(microsecond=0)
    emu.add_event(subject="Soon", start=t0 + timedelta(days=2))
    later = emu.add_event(subject="Later", start=t0 + timedelta(days=20))
    store = close_after_test(Store.memory())
    assert run_account(store, connector_for(emu, token, now=t0)).state == "ok"
    assert [r[0] for r in store.conn.execute("SELECT title FROM events")] == ["Soon"]
    t1 = t0 + timedelta(days=10)  # the window's future edge is now 24 days out
    assert run_account(store, connector_for(emu, token, now=t1)).state == "ok"
    titles = sorted(r[0] for r in store.conn.execute("SELECT title FROM events"))
    assert titles == ["Later", "Soon"]
    emu.delete_event(later)
    assert run_account(store, connector_for(emu, token, now=t1)).state == "ok"
    assert [r[0] for r in store.conn.execute("SELECT title FROM events")] == ["Soon"]


def test_backfill_reports_progress_against_the_folder_totals(
    emu: GraphEmulator, token: Path
) -> None:
    emu.add_bulk(30)
    progress = []
    run_account(
        close_after_test(Store.memory()),
        connector_for(emu, token, page_size=10, calendar=False),
        on_batch=lambda _a, p, _b: progress.append(p),
    )
    assert all(p is not None and p.total == 30 for p in progress)
    assert [p.done for p in progress] == sorted(p.done for p in progress)
    assert progress[-1].done == 30


def test_events_that_change_outside_the_window_are_not_deleted(
    emu: GraphEmulator, token: Path
) -> None:
    t0 = datetime.now(UTC).replace(microsecond=0)
    old = emu.add_event(subject="Old but real", start=t0 - timedelta(days=3))
    store = close_after_test(Store.memory())
    assert run_account(store, connector_for(emu, token, now=t0)).state == "ok"
    t1 = t0 + timedelta(days=10)
    conn = connector_for(emu, token, now=t1)
    conn.options.window_past = timedelta(days=5)  # the event is now outside the window
    assert run_account(store, conn).state == "ok"
    emu.update_event(old, subject="Old but real (notes added)")  # delta: @removed (out of range)
    assert run_account(store, connector_for(emu, token, now=t1)).state == "ok"
    assert store.counts()["events"] == 1
    emu.delete_event(old)
    assert run_account(store, connector_for(emu, token, now=t1)).state == "ok"
    assert store.counts()["events"] == 0


def test_https_authority_and_graph_with_a_private_ca(tmp_path: Path) -> None:
    """No rewrite route: msal and Graph over real TLS, trusted through ca_file."""
    import trustme

    from keepwarm.connectors.base import SourceError
    from keepwarm.connectors.microsoft.account import make_auth

    ca = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    with GraphEmulator() as emu:
        import ssl

        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1").configure_cert(ctx)
        emu.use_tls(ctx)
        assert emu.url.startswith("https://") and emu.graph_endpoint.startswith("https://")
        emu.auto_approve = True
        emu.add_message()

        def auth(ca_path: Path | None, token: Path) -> MicrosoftAuth:
            return make_auth(
                account=ACCOUNT,
                client_id=emu.client_id,
                tenant=emu.tenant,
                token_path=token,
                mail=True,
                calendar=True,
                send=False,
                authority_host=emu.url,
                ca_file=ca_path,
                timeout=timedelta(seconds=5),
            )

        with (
            auth(None, tmp_path / "u.json") as untrusted,
            pytest.raises(SourceError, match="ca_file"),
        ):
            untrusted.start_device_flow()
        trusted = auth(ca_file, tmp_path / "t.json")
        flow = trusted.start_device_flow()
        assert trusted.finish_device_flow(flow) == emu.user
        client = make_client(trusted, graph_endpoint=emu.graph_endpoint)  # the sync closes it
        store = close_after_test(Store.memory())
        from keepwarm.connectors.microsoft.connector import MicrosoftConnector, Options

        assert run_account(store, MicrosoftConnector(ACCOUNT, client, Options())).state == "ok"
        assert store.counts()["messages"] == 1


def test_batch_members_of_a_mailbox_not_enabled_raise_rather_than_delete(
    emu: GraphEmulator, token: Path
) -> None:
    from keepwarm.connectors.microsoft.graph import MailboxNotEnabled

    mid = emu.add_message()
    emu.mailbox_enabled = False
    client = close_after_test(make_client(auth_for(emu, token), graph_endpoint=emu.graph_endpoint))
    with pytest.raises(MailboxNotEnabled) as exc:
        client.batch_get({mid: f"/me/messages/{mid}?$select=id"})
    assert exc.value.fix and "licence" in exc.value.fix
