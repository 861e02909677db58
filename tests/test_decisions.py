"""Decisions from the command line, through the real engine and digest: done, not now, not
useful, not a person, same person, notes; listed, undone, and kept across a re-import."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from keepwarm.connectors.base import Address, Attendee, Batch, EventMeta, MessageMeta
from keepwarm.daemon.cli import cli
from keepwarm.daemon.store import Store

ME = "me@example.com"
BOB, BOB2, CAROL, DAN = "bob@acme.com", "bstone@newco.io", "carol@beta.org", "dan@gamma.net"
NAMES = {BOB: "Bob Stone", BOB2: "Bob Stone", CAROL: "Carol Ng", DAN: "Dan Ruiz", ME: "Jane"}
NOW = datetime.now(UTC).replace(microsecond=0)
# A zone where it is about noon now: "today" has room for a meeting this afternoon.
_OFFSET = 12 - NOW.hour
ZONE = f"Etc/GMT{'-' if _OFFSET >= 0 else '+'}{abs(_OFFSET)}"


class Mails:
    def __init__(self) -> None:
        self.items: list[MessageMeta] = []

    def add(self, sender: str, to: str, days_ago: float, subject: str) -> None:
        n = len(self.items)
        self.items.append(
            MessageMeta(
                account="a",
                provider_id=f"p{n}",
                date=NOW - timedelta(days=days_ago),
                sender=Address(sender, NAMES.get(sender, "")),
                to=(Address(to, NAMES.get(to, "")),),
                message_id=f"m{n}@x",
                subject=subject,
            )
        )

    def exchange(self, who: str, days_ago: float, subject: str) -> None:
        self.add(ME, who, days_ago, subject)
        self.add(who, ME, days_ago - 0.05, "Re: " + subject)


def history() -> Batch:
    m = Mails()
    for d in range(35 + 7 * 15, 34, -7):  # Bob: weekly for months, silent for 35 days
        m.exchange(BOB, d, f"weekly {d}")
    m.add(BOB2, ME, 200, "from my new address")
    m.add(ME, BOB2, 199, "Re: from my new address")
    m.exchange(CAROL, 40, "project")
    m.add(CAROL, ME, 3, "a question")  # a reply owed
    for i in range(6):
        m.exchange(DAN, 5 + 6 * i, f"idea {i}")
    start = (NOW + timedelta(hours=3)).replace(minute=0, second=0)  # about 15:00 local
    meeting = EventMeta(
        account="a",
        provider_id="ev1",
        start=start,
        end=start + timedelta(hours=1),
        organizer=Address(ME),
        attendees=(
            Attendee(ME, response="accepted", organizer=True, is_self=True),
            Attendee(CAROL, response="accepted"),
        ),
        my_response="accepted",
        title="Roadmap",
    )
    return Batch(messages=m.items, events=[meeting])


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    store = Store.open(tmp_path / "kw.db")
    store.apply_batch("a", "maildir", history())
    store.close()
    path = tmp_path / "config.toml"
    path.write_text(
        f'[me]\nname = "Jane"\naddresses = ["{ME}"]\ntimezone = "{ZONE}"\n'
        f'[store]\npath = "{tmp_path / "kw.db"}"\n[delivery]\noutbox = "{tmp_path / "out"}"\n'
        "[digest]\nmax_items = 10\n"
        # two people who happen to share a display name (else one person at two addresses)
        f'[people]\ndistinct = [["{BOB}", "{BOB2}"]]\n'
    )
    return path


def run(cfg: Path, *args: str, code: int = 0) -> str:
    res = CliRunner().invoke(cli, ["--config", str(cfg), *args], catch_exceptions=False)
    assert res.exit_code == code, res.output
    return res.output


def suggestions(cfg: Path) -> list[dict[str, Any]]:
    return list(json.loads(run(cfg, "digest", "--json"))["suggestions"])


def kinds_for(cfg: Path, key: str) -> set[str]:
    return {s["kind"] for s in suggestions(cfg) if s["person"]["key"] == key}


def people(cfg: Path) -> dict[str, dict[str, Any]]:
    return {r["key"]: r for r in json.loads(run(cfg, "people", "--json"))}


def test_done_is_a_touch_and_answers_the_suggestion(cfg: Path) -> None:
    assert "reply_owed" in kinds_for(cfg, CAROL)
    assert people(cfg)[BOB]["stage"] == "fading" and "fading" in kinds_for(cfg, BOB)
    out = run(cfg, "done", "Carol Ng", "--kind", "reply_owed")
    assert "done: reply to Carol, today (#1)" in out and "keepwarm done --undo 1" in out
    assert "reply_owed" not in kinds_for(cfg, CAROL)
    run(cfg, "done", BOB)  # the kind the digest last showed, or any
    bob = people(cfg)[BOB]
    assert bob["days_since_contact"] == 0 and bob["stage"] != "fading"
    assert "fading" not in kinds_for(cfg, BOB)
    # a done is not a meeting: nothing to prepare today, nothing to follow up tomorrow
    assert not [s for s in suggestions(cfg) if (s["facts"].get("event_id") or 0) < 0]
    text = run(cfg, "digest")
    assert "YOUR DECISIONS SINCE THE LAST DIGEST" in text
    assert "done: reply to Carol, today (#1)" in text
    # undone, the suggestion is back
    assert "undone: done: reply to Carol" in run(cfg, "done", "--undo", "1")
    assert "reply_owed" in kinds_for(cfg, CAROL)


def test_snooze_dismiss_and_their_lists(cfg: Path) -> None:
    assert "matches several people" in run(cfg, "snooze", "Bob Stone", "1w", code=2)
    run(cfg, "snooze", BOB, "1w")
    assert not kinds_for(cfg, BOB)
    listed = json.loads(run(cfg, "snooze", "--list", "--json"))
    assert [d["verb"] for d in listed] == ["snooze"] and listed[0]["person"] == BOB
    run(cfg, "snooze", "--undo", str(listed[0]["id"]))
    assert "fading" in kinds_for(cfg, BOB)
    out = run(cfg, "dismiss", BOB, "reconnect")
    assert "not useful: reconnect for Bob Stone" in out
    assert "fading" not in kinds_for(cfg, BOB)
    bad = run(cfg, "dismiss", BOB, "nonsense", code=2)
    assert "unknown kind 'nonsense'" in bad and "reply_owed" in bad
    wrong = run(cfg, "done", "--undo", "2", code=2)
    assert "is a dismiss, not a done" in wrong


def test_ignore_and_merge_change_who_is_a_person(cfg: Path) -> None:
    before = people(cfg)
    assert DAN in before and BOB2 in before
    run(cfg, "ignore", DAN)
    after = people(cfg)
    assert DAN not in after
    everyone = json.loads(run(cfg, "people", "--all", "--json"))
    assert [r["kind"] for r in everyone if r["key"] == DAN] == ["excluded"]
    run(cfg, "merge", BOB, BOB2)
    merged = people(cfg)
    assert BOB2 not in merged and set(merged[BOB]["addresses"]) == {BOB, BOB2}
    assert "already one person" in run(cfg, "merge", BOB, BOB2, code=2)
    listed = run(cfg, "decisions")
    assert "#1  not a person: dan@gamma.net" in listed and "same person: Bob Stone" in listed
    run(cfg, "decisions", "--undo", "1")
    assert DAN in people(cfg)
    assert "[undone]" in run(cfg, "decisions", "--all")
    assert "me@example.com is one of your own" in run(cfg, "ignore", ME, code=2)


def test_notes_show_in_person_and_meeting_preparation(cfg: Path) -> None:
    run(cfg, "note", "Carol", "training for the Berlin marathon")
    text = run(cfg, "person", CAROL)
    assert "your notes:" in text and "training for the Berlin marathon (#1)" in text
    data = json.loads(run(cfg, "person", CAROL, "--json"))
    assert data["notes"][0]["text"] == "training for the Berlin marathon"
    # her reply owed is today's item, with the meeting folded in: the note comes along
    [item] = [s for s in suggestions(cfg) if s["person"]["key"] == CAROL]
    assert any(r.startswith("also: you meet today") for r in item["reasons"]), item
    assert "your note: training for the Berlin marathon" in item["reasons"]


def test_unknown_people_are_errors(cfg: Path) -> None:
    assert "is not in your mail or calendar" in run(cfg, "done", "zed@nowhere.org", code=2)
    assert 'nobody named "Zed"' in run(cfg, "snooze", "Zed", code=2)
    assert "matches several people" in run(cfg, "merge", "Bob", CAROL, code=2)
    assert "give a PERSON" in run(cfg, "note", code=2)
    assert "no decisions yet" in run(cfg, "decisions")


def test_decisions_survive_forgetting_and_reimporting_the_account(cfg: Path) -> None:
    run(cfg, "ignore", DAN)
    run(cfg, "merge", BOB, BOB2)
    run(cfg, "done", CAROL, "--kind", "reply_owed")
    store = Store.open(cfg.parent / "kw.db")
    store.forget_account("a")
    assert store.counts()["messages"] == 0
    store.apply_batch("a", "maildir", history())
    store.close()
    after = people(cfg)
    assert DAN not in after and set(after[BOB]["addresses"]) == {BOB, BOB2}
    assert "reply_owed" not in kinds_for(cfg, CAROL)
    assert len(json.loads(run(cfg, "decisions", "--json"))) == 3


def test_old_snoozes_move_into_decisions(tmp_path: Path) -> None:
    """A database from before decisions keeps its snoozes."""
    from sqlite_utils import Database

    from keepwarm.daemon.store.migrations import migrations

    db = Database(tmp_path / "old.db")
    migrations.apply(db, stop_before="0002_decisions")
    db.execute("INSERT INTO snoozes VALUES ('tom@example.com', 4102444800, 1700000000)")
    db.conn.commit()
    db.close()
    store = Store.open(tmp_path / "old.db")
    row = store.conn.execute("SELECT verb, person, until, state FROM decisions").fetchone()
    assert tuple(row) == ("snooze", "tom@example.com", 4102444800, "active")
    assert "snoozes" not in store.db.table_names()
    store.close()


def test_a_done_answers_the_reply_owed_on_every_screen(cfg: Path) -> None:
    """`people --owed`, `people --json` and `person --why` agree with the digest: the reply a
    `done` answered is no longer owed, and today's meeting with her no longer says it is."""
    assert CAROL in people(cfg) and people(cfg)[CAROL]["replies_owed_by_me"] == 1
    assert "carol@beta.org" in run(cfg, "people", "--owed", "--plain")
    assert "you owe them 1 reply" in run(cfg, "person", CAROL, "--why")
    run(cfg, "done", "Carol Ng", "--kind", "reply_owed")
    assert people(cfg)[CAROL]["replies_owed_by_me"] == 0
    assert "carol@beta.org" not in run(cfg, "people", "--owed", "--plain")
    why = json.loads(run(cfg, "person", CAROL, "--why", "--json"))
    assert why["replies_owed_by_me"] == 0
    assert "reply_owed" not in {s["kind"] for s in why["signals"]}
    assert "you owe them" not in run(cfg, "person", CAROL, "--why")
    meeting = [s for s in suggestions(cfg) if s["person"]["key"] == CAROL]
    assert [s["kind"] for s in meeting] == ["meeting_today"]
    assert meeting[0]["facts"]["replies_owed_by_me"] == 0
