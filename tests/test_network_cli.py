"""The engine through the daemon: config conversion, build_report and the people/person commands."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from keepwarm.connectors.base import Address, Batch, MessageMeta
from keepwarm.daemon import config as cfgmod
from keepwarm.daemon.cli import cli
from keepwarm.daemon.network import build_report, engine_settings
from keepwarm.daemon.store import Store

ME = "me@example.com"
AS_OF = "2025-06-02"
NOW = datetime(2025, 6, 2, 12, 0, tzinfo=UTC)
BOB, CAROL, DAN = "bob@acme.com", "carol@beta.org", "dan@gamma.net"


class _Mails:
    def __init__(self) -> None:
        self.items: list[MessageMeta] = []

    def add(self, sender: str, to: str, days_ago: float, subject: str) -> None:
        n = len(self.items)
        self.items.append(
            MessageMeta(
                account="a",
                provider_id=f"p{n}",
                date=NOW - timedelta(days=days_ago),
                sender=Address(sender, "Bob Stone" if sender == BOB else ""),
                to=(Address(to),),
                message_id=f"m{n}@x",
                subject=subject,
            )
        )

    def exchange(self, who: str, days_ago: float, subject: str, me_first: bool = True) -> None:
        a, b = (ME, who) if me_first else (who, ME)
        self.add(a, b, days_ago, subject)
        self.add(b, a, days_ago - 0.05, "Re: " + subject)


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    m = _Mails()
    for d in range(35 + 7 * 15, 34, -7):
        m.exchange(BOB, d, f"weekly {d}")
    m.exchange(CAROL, 40, "project")
    m.add(CAROL, ME, 3, "a question")
    for i in range(6):
        m.exchange(DAN, 5 + 6 * i, f"idea {i}")
    store = Store.open(tmp_path / "kw.db")
    store.apply_batch("a", "maildir", Batch(messages=m.items))
    # something after --as-of that must not be seen
    late = MessageMeta(
        account="a",
        provider_id="late",
        date=NOW + timedelta(days=3),
        sender=Address(BOB),
        to=(Address(ME),),
        message_id="late@x",
        subject="back in touch",
    )
    store.apply_batch("a", "maildir", Batch(messages=[late]))
    store.close()
    path = tmp_path / "config.toml"
    path.write_text(
        f'[me]\nname = "Jane"\naddresses = ["{ME}"]\ntimezone = "Europe/Berlin"\n'
        f'[store]\npath = "{tmp_path / "kw.db"}"\n[engine]\nlopsided_min_threads = 5\n'
    )
    return path


def run(cfg: Path, *args: str) -> str:
    result = CliRunner().invoke(cli, ["--config", str(cfg), *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_engine_settings_from_config(cfg: Path) -> None:
    config = cfgmod.load(cfg)
    s = engine_settings(config)
    assert s.timezone == "Europe/Berlin" and s.lopsided_min_threads == 5
    assert [t.name for t in s.tiers] == ["inner", "close", "active", "wider"]
    assert s.half_life == timedelta(days=90)


def test_build_report_sees_only_history_up_to_now(cfg: Path) -> None:
    config = cfgmod.load(cfg)
    store = Store.open(config.store_path)
    report = build_report(config, store, NOW)
    bob = report.person(BOB)
    assert bob is not None and bob.stage == "fading" and bob.days_since_contact == 35
    later = build_report(config, store, NOW + timedelta(days=4))  # sees Bob's "back in touch"
    assert later.person(BOB).days_since_contact == 1  # type: ignore[union-attr]
    store.close()


def test_people_json_has_engine_fields_strongest_first(cfg: Path) -> None:
    rows = json.loads(run(cfg, "people", "--json", "--as-of", AS_OF))
    keys = [r["key"] for r in rows]
    assert set(keys) == {BOB, CAROL, DAN}
    strengths = [r["strength"] for r in rows]
    assert strengths == sorted(strengths, reverse=True)
    bob = rows[keys.index(BOB)]
    for field in (
        "tier",
        "strength",
        "stage",
        "typical_gap_days",
        "days_since_contact",
        "overdue_ratio",
        "initiated_by_me",
        "initiated_by_them",
        "replies_owed_by_me",
        "replies_owed_to_me",
        "balance",
    ):
        assert field in bob
    assert bob["stage"] == "fading" and bob["typical_gap_days"] == 7 and bob["tier"] == "inner"
    assert -1.0 <= bob["balance"] <= 1.0


def test_people_json_in_two_processes_is_the_same_text(
    cfg: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """people --json made in two halves (the second in a forked child) prints what one process
    prints; with --all as well."""
    import os

    from keepwarm.daemon import forked

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    forks: list[int] = []
    real_fork = os.fork

    def fork() -> int:
        pid = real_fork()
        if pid:
            forks.append(pid)
        return pid

    monkeypatch.setattr(os, "fork", fork)
    for flags in ((), ("--all",)):
        monkeypatch.setattr(forked, "MIN_ITEMS", 10**9)
        alone = run(cfg, "people", "--json", "--as-of", AS_OF, *flags)
        assert not forks
        monkeypatch.setattr(forked, "MIN_ITEMS", 2)
        assert run(cfg, "people", "--json", "--as-of", AS_OF, *flags) == alone
        assert len(forks) == 1
        forks.clear()
        assert len(json.loads(alone)) >= 3


def test_people_filters(cfg: Path) -> None:
    def keys(*flags: str) -> set[str]:
        return {
            r["key"] for r in json.loads(run(cfg, "people", "--json", "--as-of", AS_OF, *flags))
        }

    assert keys("--fading") == {BOB}
    assert keys("--owed") == {CAROL}
    assert keys("--lopsided") == {BOB, DAN}  # I started every thread with both
    assert keys("--tier", "inner") == {BOB, DAN}
    assert keys("--tier", "active") == {CAROL}  # two days of contact: no close tie yet
    text = run(cfg, "people", "--fading", "--as-of", AS_OF)
    assert "Bob Stone" in text and "fading: last contact 35 days ago" in text
    bad = CliRunner().invoke(cli, ["--config", str(cfg), "people", "--tier", "nope"])
    assert bad.exit_code == 2 and "inner" in bad.output


def test_person_why_prints_signals_and_facts(cfg: Path) -> None:
    text = run(cfg, "person", BOB, "--why", "--as-of", AS_OF)
    assert "tier inner, stage fading" in text and "suggestion: fading" in text
    assert "- you usually talk every week" in text
    assert (
        "last conversation 35 days ago; you usually talk every 7 days, so that is 5.0 times" in text
    )
    # plain words only: the raw figures are in --json
    assert "urgency" not in text and "overdue_ratio" not in text and "facts:" not in text
    data = json.loads(run(cfg, "person", CAROL, "--why", "--json", "--as-of", AS_OF))
    assert data["replies_owed_by_me"] == 1
    [owed] = [s for s in data["signals"] if s["kind"] == "reply_owed"]
    assert owed["facts"]["subject"] == "a question"


def test_identity_and_the_engine_from_one_read_equal_each_reading_alone(cfg: Path) -> None:
    """Identity's counts and the engine's messages from one read of the messages give the same
    activity and report as each reading them alone; as of no moment (``keepwarm people`` without
    --as-of), identity counts all of history, the engine what is dated up to now."""
    from keepwarm.daemon.identity import load_activity, resolve_activity
    from keepwarm.daemon.network import identity_and_messages

    config = cfgmod.load(cfg)
    store = Store.open(config.store_path)
    activity, ahead = identity_and_messages(store, config, NOW, NOW)
    together = build_report(
        config, store, NOW, identity=resolve_activity(activity, config), ahead=ahead
    )
    alone = load_activity(store, config, NOW)
    assert activity == alone
    assert together == build_report(config, store, NOW, identity=resolve_activity(alone, config))
    assert ahead.messages.take() is None  # handed over to the engine, not kept
    assert ahead.messages.take_every() is None  # identity's, counted and let go

    everything, ahead = identity_and_messages(store, config, None, NOW)
    assert everything == load_activity(store, config, None) != alone
    late = int((NOW + timedelta(days=3)).timestamp())
    assert everything.by_email[BOB].in_last == late  # identity sees the message after now
    assert alone.by_email[BOB].in_last < late
    identity = resolve_activity(everything, config)
    assert build_report(config, store, NOW, identity=identity, ahead=ahead) == build_report(
        config, store, NOW, identity=identity
    )
    store.close()


def test_messages_read_ahead_for_another_moment_are_not_used(cfg: Path) -> None:
    from keepwarm.daemon.identity import resolve_activity
    from keepwarm.daemon.network import identity_and_messages

    config = cfgmod.load(cfg)
    store = Store.open(config.store_path)
    activity, ahead = identity_and_messages(store, config, NOW, NOW)
    later = NOW + timedelta(days=4)
    report = build_report(
        config, store, later, identity=resolve_activity(activity, config), ahead=ahead
    )
    assert report.person(BOB).days_since_contact == 1  # type: ignore[union-attr]
    store.close()


def test_a_failing_read_is_the_commands_error(cfg: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failing read is the command's one-line error, with its message, not a hang."""
    import sqlite3

    from keepwarm.daemon.store import history

    def broken(*args: object, **kwargs: object) -> object:
        raise sqlite3.DatabaseError("database disk image is malformed")

    monkeypatch.setattr(history, "answers", broken)
    result = CliRunner().invoke(cli, ["--config", str(cfg), "people", "--as-of", AS_OF])
    assert result.exit_code != 0
    assert "malformed" in result.output or "damaged" in result.output, result.output


