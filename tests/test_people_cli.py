"""keepwarm people / person through click's CliRunner."""

from __future__ import annotations

import gc
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import example, given
from hypothesis import strategies as st

from keepwarm.connectors.base import Address, Attendee, Batch, EventMeta, MessageMeta
from keepwarm.core import gc_paused
from keepwarm.daemon.cli import cli
from keepwarm.daemon.commands.people import _order, selected_people
from keepwarm.daemon.config import loads
from keepwarm.daemon.identity import Identity, Person
from keepwarm.daemon.people_stats import PeopleView, PersonStats, iso, load_view
from keepwarm.daemon.store import Store

ME = "me@example.com"
T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
FIELDS = {
    "name",
    "addresses",
    "kind",
    "first_touch",
    "last_touch",
    "last_inbound",
    "last_outbound",
    "messages_in",
    "messages_out",
    "meetings",
}


def _mail(n: int, sender: str, to: list[str], days: float, **kw: object) -> MessageMeta:
    return MessageMeta(
        account="a",
        provider_id=f"p{n}",
        date=T0 + timedelta(days=days),
        sender=Address(sender, kw.pop("name", "")),  # type: ignore[arg-type]
        to=tuple(Address(t) for t in to),
        message_id=f"m{n}@x",
        subject=str(kw.pop("subject", f"subject {n}")),
        **kw,  # type: ignore[arg-type]
    )


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    db = tmp_path / "kw.db"
    store = Store.open(db)
    msgs = [
        _mail(1, ME, ["bob@corp.com"], 0),
        _mail(2, "bob@corp.com", [ME], 1, name="Bob Stone", subject="Re: budget"),
        _mail(3, "bob@corp.com", [ME], 20, name="Bob Stone", subject="later news"),
        _mail(4, "news@shop.com", [ME], 2, markers=("list-unsubscribe",)),
        _mail(5, "fan@corp.com", [ME], 3, name="Fan Person"),
        _mail(6, ME, ["carol@corp.com"], 4),
    ]
    ev = EventMeta(
        account="a",
        provider_id="e1",
        start=T0 + timedelta(days=5),
        end=T0 + timedelta(days=5, hours=1),
        ical_uid="u1",
        title="Planning",
        attendees=(
            Attendee(ME, response="accepted", is_self=True),
            Attendee("carol@corp.com", "Carol King", response="accepted"),
        ),
    )
    store.apply_batch("a", "maildir", Batch(messages=msgs, events=[ev]))
    store.close()
    path = tmp_path / "config.toml"
    path.write_text(
        f'[me]\nname = "Jane Doe"\naddresses = ["{ME}"]\ntimezone = "UTC"\n[store]\npath = "{db}"\n'
    )
    return path


