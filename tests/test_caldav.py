"""The CalDAV connector against a real Radicale on loopback (TLS), through the caldav library."""

from __future__ import annotations

import json
import textwrap
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner
from contract import ConnectorContract, stored_event_uids
from davworld import ME, NOW, caldav, meeting, needs_radicale, radicale, user
from fakes.radicale import Radicale
from leakcheck import close_after_test

from keepwarm.connectors.base import Batch
from keepwarm.connectors.dav.calendar import CalDavConnector
from keepwarm.connectors.dav.session import DavSession, NoSyncReport
from keepwarm.daemon.cli import cli
from keepwarm.daemon.config import ConfigError, loads
from keepwarm.daemon.store import Store
from keepwarm.daemon.sync import run_account

pytestmark = needs_radicale
__all__ = ["radicale", "user"]  # fixtures


def uids(store: Store) -> list[str]:
    return stored_event_uids(store, "dav")


def titles(store: Store) -> dict[str, str]:
    return dict(store.conn.execute("SELECT ical_uid, title FROM events").fetchall())


def test_initial_sync_reads_every_calendar_and_a_chosen_one(radicale: Radicale, user: str) -> None:
    radicale.make_calendar(user, "work", "Work")
    radicale.make_calendar(user, "home", "Family")
    radicale.put(user, "work", "a.ics", meeting("a", NOW - timedelta(days=3), title="Budget"))
    radicale.put(user, "home", "b.ics", meeting("b", NOW + timedelta(days=2)))
    radicale.put(user, "work", "old.ics", meeting("old", NOW - timedelta(days=900)))  # outside
    store = close_after_test(Store.memory())
    out = run_account(store, caldav(radicale, user))
    assert out.state == "ok", out.error
    assert uids(store) == ["a", "b"]
    assert titles(store)["a"] == "Budget"
    people = {
        r[0]
        for r in store.conn.execute(
            "SELECT a.email FROM event_attendees ea JOIN addresses a ON a.id = ea.address"
        )
    }
    assert people == {"me@example.com", "ann@example.org"}
    only = close_after_test(Store.memory())
    assert run_account(only, caldav(radicale, user, collections=("Family",))).state == "ok"
    assert uids(only) == ["b"]


def test_added_changed_and_deleted_events_and_one_request_when_nothing_changed(
    radicale: Radicale, user: str
) -> None:
    radicale.make_calendar(user, "work", "Work")
    radicale.make_calendar(user, "home", "Home")
    radicale.put(user, "work", "a.ics", meeting("a", NOW - timedelta(days=3)))
    radicale.put(user, "work", "b.ics", meeting("b", NOW - timedelta(days=2)))
    store = close_after_test(Store.memory())
    assert run_account(store, caldav(radicale, user)).state == "ok"
    idle = caldav(radicale, user)
    out = run_account(store, idle)
    assert (out.added, out.deleted, idle.session.requests) == (0, 0, 1)
    radicale.put(user, "work", "c.ics", meeting("c", NOW - timedelta(days=1)))
    radicale.put(user, "work", "a.ics", meeting("a", NOW - timedelta(days=3), title="Moved"))
    radicale.delete(user, "work", "b.ics")
    conn = caldav(radicale, user)
    out = run_account(store, conn)
    assert out.state == "ok", out.error
    assert uids(store) == ["a", "c"]
    assert titles(store)["a"] == "Moved"
    assert store.counts()["events"] == 2
    # the home listing, one sync-collection REPORT, one multiget for the changed calendar only
    assert conn.session.requests == 3


def test_a_recurring_series_with_an_exception_is_expanded_in_the_window(
    radicale: Radicale, user: str
) -> None:
    radicale.make_calendar(user, "work", "Work")
    first = NOW - timedelta(days=14)
    moved = first + timedelta(days=7)
    series = meeting("weekly", first, extra=("RRULE:FREQ=WEEKLY;COUNT=4",))
    exception = meeting(
        "weekly",
        moved + timedelta(hours=2),
        title="Weekly (moved)",
        extra=(f"RECURRENCE-ID:{moved.strftime('%Y%m%dT%H%M%SZ')}",),
    )
    both = (
        series.replace("END:VCALENDAR\r\n", "")
        + exception.split("PRODID:-//keepwarm tests//EN\r\n", 1)[1]
    )
    radicale.put(user, "work", "weekly.ics", both)
    store = close_after_test(Store.memory())
    assert run_account(store, caldav(radicale, user)).state == "ok"
    rows = store.conn.execute(
        "SELECT start, title, recurring FROM events ORDER BY start"
    ).fetchall()
    starts = [r[0] for r in rows]
    assert len(rows) == 4
    assert int((moved + timedelta(hours=2)).timestamp()) in starts
    assert int(moved.timestamp()) not in starts
    assert [r[1] for r in rows].count("Weekly (moved)") == 1
    assert all(r[2] == 1 for r in rows)


