"""Benchmark: CalDAV and CardDAV sync against a private Radicale on loopback (TLS).

Fills three calendars with N meetings (a tenth of them weekly series) and an address book with
M contacts over HTTP, as a calendar app would, then measures through run_account into an
on-disk store:

- the first sync: events per second, and requests;
- an incremental sync with no change: requests (the target is at most one per calendar;
  keepwarm needs one for the whole account);
- an incremental sync after 1% of the events changed: requests and seconds;
- the same for the address book.

Run: .venv/bin/python bench/caldav_sync.py [--events 3000] [--contacts 1000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from davworld import meeting, settings  # noqa: E402
from fakes.radicale import Radicale  # noqa: E402

from keepwarm.connectors.dav.calendar import CalDavConnector, CalDavSettings  # noqa: E402
from keepwarm.connectors.dav.contacts import CardDavConnector  # noqa: E402
from keepwarm.daemon.store import Store  # noqa: E402
from keepwarm.daemon.sync import run_account  # noqa: E402

CALENDARS = ("work", "team", "family")
USER = "bench"


def card(i: int) -> str:
    return (
        f"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:c{i}\r\nFN:Person {i}\r\n"
        f"EMAIL:p{i}@example.org\r\nEMAIL:person{i}@home.example\r\nBDAY:--04-{i % 28 + 1:02d}\r\n"
        f"ORG:Org {i % 50}\r\nEND:VCARD\r\n"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=3000)
    ap.add_argument("--contacts", type=int, default=1000)
    args = ap.parse_args()
    now = datetime.now(UTC).replace(microsecond=0)
    root = Path(tempfile.mkdtemp(prefix="keepwarm-bench-radicale-"))
    server = Radicale(root, tls=True)
    server.add_user(USER, "bench-password")
    server.start()
    try:
        t = time.perf_counter()
        for cal in CALENDARS:
            server.make_calendar(USER, cal, cal.title())
        server.make_addressbook(USER, "contacts", "Contacts")
        for i in range(args.events):
            extra = ("RRULE:FREQ=WEEKLY;COUNT=20",) if i % 10 == 0 else ()
            start = now - timedelta(hours=7 * i % (24 * 700), minutes=i % 60)
            server.put(
                USER,
                CALENDARS[i % 3],
                f"e{i}.ics",
                meeting(f"e{i}", start, people=(f"p{i % 300}@example.org",), extra=extra),
            )
        for i in range(args.contacts):
            server.put(USER, "contacts", f"c{i}.vcf", card(i))
        print(f"filled Radicale over HTTP in {time.perf_counter() - t:.1f} s")

        store = Store.open(root / "kw.db")
        opts = CalDavSettings(zone="Europe/Berlin", me=("me@example.com",))

        def cal() -> CalDavConnector:
            return CalDavConnector("cal", settings(server, USER), opts)

        def cards() -> CardDavConnector:
            return CardDavConnector("cards", settings(server, USER))

        c = cal()
        t = time.perf_counter()
        out = run_account(store, c)
        dt = time.perf_counter() - t
        n = store.counts()["events"]
        print(
            f"caldav first sync: {args.events} resources, {n} events in {dt:.1f} s = "
            f"{n / dt:,.0f} events/s, {c.session.requests} requests ({out.state})"
        )
        c = cal()
        t = time.perf_counter()
        run_account(store, c)
        print(
            f"caldav incremental, no change: {c.session.requests} request(s) for "
            f"{len(CALENDARS)} calendars in {(time.perf_counter() - t) * 1000:.0f} ms"
        )
        changed = max(1, args.events // 100)
        for i in range(changed):
            server.put(
                USER,
                CALENDARS[i % 3],
                f"e{i}.ics",
                meeting(f"e{i}", now - timedelta(days=1), title="Moved"),
            )
        c = cal()
        t = time.perf_counter()
        run_account(store, c)
        print(
            f"caldav incremental, {changed} changed: {c.session.requests} requests in "
            f"{time.perf_counter() - t:.2f} s"
        )

        k = cards()
        t = time.perf_counter()
        run_account(store, k)
        dt = time.perf_counter() - t
        m = store.counts()["contacts"]
        print(
            f"carddav first sync: {m} contacts in {dt:.1f} s = {m / dt:,.0f} contacts/s, "
            f"{k.session.requests} requests"
        )
        k = cards()
        run_account(store, k)
        print(f"carddav incremental, no change: {k.session.requests} request(s)")
        store.close()
    finally:
        server.stop()


if __name__ == "__main__":
    main()
