"""The real corpora in ../shared/data import with zero crashes and no corruption."""

from __future__ import annotations

from pathlib import Path

import pytest
from leakcheck import close_after_test

from keepwarm.connectors.base import Connector
from keepwarm.connectors.local.maildir import MaildirConnector
from keepwarm.daemon.store import Store
from keepwarm.daemon.sync import SyncOutcome, run_account

pytestmark = pytest.mark.corpus


def files_under(root: Path) -> int:
    return sum(1 for p in root.rglob("*") if p.is_file())


def import_twice(
    tmp_path: Path, make: type[Connector] | object, *args: object
) -> tuple[SyncOutcome, Store]:
    store = close_after_test(Store.open(tmp_path / "kw.db"))
    first = run_account(store, make(*args))  # type: ignore[operator]
    assert first.state == "ok", first.error
    counts = store.counts()
    second = run_account(store, make(*args))  # type: ignore[operator]
    assert second.state == "ok" and (second.added, second.merged, second.deleted) == (0, 0, 0)
    assert store.counts() == counts
    store.clear_cursor("corpus")  # and from scratch: the store still adds nothing
    third = run_account(store, make(*args))  # type: ignore[operator]
    assert third.added == 0 and store.counts() == counts
    assert store.conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert store.conn.execute("PRAGMA foreign_key_check").fetchall() == []
    return first, store


@pytest.mark.parametrize(
    ("corpus", "max_bad"),
    [
        ("enron-maildir-sample", 0.01),
        ("spamassassin-ham", 0.01),
        # damaged PST export: most messages only name Exchange X.500 mailboxes (no address)
        ("enron-pst-eml-messy", 1.0),
    ],
)
def test_mail_corpus_imports_every_file(
    shared_data: Path, tmp_path: Path, corpus: str, max_bad: float
) -> None:
    root = shared_data / corpus
    outcome, store = import_twice(tmp_path, MaildirConnector, "corpus", root)
    total = files_under(root)
    accounted = outcome.added + outcome.merged + sum(outcome.skipped.values())
    assert accounted == total, outcome.skipped
    assert store.counts()["message_sources"] == outcome.added + outcome.merged
    # the skip reasons are the expected kinds only, and few
    assert set(outcome.skipped) <= {
        "unparseable date",
        "no addresses",
        "invalid address",
        "no headers",
        "in trash or spam folder",
    }
    assert (
        sum(n for r, n in outcome.skipped.items() if r != "in trash or spam folder")
        <= total * max_bad
    )


def test_spamassassin_as_one_mbox_splits_into_every_message(
    shared_data: Path, tmp_path: Path
) -> None:
    from keepwarm.connectors.local.mbox import MboxConnector

    files = sorted((shared_data / "spamassassin-ham").rglob("*"))
    files = [f for f in files if f.is_file()]
    path = tmp_path / "ham.mbox"
    with open(path, "wb") as out:
        for f in files:
            data = f.read_bytes()
            if not data.startswith(b"From "):
                data = b"From corpus@example.com Thu Aug 22 12:36:23 2002\n" + data
            out.write(data.rstrip(b"\n") + b"\n\n")
    outcome, _store = import_twice(tmp_path, MboxConnector, "corpus", path)
    assert outcome.added + outcome.merged + sum(outcome.skipped.values()) == len(files)


def test_every_ics_file_parses_without_crashing(shared_data: Path, tmp_path: Path) -> None:
    import csv
    from datetime import UTC, datetime, timedelta

    from keepwarm.connectors.ical import parse_calendars
    from keepwarm.connectors.local.ics import IcsConnector

    root = shared_data / "ics"
    with (root / "MANIFEST.csv").open(encoding="utf-8") as fh:
        manifest = list(csv.DictReader(fh))
    assert len(manifest) > 500
    # for the likely-real calendars that parse as a whole, no VEVENT is lost on the way
    mismatched = []
    for row in (r for r in manifest if r["likely_real"] == "True"):
        cals = parse_calendars((root / row["local_path"]).read_bytes())
        if cals is not None:
            n = sum(len(list(c.walk("VEVENT"))) for c in cals)
            if n != int(row["vevent"]):
                mismatched.append((row["local_path"], n, row["vevent"]))
    assert len(mismatched) <= len(manifest) * 0.02, mismatched[:10]
    # the whole folder through the connector and the store: no crash, nothing unexplained
    store = close_after_test(Store.open(tmp_path / "kw.db"))
    make = lambda: IcsConnector(  # noqa: E731
        "corpus",
        root,
        zone="Europe/Berlin",
        self_addresses=["me@example.com"],
        now=datetime(2020, 6, 1, tzinfo=UTC),
        window_past=timedelta(days=400),
    )
    outcome = run_account(store, make())
    assert outcome.state == "ok", outcome.error
    assert outcome.added > 100
    assert set(outcome.skipped) <= {
        "without attendees",
        "unparseable calendar",
        "unparseable event",
        "repeats more often than daily",  # a contrived test file: two RDATEs on one day
        "a past calendar: older than window_past before its last event",  # test-suite files
    }
    assert outcome.skipped.get("unparseable calendar", 0) < len(manifest) * 0.1
    assert run_account(store, make()).batches == 0  # unchanged files are not read again
    assert store.conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