def run(cfg: Path, *args: str) -> str:
    result = CliRunner().invoke(cli, ["--config", str(cfg), *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_people_json_lists_relationships_only(cfg: Path) -> None:
    rows = json.loads(run(cfg, "people", "--json"))
    assert {r["key"] for r in rows} == {"bob@corp.com", "carol@corp.com"}
    bob = next(r for r in rows if r["key"] == "bob@corp.com")
    assert set(bob) >= FIELDS
    assert bob["messages_in"] == 2 and bob["messages_out"] == 1 and bob["meetings"] == 0
    assert bob["first_touch"] == "2025-03-03T09:00:00Z"
    assert bob["last_inbound"] == "2025-03-23T09:00:00Z"
    assert bob["last_outbound"] == "2025-03-03T09:00:00Z"
    assert bob["name"] == "Bob Stone" and bob["kind"] == "person"
    carol = next(r for r in rows if r["key"] == "carol@corp.com")
    assert carol["meetings"] == 1 and carol["name"] == "Carol King"


@given(
    st.datetimes(
        timezones=st.timezones(),
        min_value=datetime(1, 1, 2),  # astimezone(UTC) stays within datetime's years
        max_value=datetime(9999, 12, 30),
    )
)
@example(datetime(999, 12, 31, 23, 59, 59, tzinfo=UTC))  # strftime writes "999", not "0999"
@example(datetime(1000, 1, 1, tzinfo=UTC))
@example(datetime(2025, 3, 3, 9, 0, 59, 999999, tzinfo=UTC))  # seconds cut, never rounded
def test_iso_writes_what_strftime_writes(dt: datetime) -> None:
    assert iso(dt) == dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_people_as_of_limits_history(cfg: Path) -> None:
    rows = json.loads(run(cfg, "people", "--json", "--as-of", "2025-03-10"))
    bob = next(r for r in rows if r["key"] == "bob@corp.com")
    assert bob["messages_in"] == 1 and bob["last_inbound"] == "2025-03-04T09:00:00Z"
    rows = json.loads(run(cfg, "people", "--json", "--as-of", "2025-03-03"))
    assert rows == []  # only my first message: no two-way contact yet


def test_people_all_shows_every_kind(cfg: Path) -> None:
    rows = json.loads(run(cfg, "people", "--json", "--all"))
    kinds = {r["key"]: r["kind"] for r in rows}
    assert kinds["news@shop.com"] in ("list", "robot")
    assert kinds["fan@corp.com"] == "person"
    assert not next(r for r in rows if r["key"] == "fan@corp.com")["two_way"]
    text = run(cfg, "people", "--all")
    assert "fan@corp.com" in text and "one-way" in text
    assert "fan@corp.com" not in run(cfg, "people")


def test_person_shows_history_and_reasons(cfg: Path) -> None:
    text = run(cfg, "person", "Bob@Corp.com")
    assert "Bob Stone <bob@corp.com>" in text and "kind: person, two-way" in text
    assert "Re: budget" in text and "two-way contact" in text
    data = json.loads(run(cfg, "person", "bob@corp.com", "--json"))
    assert [m["direction"] for m in data["messages"]] == ["in", "in", "out"]
    data = json.loads(run(cfg, "person", "carol@corp.com", "--json"))
    assert data["recent_meetings"][0]["title"] == "Planning"
    news = run(cfg, "person", "news@shop.com")
    assert "list or bulk" in news or "automated" in news
    assert "Bob Stone" in run(cfg, "person", "bob stone")


def test_people_view_stats_cover_every_cluster(cfg: Path) -> None:
    """The view's stats (summed when first asked for) are a mapping over every cluster, summed
    over the cluster's addresses."""
    config = loads(cfg.read_text() + '[people]\naliases = [["bob@corp.com", "fan@corp.com"]]\n')
    store = Store.open(config.store_path)
    try:
        view = load_view(store, config, None)
    finally:
        store.close()
    assert len(view.stats) == len(view.identity.people)
    assert set(view.stats) == set(view.identity.people)
    bob = view.stats["bob@corp.com"]  # two addresses
    assert (bob.messages_in, bob.messages_out, bob.direct_in, bob.meetings) == (3, 1, 3, 0)
    assert bob.first_touch == T0 and bob.last_touch == T0 + timedelta(days=20)
    assert bob.last_outbound == T0 and bob.last_inbound == T0 + timedelta(days=20)
    carol = view.stats["carol@corp.com"]  # one address: a meeting after my message
    assert (carol.messages_in, carol.messages_out, carol.meetings) == (0, 1, 1)
    assert carol.first_touch == T0 + timedelta(days=4)
    assert carol.last_touch == T0 + timedelta(days=5)
    assert carol.last_inbound is None and carol.last_outbound == T0 + timedelta(days=4)
    assert view.stats["bob@corp.com"] is bob  # summed once


KINDS = ("person", "self", "role", "list", "robot", "excluded")


class _Stats(dict[str, PersonStats]):
    """The view's figures, counting which were asked for."""

    def __init__(self, items: dict[str, PersonStats]) -> None:
        super().__init__(items)
        self.asked: set[str] = set()

    def __getitem__(self, key: str) -> PersonStats:
        self.asked.add(key)
        return super().__getitem__(key)


@given(
    st.lists(
        st.tuples(
            st.sampled_from(KINDS),
            st.booleans(),  # two-way
            st.none() | st.integers(0, 5),  # last touch, days after T0 (ties on purpose)
            st.integers(0, 2),  # interactions
            st.none() | st.integers(0, 30),  # rank in the engine's report
        ),
        max_size=12,
    ),
    st.booleans(),
)
def test_selected_people_in_the_reports_order_then_by_last_touch(
    drawn: list[tuple[str, bool, int | None, int, int | None]], all_kinds: bool
) -> None:
    """The engine's order, then the people it has no data on by kind (with --all), last touch
    and address: what sorting everyone by last touch and then, stably, by rank gave. Only the
    people outside the report have their figures summed for it."""
    people: dict[str, Person] = {}
    stats: dict[str, PersonStats] = {}
    ranked: list[tuple[int, str]] = []
    for i, (kind, two_way, day, n, rank) in enumerate(drawn):
        key = f"p{i % 7}x{i}@corp.com"
        people[key] = Person(key, key, (key,), kind, (), two_way)  # type: ignore[arg-type]
        last = None if day is None else int((T0 + timedelta(days=day)).timestamp())
        stats[key] = PersonStats(last, last, None, None, n, 0, 0, 0, 0)
        if rank is not None:
            ranked.append((rank, key))
    report = SimpleNamespace(people=[SimpleNamespace(key=k) for _, k in sorted(ranked)])
    view = PeopleView(Identity(people, {k: k for k in people}, frozenset()), None, stats, None)  # type: ignore[arg-type]
    chosen = [
        p
        for p in people.values()
        if (p.kind == "person" and p.two_way) or (all_kinds and stats[p.key].interactions > 0)
    ]
    chosen.sort(key=lambda p: _order(p, stats[p.key], all_kinds))
    rank_of = {r.key: i for i, r in enumerate(report.people)}
    chosen.sort(key=lambda p: rank_of.get(p.key, len(rank_of)))
    assert selected_people(view, all_kinds, None) == sorted(
        chosen, key=lambda p: _order(p, stats[p.key], all_kinds)
    )
    counted = _Stats(stats)
    view = replace(view, stats=counted)
    assert selected_people(view, all_kinds, report) == chosen  # type: ignore[arg-type]
    if not all_kinds:
        assert counted.asked == {p.key for p in chosen if p.key not in rank_of}


def test_history_commands_pause_the_collector(cfg: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """people and person do their work with the cyclic collector paused, and restore it."""
    from keepwarm.daemon.commands import people as people_cmd

    seen: list[bool] = []
    load = people_cmd.load_view

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(gc.isenabled())
        return load(*args, **kwargs)

    monkeypatch.setattr(people_cmd, "load_view", spy)
    assert gc.isenabled()
    run(cfg, "people")
    run(cfg, "person", "bob@corp.com")
    assert seen == [False, False] and gc.isenabled()


def test_gc_paused_restores_the_collector_as_it_was() -> None:
    with pytest.raises(RuntimeError), gc_paused():
        assert not gc.isenabled()
        raise RuntimeError("boom")
    assert gc.isenabled()
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()  # it was off: left off
    finally:
        gc.enable()


def test_person_unknown_address_is_a_clear_error(cfg: Path) -> None:
    result = CliRunner().invoke(cli, ["--config", str(cfg), "person", "nobody@x.com"])
    assert result.exit_code == 2 and "people --all" in result.output


def test_merge_candidates_command(cfg: Path, tmp_path: Path) -> None:
    store = Store.open(tmp_path / "kw.db")
    store.apply_batch(
        "a",
        "maildir",
        Batch(messages=[_mail(9, "bstone@newco.io", [ME], 30, name="Bob J. Stone")]),
    )
    store.close()
    out = run(cfg, "people", "--merge-candidates")
    assert "bob@corp.com" in out and "bstone@newco.io" in out
    assert "keepwarm merge bob@corp.com bstone@newco.io" in out
    rows = json.loads(run(cfg, "people", "--merge-candidates", "--json"))
    assert {rows[0]["a"], rows[0]["b"]} == {"bob@corp.com", "bstone@newco.io"}


@pytest.mark.parametrize(
    "module",
    [
        "keepwarm.daemon.commands.people",
        "keepwarm.daemon.commands.demo",
        "keepwarm.daemon.people_stats",
        "keepwarm.daemon.identity",
        "keepwarm.daemon.demo",
    ],
)
def test_module_imports_first_without_cycles(module: str) -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", f"import {module}"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


@given(
    st.integers(min_value=-62135596800, max_value=253402300799)  # years 1 to 9999
    | st.integers(min_value=0, max_value=4_000_000_000)
)
def test_iso_of_an_epoch_second_is_iso_of_its_datetime(ts: int) -> None:
    """iso_at (texts of the day, minute and second, made once) writes what iso writes."""
    from keepwarm.daemon.people_stats import iso_at

    assert iso_at(ts) == iso(datetime.fromtimestamp(ts, UTC))
    assert iso_at(None) is None
