"""Google Calendar connector against the emulator (Calendar v3 through the real client)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from contract import ConnectorContract
from fakes.google_api import CALENDAR_READONLY, GMAIL_METADATA, GoogleEmulator
from fakes.google_world import GoogleFaults, calendar_connector, fast_retry, write_token
from leakcheck import close_after_test

from keepwarm.connectors.base import Batch, Deletion, EventMeta
from keepwarm.connectors.google.calendar import to_event, wanted_calendar
from keepwarm.daemon.store import Store
from keepwarm.daemon.sync import run_account

ME = "me@example.com"


@pytest.fixture
def emu() -> Iterator[GoogleEmulator]:
    with GoogleEmulator(address=ME) as e:
        yield e
        e.check()


@pytest.fixture
def token(emu: GoogleEmulator, tmp_path: Path) -> Path:
    return write_token(emu, tmp_path / "token.json", (CALENDAR_READONLY,))


def when(days: float, hours: float = 0) -> str:
    t = datetime.now(UTC).replace(microsecond=0) + timedelta(days=days, hours=hours)
    return t.isoformat().replace("+00:00", "Z")


def meeting(days: float, *, summary: str = "Sync", **extra: Any) -> dict[str, Any]:
    return {
        "summary": summary,
        "description": "secret agenda",
        "start": {"dateTime": when(days)},
        "end": {"dateTime": when(days, 1)},
        "organizer": {"email": "alice@example.org", "displayName": "Alice"},
        "attendees": [
            {"email": "alice@example.org", "organizer": True, "responseStatus": "accepted"},
            {"email": ME, "self": True, "responseStatus": "tentative"},
            {
                "email": "room-1@resource.calendar.google.com",
                "resource": True,
                "responseStatus": "accepted",
            },
        ],
        **extra,
    }


def event_rows(store: Store) -> list[tuple[Any, ...]]:
    return store.conn.execute(
        "SELECT ical_uid, status, event_type, my_response, title FROM events ORDER BY start"
    ).fetchall()


def run(store: Store, emu: GoogleEmulator, token: Path, **opts: Any) -> str:
    return run_account(store, calendar_connector(emu, token, page_size=2, **opts)).state


class GoogleCalendarWorld(GoogleFaults):
    """The contract suite's handle on the emulator's calendar (tests/contract.py World)."""

    account = "cal"
    kind = "gcal"

    def __init__(self, emu: GoogleEmulator, token: Path) -> None:
        self.emu, self.token = emu, token
        self.ids: list[str] = []

    def connector(self) -> Any:
        return calendar_connector(self.emu, self.token, page_size=4, retry=fast_retry())

    def add_messages(self, n: int) -> None:
        for _ in range(n):
            self.ids.append(self.emu.calendar.put_event(ME, meeting(-1 - len(self.ids) / 3)))

    def _uid(self, eid: str) -> str:
        return str(self.emu.calendar.calendars[ME].events[eid][1]["iCalUID"])

    def delete_one(self) -> str:
        eid = self.ids.pop(0)
        self.emu.calendar.cancel_event(ME, eid)
        return self._uid(eid)

    def change_one(self) -> tuple[str, datetime]:
        eid = self.ids[-1]
        event = {**meeting(-20, summary="Moved"), "id": eid}
        self.emu.calendar.put_event(ME, event)
        return self._uid(eid), datetime.fromisoformat(event["start"]["dateTime"])

    def expected_ids(self) -> set[str]:
        return {self._uid(e) for e in self.ids}

    def expire_cursor(self) -> None:
        self.emu.calendar.expire_tokens()


class TestGoogleCalendarContract(ConnectorContract):
    records = "events"

    @pytest.fixture
    def world(self, emu: GoogleEmulator, token: Path) -> GoogleCalendarWorld:
        return GoogleCalendarWorld(emu, token)


def test_full_then_incremental_with_changes_and_cancellations(
    emu: GoogleEmulator, token: Path
) -> None:
    cal = emu.calendar
    ids = [cal.put_event(ME, meeting(-d)) for d in (1, 2, 3, 5, 8)]
    cal.put_event(ME, meeting(-900))  # outside the 2-year window
    cal.put_event(ME, meeting(30))  # beyond the 2-week horizon
    store = close_after_test(Store.memory())
    assert run(store, emu, token) == "ok"
    assert store.counts()["events"] == 5
    cal.cancel_event(ME, ids[0])
    cal.put_event(ME, meeting(-4, summary="New"))
    before = emu.calls.copy()
    assert run(store, emu, token) == "ok"
    assert emu.calls - before == {"calendar.events.list": 1}
    rows = event_rows(store)
    assert len(rows) == 5 and ("New" in {r[4] for r in rows})
    before = emu.calls.copy()
    assert run(store, emu, token) == "ok"  # no change: one call per calendar
    assert emu.calls - before == {"calendar.events.list": 1}


def test_event_types_responses_and_privacy(emu: GoogleEmulator, token: Path) -> None:
    cal = emu.calendar
    cal.put_event(ME, meeting(-1))
    cal.put_event(
        ME,
        {
            "eventType": "birthday",
            "summary": "Bob's birthday",
            "start": {"date": "2026-11-01"},
            "end": {"date": "2026-11-02"},
        },
    )
    cal.put_event(ME, {**meeting(-2), "eventType": "outOfOffice", "attendees": []})
    cal.put_event(ME, {**meeting(-3), "eventType": "focusTime", "attendees": []})
    cal.put_event(ME, {**meeting(-4), "eventType": "workingLocation", "attendees": []})
    batches: list[Any] = []
    c = calendar_connector(emu, token, store_subjects=False)
    run_account(close_after_test(Store.memory()), c, on_batch=lambda _a, _p, b: batches.append(b))
    events = [e for b in batches for e in b.events]
    assert sorted(e.event_type for e in events) == ["birthday", "default", "outOfOffice"]
    assert all(e.title is None for e in events)
    m = next(e for e in events if e.event_type == "default")
    assert m.my_response == "tentative" and m.organizer and m.organizer.email == "alice@example.org"
    room = [a for a in m.attendees if a.resource]
    assert len(room) == 1 and not room[0].is_self
    birthday = next(e for e in events if e.event_type == "birthday")
    assert birthday.all_day and birthday.start == datetime(2026, 11, 1, tzinfo=UTC)
    skipped = {k: v for b in batches for k, v in b.skipped.items()}
    assert skipped == {"focus time": 1, "working location": 1}


def test_expired_sync_token_triggers_a_clean_resync(emu: GoogleEmulator, token: Path) -> None:
    cal = emu.calendar
    ids = [cal.put_event(ME, meeting(-d)) for d in (1, 2, 3)]
    store = close_after_test(Store.memory())
    assert run(store, emu, token) == "ok"
    cal.expire_tokens()
    del cal.calendars[ME].events[
        ids[0]
    ]  # vanished while the token was stale: only a reset finds out
    cal.put_event(ME, meeting(-6))
    assert run(store, emu, token) == "ok"
    assert store.counts()["events"] == 3
    assert run(store, emu, token) == "ok"
    assert store.counts()["events"] == 3


def test_resume_from_any_cursor(emu: GoogleEmulator, token: Path) -> None:
    cal = emu.calendar
    cal.add_calendar("team@group.calendar.google.com", accessRole="owner")  # a secondary one
    cal.add_calendar("en.german#holiday@group.v.calendar.google.com", accessRole="reader")
    cal.put_event(
        "en.german#holiday@group.v.calendar.google.com",
        {"summary": "Holiday", "start": {"date": "2026-11-10"}, "end": {"date": "2026-11-11"}},
    )
    for d in range(1, 6):
        cal.put_event(ME, meeting(-d))
        cal.put_event("team@group.calendar.google.com", meeting(-d - 0.5, summary="Team"))
    batches: list[Any] = []
    ref = close_after_test(Store.memory())
    run_account(
        ref,
        calendar_connector(emu, token, page_size=2),
        on_batch=lambda _a, _p, b: batches.append(b),
    )
    assert ref.counts()["events"] == 10 and len(batches) >= 5
    for k in range(1, len(batches)):
        store = close_after_test(Store.memory())
        for b in batches[:k]:
            store.apply_batch("cal", "gcal", b)
        assert run(store, emu, token) == "ok"
        assert event_rows(store) == event_rows(ref), f"after batch {k}"


def test_configured_calendars_only(emu: GoogleEmulator, token: Path) -> None:
    emu.calendar.add_calendar("team@group.calendar.google.com")
    emu.calendar.put_event("team@group.calendar.google.com", meeting(-1))
    emu.calendar.put_event(ME, meeting(-2))
    store = close_after_test(Store.memory())
    assert run(store, emu, token, calendars=("primary",)) == "ok"
    assert store.counts()["events"] == 1
    out = run_account(
        close_after_test(Store.memory()), calendar_connector(emu, token, calendars=("nope",))
    )
    assert out.state == "failing" and "calendars" in (out.error or "")


def test_gmail_only_token_asks_for_auth(emu: GoogleEmulator, tmp_path: Path) -> None:
    tok = write_token(emu, tmp_path / "gmail-only.json", (GMAIL_METADATA,))
    out = run_account(close_after_test(Store.memory()), calendar_connector(emu, tok))
    assert out.state == "auth_required" and out.fix == "keepwarm auth google cal"


def test_to_event_mapping() -> None:
    ev = meeting(-1)
    ev.update(id="e1", iCalUID="u1@google.com", recurringEventId="master", attendeesOmitted=True)
    rec = to_event(ev, account="cal", calendar_id=ME, store_subjects=True)
    assert isinstance(rec, EventMeta)
    assert rec.provider_id == f"{ME}/e1" and rec.recurring and rec.attendees_omitted
    assert rec.title == "Sync" and rec.start.tzinfo == UTC
    gone = to_event(
        {"id": "e2", "status": "cancelled"}, account="cal", calendar_id=ME, store_subjects=True
    )
    assert gone == Deletion("cal", f"{ME}/e2", "event")
    assert not wanted_calendar(
        {"id": "x#holiday@group.v.calendar.google.com", "accessRole": "reader"}, ()
    )
    assert wanted_calendar({"id": ME, "primary": True}, ("primary",))


def _copies(store: Store) -> dict[str, tuple[str, list[tuple[str, bool]]]]:
    """title -> (my_response, [(attendee, is_self)])."""
    out = {}
    for eid, title, mine in store.conn.execute("SELECT id, title, my_response FROM events"):
        rows = store.conn.execute(
            """SELECT a.email, x.is_self FROM event_attendees x
               JOIN addresses a ON a.id = x.address WHERE x.event = ? ORDER BY a.email""",
            (eid,),
        ).fetchall()
        out[title] = (mine, [(r[0], bool(r[1])) for r in rows])
    return out


def test_a_colleagues_calendar_is_not_read_as_mine(emu: GoogleEmulator, token: Path) -> None:
    """On a colleague's calendar the ``self`` attendee is the colleague: their meetings are not
    the user's, and their response is not the user's."""
    cal, carol = emu.calendar, "carol@example.com"
    cal.add_calendar(carol, accessRole="writer", summary="Carol")
    cal.add_calendar("me-side@group.calendar.google.com", accessRole="owner", summary="Side")
    people = [
        {"email": "dan@example.org", "organizer": True, "responseStatus": "accepted"},
        {"email": carol, "responseStatus": "accepted"},
    ]
    cal.put_event(carol, meeting(-1, summary="Carol and Dan", attendees=people))
    both = meeting(
        -2,
        summary="All three",
        id="shared1",
        attendees=[
            people[0],
            {"email": carol, "responseStatus": "declined"},
            {"email": ME, "responseStatus": "accepted"},
        ],
    )
    cal.put_event(carol, both)
    cal.put_event(ME, both)
    cal.put_event("me-side@group.calendar.google.com", meeting(-3, summary="Side project"))
    store = close_after_test(Store.memory())
    assert run(store, emu, token) == "ok"  # default: my own calendars only
    seen = _copies(store)
    assert set(seen) == {"All three", "Side project"}
    assert seen["All three"][0] == "accepted"
    assert (carol, False) in seen["All three"][1] and (ME, True) in seen["All three"][1]

    # Read explicitly, Carol's calendar still does not speak for me.
    store = close_after_test(Store.memory())
    batches: list[Any] = []
    c = calendar_connector(emu, token, page_size=2, calendars=("primary", carol))
    assert run_account(store, c, on_batch=lambda _a, _p, b: batches.append(b)).state == "ok"
    seen = _copies(store)
    assert set(seen) == {"All three"}
    assert seen["All three"][0] == "accepted"
    assert all(not is_self for who, is_self in seen["All three"][1] if who != ME)
    skipped = {k: v for b in batches for k, v in b.skipped.items()}
    assert skipped == {"another person's event": 1}


def test_a_cursor_from_before_own_calendars_were_known_rereads_from_scratch(
    emu: GoogleEmulator, token: Path
) -> None:
    import json
    import time

    emu.calendar.put_event(ME, meeting(-1, summary="Mine"))
    store = close_after_test(Store.memory())
    store.ensure_account("cal", "gcal")
    colleagues = to_event(
        meeting(-2, summary="Carol's", id="c1"),
        account="cal",
        calendar_id="carol@example.com",
        store_subjects=True,
    )
    assert isinstance(colleagues, EventMeta)
    old = {"v": 1, "mode": "incr", "tokens": {"carol@example.com": None}, "full_at": time.time()}
    store.apply_batch("cal", "gcal", Batch(events=[colleagues], cursor=json.dumps(old)))
    assert run(store, emu, token) == "ok"
    assert [r[4] for r in event_rows(store)] == ["Mine"]