def test_a_server_without_the_sync_report_is_compared_by_etag(
    radicale: Radicale, user: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_report(self: DavSession, collection: str, token: str | None) -> object:
        self.requests += 1
        raise NoSyncReport()

    monkeypatch.setattr(DavSession, "changes", no_report)
    radicale.make_calendar(user, "work", "Work")
    radicale.put(user, "work", "a.ics", meeting("a", NOW - timedelta(days=3)))
    radicale.put(user, "work", "b.ics", meeting("b", NOW - timedelta(days=2)))
    store = close_after_test(Store.memory())
    assert run_account(store, caldav(radicale, user)).state == "ok"
    assert uids(store) == ["a", "b"]
    radicale.put(user, "work", "a.ics", meeting("a", NOW - timedelta(days=3), title="Moved"))
    radicale.delete(user, "work", "b.ics")
    radicale.put(user, "work", "c.ics", meeting("c", NOW - timedelta(days=1)))
    conn = caldav(radicale, user)
    assert run_account(store, conn).state == "ok"
    assert uids(store) == ["a", "c"] and titles(store)["a"] == "Moved"
    # the home listing, the ETag listing, one multiget: the report is not tried again
    assert conn.session.requests == 3
    idle = caldav(radicale, user)
    assert run_account(store, idle).added == 0 and idle.session.requests == 1


def test_a_series_more_frequent_than_daily_is_skipped(radicale: Radicale, user: str) -> None:
    radicale.make_calendar(user, "work", "Work")
    radicale.put(user, "work", "h.ics", meeting("h", NOW, extra=("RRULE:FREQ=HOURLY",)))
    store = close_after_test(Store.memory())
    out = run_account(store, caldav(radicale, user))
    assert out.state == "ok" and uids(store) == []
    assert out.skipped == {"repeats more often than daily": 1}


def test_a_token_invalidated_by_the_server_means_a_full_read_of_that_calendar(
    radicale: Radicale, user: str
) -> None:
    radicale.make_calendar(user, "work", "Work")
    for i in range(4):
        radicale.put(user, "work", f"e{i}.ics", meeting(f"e{i}", NOW - timedelta(days=i + 1)))
    store = close_after_test(Store.memory())
    assert run_account(store, caldav(radicale, user)).state == "ok"
    radicale.delete(user, "work", "e1.ics")
    radicale.put(user, "work", "e9.ics", meeting("e9", NOW - timedelta(hours=5)))
    radicale.forget_sync_tokens(user, "work")
    out = run_account(store, caldav(radicale, user))
    assert out.state == "ok", out.error
    assert uids(store) == ["e0", "e2", "e3", "e9"]
    assert store.counts()["event_sources"] == 4  # nothing duplicated
    again = caldav(radicale, user)
    assert run_account(store, again).added == 0 and again.session.requests == 1


def test_a_server_down_mid_sync_backs_off_and_the_next_sync_loses_nothing(
    radicale: Radicale, user: str
) -> None:
    radicale.make_calendar(user, "a", "A")
    radicale.make_calendar(user, "b", "B")
    for i in range(6):
        radicale.put(
            user, "a" if i % 2 else "b", f"e{i}.ics", meeting(f"e{i}", NOW - timedelta(days=i + 1))
        )
    store = close_after_test(Store.memory())

    def stop_after_first(_account: str, _progress: object, _batch: Batch) -> None:
        radicale.stop()

    try:
        out = run_account(store, caldav(radicale, user, batch_size=2), on_batch=stop_after_first)
        assert out.state == "backoff"
        assert (
            out.error
            and "cannot reach the CALDAV server 127.0.0.1: connection refused" in out.error
        )
        assert 0 < len(uids(store)) < 6
    finally:
        radicale.start()
    out = run_account(store, caldav(radicale, user, batch_size=2))
    assert out.state == "ok", out.error
    assert uids(store) == [f"e{i}" for i in range(6)]


def test_wrong_password_parks_the_account_with_a_fix(radicale: Radicale, user: str) -> None:
    radicale.make_calendar(user, "work", "Work")
    store = close_after_test(Store.memory())
    out = run_account(store, caldav(radicale, user, password="wrong"))
    assert out.state == "auth_required"
    assert out.error == "the CALDAV server 127.0.0.1 refused the user name or password"
    assert out.fix and "app password" in out.fix


def test_an_untrusted_certificate_is_a_clear_error(radicale: Radicale, user: str) -> None:
    out = run_account(close_after_test(Store.memory()), caldav(radicale, user, ca=False))
    assert out.state == "failing"
    assert out.error == (
        "cannot make a secure connection to the CALDAV server 127.0.0.1: "
        "its certificate is not trusted"
    )
    assert out.fix and "ca_file" in out.fix


def test_an_unknown_calendar_name_lists_the_calendars_there(radicale: Radicale, user: str) -> None:
    radicale.make_calendar(user, "work", "Work")
    out = run_account(
        close_after_test(Store.memory()), caldav(radicale, user, collections=("Wrok",))
    )
    assert out.state == "failing"
    assert out.error == "calendar 'Wrok' not found on 127.0.0.1; the account has: \"Work\""


def test_a_url_that_is_no_dav_server_says_so(radicale: Radicale, user: str) -> None:
    class Plain(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # a web site, not a DAV server
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"<html>hello</html>")

        do_PROPFIND = do_GET

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Plain)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        out = run_account(close_after_test(Store.memory()), caldav(radicale, user, url=url))
    finally:
        server.shutdown()
        server.server_close()
    assert out.state == "failing"
    assert out.error == f"no CALDAV calendars found at {url}"
    assert out.fix and "docs/dav.md" in out.fix