def test_the_next_command_takes_the_kept_blocks_and_says_the_same(cfg: Path) -> None:
    """The first command keeps the messages it read (daemon/store/blocks.py); the next takes
    them and prints the same; a new message drops its block and shows in the next one."""
    import sqlite3
    from contextlib import closing

    db = cfg.parent / "kw.db"
    args = ["--config", str(cfg), "people", "--json", "--all", "--as-of", AS_OF]
    first = CliRunner().invoke(cli, args)
    assert first.exit_code == 0, first.output
    with closing(sqlite3.connect(db)) as conn:
        assert conn.execute("SELECT count(*) FROM message_blocks").fetchone()[0] >= 1
    again = CliRunner().invoke(cli, args)
    assert again.output == first.output
    store = Store.open(db)
    try:
        late = MessageMeta(
            account="a",
            provider_id="new",
            date=NOW - timedelta(days=1),
            sender=Address("erin@delta.io"),
            to=(Address(ME),),
            message_id="new@x",
            subject="hello",
        )
        store.apply_batch("a", "maildir", Batch(messages=[late]))
    finally:
        store.close()
    with closing(sqlite3.connect(db)) as conn:
        assert conn.execute("SELECT count(*) FROM message_blocks").fetchone()[0] == 0
    changed = CliRunner().invoke(cli, args)
    assert "erin@delta.io" in changed.output and "erin@delta.io" not in first.output
