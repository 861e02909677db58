"""A published calendar (kind = "ics" with an https:// / webcal:// address) over HTTP on loopback:
conditional GETs with ETag / If-Modified-Since, changes, errors, and `keepwarm import ics URL`."""

from __future__ import annotations

import json
import textwrap
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from davworld import NOW, meeting
from leakcheck import close_after_test

from keepwarm.connectors.local.ics import IcsConnector, feed_url
from keepwarm.daemon.cli import cli
from keepwarm.daemon.config import ConfigError, loads
from keepwarm.daemon.store import Store
from keepwarm.daemon.sync import run_account


class Feed:
    def __init__(self) -> None:
        self.body = b""
        self.etag = '"v1"'
        self.status = 200
        self.requests: list[dict[str, str]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.requests.append(dict(self.headers.items()))
                if owner.status != 200:
                    self.send_response(owner.status)
                    self.end_headers()
                    return
                if self.headers.get("If-None-Match") == owner.etag:
                    self.send_response(304)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/calendar")
                self.send_header("ETag", owner.etag)
                self.send_header("Last-Modified", "Sun, 10 Mar 2024 10:00:00 GMT")
                self.send_header("Content-Length", str(len(owner.body)))
                self.end_headers()
                self.wfile.write(owner.body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/team.ics"

    def publish(self, *uids: str, etag: str) -> None:
        events = "".join(
            meeting(u, NOW - timedelta(days=i + 1))
            .split("PRODID:-//keepwarm tests//EN\r\n", 1)[1]
            .replace("END:VCALENDAR\r\n", "")
            for i, u in enumerate(uids)
        )
        self.body = (
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\n" + events + "END:VCALENDAR\r\n"
        ).encode()
        self.etag = etag


@pytest.fixture
def feed() -> Iterator[Feed]:
    f = Feed()
    yield f
    f.server.shutdown()
    f.server.server_close()


def uids(store: Store) -> list[str]:
    return sorted(r[0] for r in store.conn.execute("SELECT ical_uid FROM events"))


def connector(url: str, now: Any = NOW) -> IcsConnector:
    return IcsConnector(
        "feed", url, zone="Europe/Berlin", self_addresses=["me@example.com"], now=now
    )


def test_conditional_get_then_changes_then_a_new_day(feed: Feed) -> None:
    feed.publish("a", "b", etag='"v1"')
    store = close_after_test(Store.memory())
    assert run_account(store, connector(feed.url)).state == "ok"
    assert uids(store) == ["a", "b"]
    assert run_account(store, connector(feed.url)).added == 0
    assert feed.requests[-1]["If-None-Match"] == '"v1"'  # answered 304, nothing re-read
    assert feed.requests[-1]["If-Modified-Since"] == "Sun, 10 Mar 2024 10:00:00 GMT"
    feed.publish("a", "c", etag='"v2"')
    assert run_account(store, connector(feed.url)).state == "ok"
    assert uids(store) == ["a", "c"]
    run_account(store, connector(feed.url, now=NOW + timedelta(days=1)))
    assert "If-None-Match" not in feed.requests[-1]  # the window moved: read it whole


def test_a_calendar_no_longer_published_is_a_clear_error(feed: Feed) -> None:
    feed.status = 404
    out = run_account(close_after_test(Store.memory()), connector(feed.url))
    assert out.state == "failing"
    assert out.error == (
        "the published calendar at 127.0.0.1 answered 404: it is private, moved or no longer published"
    )
    feed.status = 503
    assert run_account(close_after_test(Store.memory()), connector(feed.url)).state == "backoff"


def test_addresses_and_the_config() -> None:
    assert feed_url("webcal://p01-calendars.icloud.com/published/2/x") == (
        "https://p01-calendars.icloud.com/published/2/x"
    )
    assert feed_url("~/Calendar/work.ics") is None
    base = '[me]\nname = "M"\naddresses = ["me@example.com"]\ntimezone = "UTC"\n'
    cfg = loads(
        base
        + '[[accounts]]\nname = "team"\nkind = "ics"\npath = "webcal://cal.example.com/t.ics"\n'
    )
    assert cfg.accounts[0].options.path == "webcal://cal.example.com/t.ics"
    with pytest.raises(ConfigError) as err:
        loads(
            base
            + '[[accounts]]\nname = "team"\nkind = "ics"\npath = "http://cal.example.com/t.ics"\n'
        )
    assert "http:// would show the calendar's secret address" in err.value.problems[0]


def test_keepwarm_import_ics_url(feed: Feed, tmp_path: Path) -> None:
    feed.publish("a", etag='"v1"')
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        textwrap.dedent(
            f"""\
            [me]
            name = "Me"
            addresses = ["me@example.com"]
            timezone = "Europe/Berlin"
            [store]
            path = "{tmp_path / "kw.db"}"
            """
        )
    )
    runner = CliRunner()
    res = runner.invoke(cli, ["--config", str(cfg), "import", "ics", feed.url, "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["path"] == feed.url and data["state"] == "ok"
    assert len(feed.requests) >= 1