def test_discovery_through_the_well_known_address(radicale: Radicale, user: str) -> None:
    radicale.make_calendar(user, "work", "Work")
    radicale.put(user, "work", "a.ics", meeting("a", NOW - timedelta(days=1)))
    store = close_after_test(Store.memory())
    out = run_account(store, caldav(radicale, user, url=radicale.base_url + "nothing/here/"))
    assert out.state == "ok", out.error
    assert uids(store) == ["a"]


def test_the_next_day_brings_the_next_occurrence_into_the_window(
    radicale: Radicale, user: str
) -> None:
    radicale.make_calendar(user, "work", "Work")
    radicale.put(
        user, "work", "s.ics", meeting("s", NOW - timedelta(days=1), extra=("RRULE:FREQ=WEEKLY",))
    )
    radicale.put(user, "work", "f.ics", meeting("f", NOW + timedelta(days=20)))
    store = close_after_test(Store.memory())
    assert run_account(store, caldav(radicale, user)).state == "ok"
    assert store.counts()["events"] == 3  # yesterday's, and two in the next two weeks
    later = caldav(radicale, user, now=NOW + timedelta(days=7))
    assert run_account(store, later).state == "ok"
    assert store.counts()["events"] == 5  # one more of the series, and f
    assert "f" in uids(store)


def test_a_calendar_removed_on_the_server_stays_in_the_history_with_a_notice(
    radicale: Radicale, user: str
) -> None:
    radicale.make_calendar(user, "work", "Work")
    radicale.put(user, "work", "p.ics", meeting("past", NOW - timedelta(days=2)))
    radicale.put(user, "work", "f.ics", meeting("future", NOW + timedelta(days=2)))
    store = close_after_test(Store.memory())
    assert run_account(store, caldav(radicale, user)).state == "ok"
    radicale.delete_collection(user, "work")
    out = run_account(store, caldav(radicale, user))
    assert out.state == "ok"
    assert uids(store) == []  # no longer read through the account ...
    assert store.counts()["events"] == 2  # ... and kept in the history
    assert [n.text for n in store.notices("dav")] == [
        'calendar "Work" is gone from 127.0.0.1; its 2 events stay in your history'
    ]


