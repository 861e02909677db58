"""The .ics connector: meetings, recurrence windows, zones, birthdays, re-scans and bad input."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from contract import ConnectorContract
from leakcheck import close_after_test

from keepwarm.connectors.base import Batch, EventMeta
from keepwarm.connectors.local.ics import IcsConnector
from keepwarm.daemon.store import Store
from keepwarm.daemon.sync import run_account

NOW = datetime(2024, 3, 10, 12, 0, tzinfo=UTC)
ME = "me@example.com"

NY_TZ = """BEGIN:VTIMEZONE
TZID:America/New_York
BEGIN:STANDARD
DTSTART:20071104T020000
RRULE:FREQ=YEARLY;BYMONTH=11;BYDAY=1SU
TZOFFSETFROM:-0400
TZOFFSETTO:-0500
END:STANDARD
BEGIN:DAYLIGHT
DTSTART:20070311T020000
RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=2SU
TZOFFSETFROM:-0500
TZOFFSETTO:-0400
END:DAYLIGHT
END:VTIMEZONE
"""


def vevent(uid: str, start: str, *lines: str, end: str | None = None, people: bool = True) -> str:
    body = [f"UID:{uid}", f"DTSTART{start}"]
    if end:
        body.append(f"DTEND{end}")
    if people:
        body += [
            "ORGANIZER;CN=Bob Boss:mailto:bob@example.com",
            "ATTENDEE;CN=Bob Boss;PARTSTAT=ACCEPTED:mailto:bob@example.com",
            "ATTENDEE;PARTSTAT=DECLINED:mailto:ME@example.com",
            "ATTENDEE;ROLE=OPT-PARTICIPANT;PARTSTAT=TENTATIVE:mailto:carol@example.com",
            "ATTENDEE;CUTYPE=ROOM:mailto:room1@example.com",
        ]
    body += list(lines)
    return "BEGIN:VEVENT\n" + "\n".join(body) + "\nEND:VEVENT\n"


def calendar(*events: str, extra: str = "") -> str:
    return (
        "BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:test\n" + extra + "".join(events) + "END:VCALENDAR\n"
    )


def connector(path: Path, **kw: object) -> IcsConnector:
    args: dict[str, object] = {"zone": "Europe/Berlin", "self_addresses": [ME], "now": NOW}
    args.update(kw)
    return IcsConnector("cal", path, **args)  # type: ignore[arg-type]


def events(path: Path, **kw: object) -> tuple[list[EventMeta], dict[str, int]]:
    batches = list(connector(path, **kw).sync(None))
    skipped: dict[str, int] = {}
    for b in batches:
        for k, v in b.skipped.items():
            skipped[k] = skipped.get(k, 0) + v
    return [e for b in batches for e in b.events], skipped


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text.replace("\n", "\r\n"))
    return path


def test_meeting_attendees_responses_and_status(tmp_path: Path) -> None:
    path = write(
        tmp_path / "c.ics",
        calendar(
            vevent("m1", ":20240305T090000Z", "SUMMARY:Budget", end=":20240305T100000Z"),
            vevent("m2", ":20240306T090000Z", "STATUS:CANCELLED", "SUMMARY:Off"),
            vevent("solo", ":20240307T090000Z", "SUMMARY:Dentist", people=False),
        ),
    )
    got, skipped = events(path)
    by_uid = {e.ical_uid: e for e in got}
    assert set(by_uid) == {"m1", "m2"} and skipped == {"without attendees": 1}
    m1 = by_uid["m1"]
    assert (m1.start, m1.end) == (
        datetime(2024, 3, 5, 9, tzinfo=UTC),
        datetime(2024, 3, 5, 10, tzinfo=UTC),
    )
    assert m1.organizer is not None and m1.organizer.email == "bob@example.com"
    assert m1.my_response == "declined" and m1.status == "confirmed" and m1.title == "Budget"
    att = {a.email: a for a in m1.attendees}
    assert att["bob@example.com"].organizer and att["me@example.com"].is_self
    assert att["carol@example.com"].optional and att["carol@example.com"].response == "tentative"
    assert att["room1@example.com"].resource
    assert by_uid["m2"].status == "cancelled"


def test_recurring_events_are_expanded_within_the_window(tmp_path: Path) -> None:
    weekly = vevent(
        "w1", ":20230102T090000Z", "RRULE:FREQ=WEEKLY", "SUMMARY:1:1", end=":20230102T093000Z"
    )
    path = write(tmp_path / "c.ics", calendar(weekly))
    got, _ = events(path, window_past=timedelta(days=28), window_future=timedelta(days=14))
    starts = sorted(e.start for e in got)
    assert starts[0] >= NOW - timedelta(days=28) and starts[-1] <= NOW + timedelta(days=14)
    assert len(starts) == 6 and all(e.recurring for e in got)
    assert len({e.provider_id for e in got}) == 6


def test_floating_times_use_my_zone_and_tzid_uses_the_vtimezone(tmp_path: Path) -> None:
    path = write(
        tmp_path / "c.ics",
        calendar(
            vevent("float", ":20240305T090000"),
            vevent("ny", ";TZID=America/New_York:20240305T100000"),
            vevent("day", ";VALUE=DATE:20240306"),
            extra=NY_TZ,
        ),
    )
    got = {e.ical_uid: e for e in events(path)[0]}
    assert got["float"].start == datetime(2024, 3, 5, 8, tzinfo=UTC)  # Berlin is UTC+1 in March
    assert got["ny"].start == datetime(2024, 3, 5, 15, tzinfo=UTC)
    assert got["day"].all_day and got["day"].start == datetime(2024, 3, 5, 23, tzinfo=UTC)
    assert got["day"].end == datetime(2024, 3, 6, 23, tzinfo=UTC)


def test_broken_vtimezone_and_broken_series_do_not_spoil_the_file(tmp_path: Path) -> None:
    broken_tz = "BEGIN:VTIMEZONE\nTZID:Broken/Zone\nBEGIN:STANDARD\nTZOFFSETTO:+5328\nEND:STANDARD\nEND:VTIMEZONE\n"
    path = write(
        tmp_path / "c.ics",
        calendar(
            vevent("bad-tz", ";TZID=Broken/Zone:20240305T100000"),
            vevent("bad-rule", ":20240305T100000Z", "RRULE:FREQ=SOMETIMES;COUNT=x"),
            vevent("good", ":20240305T100000Z"),
            extra=broken_tz,
        ),
    )
    got, _skipped = events(path)
    assert "good" in {e.ical_uid for e in got}


def test_garbage_and_unreadable_files_are_counted(tmp_path: Path) -> None:
    write(tmp_path / "cal" / "ok.ics", calendar(vevent("a", ":20240305T100000Z")))
    (tmp_path / "cal" / "junk.ics").write_bytes(b"\x00\x01 not a calendar BEGIN:VEVENT\n")
    (tmp_path / "cal" / "dangling.ics").symlink_to(tmp_path / "missing.ics")
    got, skipped = events(tmp_path / "cal")
    assert [e.ical_uid for e in got] == ["a"]
    assert skipped == {"unparseable calendar": 1, "unreadable": 1}


def test_birthdays_are_occasions(tmp_path: Path) -> None:
    google = vevent(
        "BIRTHDAY_79d389868f96182e@google.com", ";VALUE=DATE:20240308", "SUMMARY:Anna", people=False
    )
    yearly = vevent(
        "b2", ";VALUE=DATE:19900309", "RRULE:FREQ=YEARLY", "SUMMARY:Tom's Birthday", people=False
    )
    ms = vevent("b3", ";VALUE=DATE:20240307", "X-MICROSOFT-CDO-APPT-TYPE:birthday", people=False)
    party = vevent("p", ";VALUE=DATE:20240307", "SUMMARY:birthday party planning", people=False)
    path = write(tmp_path / "c.ics", calendar(google, yearly, ms, party))
    got, skipped = events(path)
    assert {e.ical_uid: e.event_type for e in got} == {
        "BIRTHDAY_79d389868f96182e@google.com": "birthday",
        "b2": "birthday",
        "b3": "birthday",
    }
    assert skipped == {"without attendees": 1}


def event_sources(store: Store) -> list[str]:
    return sorted(r[0] for r in store.conn.execute("SELECT provider_id FROM event_sources"))


def test_rescan_by_content_hash_replaces_a_changed_file_and_keeps_a_removed_one(
    tmp_path: Path,
) -> None:
    """An event removed from a calendar did not take place: removed. A calendar file that is
    gone as a whole is a vanished calendar: its events stay, and the user is told (item 11)."""
    folder = tmp_path / "cal"
    a = write(
        folder / "a.ics",
        calendar(vevent("a1", ":20240305T100000Z"), vevent("a2", ":20240306T100000Z")),
    )
    write(folder / "sub" / "b.ics", calendar(vevent("b1", ":20240305T110000Z")))
    store = close_after_test(Store.memory())
    assert run_account(store, connector(folder)).added == 3
    assert run_account(store, connector(folder)).batches == 0  # unchanged: nothing read
    write(a, calendar(vevent("a1", ":20240305T120000Z")))  # a1 moved, a2 gone
    (folder / "sub" / "b.ics").unlink()
    outcome = run_account(store, connector(folder))
    assert outcome.state == "ok"
    assert event_sources(store) == [
        f"a.ics#a1#{int(datetime(2024, 3, 5, 12, tzinfo=UTC).timestamp())}"
    ]
    assert (outcome.deleted, outcome.kept) == (2, 1)  # a1's old time and a2; b1 is kept
    assert store.counts()["events"] == 2
    assert [n.text for n in store.notices("cal")] == [
        "calendar file sub/b.ics is gone; its 1 event stays in your history"
    ]
    # the next day the window moves: everything is expanded again, nothing is duplicated
    later = run_account(store, connector(folder, now=NOW + timedelta(days=1)))
    assert later.added == 0 and store.counts()["events"] == 2


def test_resuming_from_every_cursor_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    folder = tmp_path / "cal"
    for i in range(6):
        write(folder / f"{i}.ics", calendar(vevent(f"e{i}", f":2024030{i + 1}T100000Z")))
    batches: list[Batch] = list(connector(folder, batch_size=1).sync(None))
    assert len(batches) >= 3
    reference = close_after_test(Store.memory())
    run_account(reference, connector(folder, batch_size=1))
    expected = event_sources(reference)
    for k in range(1, len(batches)):
        store = close_after_test(Store.memory())
        for b in batches[:k]:
            store.apply_batch("cal", "ics", b)
        assert run_account(store, connector(folder, batch_size=1)).state == "ok"
        assert event_sources(store) == expected, k


def test_single_file_path_and_idempotent_reimport(tmp_path: Path) -> None:
    path = write(tmp_path / "one.ics", calendar(vevent("x", ":20240305T100000Z")))
    store = close_after_test(Store.memory())
    assert run_account(store, connector(path)).added == 1
    store.clear_cursor("cal")
    again = run_account(store, connector(path))
    assert again.added == 0 and store.counts()["events"] == 1


# -- unbounded series (issue 15, item 2) ------------------------------------------------------------
def test_series_more_often_than_daily_are_skipped_with_a_reason(tmp_path: Path) -> None:
    """HOURLY stored 17,132 'meetings' from one event: a series that repeats more often than
    daily is not a series of meetings (and its expansion is what hung on MINUTELY)."""
    path = write(
        tmp_path / "c.ics",
        calendar(
            vevent("hourly", ":20240101T090000Z", "RRULE:FREQ=HOURLY"),
            vevent("twice-a-day", ":20240101T090000Z", "RRULE:FREQ=DAILY;BYHOUR=9,17"),
            vevent("every-5-min", ":20240101T090000Z", "RRULE:FREQ=WEEKLY;BYMINUTE=0,5,10"),
            vevent("daily", ":20240301T090000Z", "RRULE:FREQ=DAILY;COUNT=5"),
            vevent("every-25h", ":20240301T090000Z", "RRULE:FREQ=HOURLY;INTERVAL=25;COUNT=3"),
            vevent(
                "many-rdates",
                ":20240301T090000Z",
                "RDATE:"
                + ",".join(f"202403{d:02d}T{h:02d}0000Z" for d in range(1, 10) for h in range(24)),
            ),
        ),
    )
    got, skipped = events(path)
    assert sorted({e.ical_uid for e in got}) == ["daily", "every-25h"]
    assert len(got) == 8
    assert skipped == {"repeats more often than daily": 4}


STUCK_TZ = """BEGIN:VTIMEZONE
TZID:/Europe/Custom
BEGIN:STANDARD
DTSTART:19701025T030000
RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU;INTERVAL=0
TZOFFSETFROM:+0200
TZOFFSETTO:+0100
END:STANDARD
END:VTIMEZONE
BEGIN:VTIMEZONE
TZID:Eastern Standard Time
BEGIN:STANDARD
DTSTART:16010101T020000
RRULE:FREQ=MINUTELY
TZOFFSETFROM:-0400
TZOFFSETTO:-0500
RRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=1SU;BYMONTH=11
END:STANDARD
BEGIN:DAYLIGHT
DTSTART:16010101T020000
TZOFFSETFROM:-0500
TZOFFSETTO:-0400
RRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=2SU;BYMONTH=3
END:DAYLIGHT
END:VTIMEZONE
"""


def test_an_unbounded_minutely_series_imports_at_once(tmp_path: Path) -> None:
    """RRULE:FREQ=MINUTELY with no end ran past 90 s at 2.7 GB: now it is skipped at once.
    The import runs in a process limited to 1 GB, so the old behaviour fails instead of
    exhausting the machine."""
    import resource
    import subprocess
    import sys

    start = datetime.now(UTC) - timedelta(days=60)
    path = write(
        tmp_path / "c.ics",
        calendar(
            vevent("minutely", ":20230101T000000Z", "RRULE:FREQ=MINUTELY"),
            vevent("secondly", ":20230101T000000Z", "RRULE:FREQ=SECONDLY;INTERVAL=7"),
            vevent("weekly", f":{start:%Y%m%d}T090000Z", "RRULE:FREQ=WEEKLY;COUNT=3"),
            # found by the fault campaign: a rule that never advances, and time zones whose
            # rules never advance or repeat every minute (hung, or took gigabytes)
            vevent("stuck", f":{start:%Y%m%d}T090000Z", "RRULE:FREQ=WEEKLY;INTERVAL=0"),
            vevent(
                "custom-zone",
                f";TZID=/Europe/Custom:{start:%Y%m%d}T100000",
                "RRULE:FREQ=WEEKLY;COUNT=2",
            ),
            vevent("windows-zone", f";TZID=Eastern Standard Time:{start:%Y%m%d}T110000"),
            extra=STUCK_TZ,
        ),
    )
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        f'[me]\nname = "Me"\naddresses = ["{ME}"]\ntimezone = "UTC"\n'
        f'[store]\npath = "{tmp_path / "kw.db"}"\n'
    )

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))

    proc = subprocess.run(
        [
            str(Path(sys.executable).parent / "keepwarm"),
            "--config",
            str(cfg),
            "import",
            "ics",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=limit,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == (
        "6 imported, 3 skipped: 2 repeats more often than daily, 1 unparseable event"
    )


class IcsWorld:
    """The contract suite's handle on a folder of two .ics calendars (tests/contract.py World):
    events are added to, moved in and removed from the files (a file removed whole is a calendar
    that vanished, whose events stay as history)."""

    account = "cal"
    kind = "ics"

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir()
        self.events: dict[str, tuple[str, datetime, str]] = {}  # uid -> (file, start, title)
        self.n = 0

    def connector(self) -> IcsConnector:
        return connector(self.root, batch_size=3)

    def _save(self) -> None:
        for name in ("work.ics", "team.ics"):
            events = [
                vevent(uid, f":{start:%Y%m%dT%H%M%SZ}", f"SUMMARY:{title}")
                for uid, (file, start, title) in self.events.items()
                if file == name
            ]
            (self.root / name).write_text(calendar(*events))

    def add_messages(self, n: int) -> None:
        for _ in range(n):
            file = "work.ics" if self.n % 2 else "team.ics"
            self.events[f"ev{self.n}@example.com"] = (
                file,
                NOW - timedelta(days=1, hours=self.n),
                "Planning",
            )
            self.n += 1
        self._save()

    def delete_one(self) -> str:
        uid = next(iter(self.events))
        del self.events[uid]
        self._save()
        return uid

    def change_one(self) -> tuple[str, datetime]:
        uid = list(self.events)[-1]
        start = NOW - timedelta(days=30)
        self.events[uid] = (self.events[uid][0], start, "Moved")
        self._save()
        return uid, start

    def expected_ids(self) -> set[str]:
        return set(self.events)


class TestIcsContract(ConnectorContract):
    records = "events"
    has_auth = False
    has_cursor_expiry = False
    has_transient_errors = False

    @pytest.fixture
    def world(self, tmp_path: Path) -> IcsWorld:
        return IcsWorld(tmp_path / "calendar")