class CalDavWorld:
    """The contract suite's handle on Radicale (tests/contract.py World), over events."""

    account = "dav"
    kind = "caldav"

    def __init__(self, server: Radicale, user: str) -> None:
        self.server = server
        self.user = user
        self.password = server.users[user]
        self.n = 0
        self.present: list[str] = []
        server.make_calendar(user, "work", "Work")
        server.make_calendar(user, "team", "Team")

    def connector(self) -> CalDavConnector:
        return caldav(self.server, self.user, batch_size=3, password=self.password)

    def add_messages(self, n: int) -> None:
        for _ in range(n):
            uid = f"ev{self.n}"
            cal = "work" if self.n % 2 else "team"
            self.server.put(
                self.user, cal, f"{uid}.ics", meeting(uid, NOW - timedelta(hours=self.n + 1))
            )
            self.present.append(uid)
            self.n += 1

    def delete_one(self) -> str:
        uid = self.present.pop(0)
        cal = "work" if int(uid[2:]) % 2 else "team"
        self.server.delete(self.user, cal, f"{uid}.ics")
        return uid

    def expected_ids(self) -> set[str]:
        return set(self.present)

    def change_one(self) -> tuple[str, datetime]:
        uid = self.present[-1]
        cal = "work" if int(uid[2:]) % 2 else "team"
        start = NOW - timedelta(days=2, hours=int(uid[2:]))
        self.server.put(self.user, cal, f"{uid}.ics", meeting(uid, start, title="Moved"))
        return uid, start

    def expire_cursor(self) -> None:
        self.server.forget_sync_tokens(self.user, "work")
        self.server.forget_sync_tokens(self.user, "team")

    def break_auth(self) -> None:
        self.server.add_user(self.user, "changed")

    def fail_transiently(self) -> None:
        self.server.stop()

    def heal(self) -> None:
        self.server.add_user(self.user, self.password)
        if self.server.proc is None:
            self.server.start()


class TestCalDavContract(ConnectorContract):
    records = "events"

    @pytest.fixture
    def world(self, radicale: Radicale, user: str) -> Iterator[CalDavWorld]:
        w = CalDavWorld(radicale, user)
        yield w
        w.heal()


def _config(tmp_path: Path, radicale: Radicale, user: str, extra: str = "") -> Path:
    pw = tmp_path / "dav-password"
    pw.write_text(radicale.users[user] + "\n")
    pw.chmod(0o600)
    path = tmp_path / "config.toml"
    path.write_text(
        textwrap.dedent(
            f"""\
            [me]
            name = "Me"
            addresses = ["{ME}"]
            timezone = "Europe/Berlin"
            [store]
            path = "{tmp_path / "kw.db"}"
            [[accounts]]
            name = "fastmail-cal"
            kind = "caldav"
            url = "{radicale.base_url}"
            username = "{user}"
            password_file = "{pw}"
            ca_file = "{radicale.ca_file}"
            """
        )
        + extra
    )
    path.chmod(0o600)
    return path


def test_sync_status_and_doctor_from_the_config(
    tmp_path: Path, radicale: Radicale, user: str
) -> None:
    radicale.make_calendar(user, "work", "Work")
    radicale.make_calendar(user, "home", "Home")
    recent = datetime.now(UTC) - timedelta(days=2)
    radicale.put(user, "work", "a.ics", meeting("a", recent))
    cfg = _config(tmp_path, radicale, user)
    runner = CliRunner()
    res = runner.invoke(cli, ["--config", str(cfg), "sync"])
    assert res.exit_code == 0, res.output
    status = runner.invoke(cli, ["--config", str(cfg), "status", "--json"])
    data = json.loads(status.output)
    assert data["events"] == 1
    acct = next(a for a in data["accounts"] if a["name"] == "fastmail-cal")
    assert acct["kind"] == "caldav" and acct["state"] == "ok"
    doctor = runner.invoke(cli, ["--config", str(cfg), "doctor", "--json"])
    checks = {c["name"]: c for c in json.loads(doctor.output)["checks"]}
    src = checks["login to fastmail-cal"]
    assert src["ok"] and src["detail"] == f"logged in as {user}; 2 calendars: Home, Work"


def test_doctor_names_a_refused_password(tmp_path: Path, radicale: Radicale, user: str) -> None:
    cfg = _config(tmp_path, radicale, user)
    (tmp_path / "dav-password").write_text("wrong\n")
    doctor = CliRunner().invoke(cli, ["--config", str(cfg), "doctor", "--json"])
    checks = {c["name"]: c for c in json.loads(doctor.output)["checks"]}
    src = checks["login to fastmail-cal"]
    assert not src["ok"]
    assert src["detail"] == "the CALDAV server 127.0.0.1 refused the user name or password"


def test_config_refuses_plain_http_to_another_host_and_a_missing_password() -> None:
    with pytest.raises(ConfigError) as err:
        loads(
            textwrap.dedent(
                """\
                [me]
                name = "Me"
                addresses = ["me@example.com"]
                timezone = "UTC"
                [[accounts]]
                name = "cal"
                kind = "caldav"
                url = "http://dav.example.com/"
                username = "me"
                """
            )
        )
    assert err.value.problems == [
        'accounts[1] ("cal").url: expected an https:// address (http:// would send your '
        "password in clear text; it is allowed only towards a loopback address), found "
        "'http://dav.example.com/'",
        'accounts[1] ("cal"): set password_file, password_env or password_command '
        "(passwords never go in this file)",
    ]
