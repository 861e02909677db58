"""The demo generator: deterministic, realistic, and its ground truth survives the pipeline."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from leakcheck import close_after_test

from keepwarm.connectors.headers import header_block, parse_header_block
from keepwarm.daemon.cli import Ctx, cli, parse_as_of
from keepwarm.daemon.commands.demo import import_demo
from keepwarm.daemon.demo import DEMO_TODAY, DemoManifest, digest_of_files, generate, import_direct
from keepwarm.daemon.identity import merge_candidates
from keepwarm.daemon.people_stats import PeopleView, load_view
from keepwarm.daemon.store import Store


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[DemoManifest, PeopleView]:
    manifest = generate(tmp_path_factory.mktemp("demo"))
    obj = Ctx(str(manifest.config_path))
    import_demo(obj, manifest)
    with obj.store() as store:
        view = load_view(store, obj.config, parse_as_of(manifest.as_of, obj.config.zone))
    return manifest, view


def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path) -> None:
    a = generate(tmp_path / "a", seed=3)
    b = generate(tmp_path / "b", seed=3)
    c = generate(tmp_path / "c", seed=4)
    assert digest_of_files(a.mail_dir) == digest_of_files(b.mail_dir)
    assert a.ics_path.read_bytes() == b.ics_path.read_bytes()
    assert digest_of_files(a.mail_dir) != digest_of_files(c.mail_dir)


def test_size_and_layout(demo: tuple[DemoManifest, PeopleView]) -> None:
    m, _ = demo
    assert 3000 <= m.messages <= 6000
    assert 150 <= m.events <= 600
    files = [p for p in [*m.mail_dir.glob("*/*"), *m.mail_dir.glob(".*/*/*")] if p.is_file()]
    assert len(files) == m.messages
    assert {p.parent.parent.name for p in files} == {"mail", ".Sent", ".Archive"}
    assert {p.parent.name for p in files} == {"cur", "new"} and (m.mail_dir / "tmp").is_dir()
    heads = [parse_header_block(header_block(p.read_bytes())) for p in files]
    replies = [h for h in heads if h["subject"][0].startswith("Re:")]
    with_irt = [h for h in replies if "in-reply-to" in h]
    assert 0 < len(replies) - len(with_irt) < len(with_irt)  # some mailers omit In-Reply-To
    assert all("message-id" in h and "date" in h for h in heads)
    big = [
        h for h in heads if len(h["to"][0].split(",")) + len(h.get("cc", [""])[0].split(",")) > 10
    ]
    assert big, "large CC threads"
    ics = m.ics_path.read_text()
    assert "RRULE:FREQ=WEEKLY" in ics and "BEGIN:VTIMEZONE" in ics and "STATUS:CANCELLED" in ics


def test_lists_and_robots_are_classified(demo: tuple[DemoManifest, PeopleView]) -> None:
    m, view = demo
    ident = view.identity
    for addr in m.lists:
        assert ident.people[ident.person_of[addr]].kind == "list", addr
    for addr in m.robots:
        assert ident.people[ident.person_of[addr]].kind == "robot", addr
    for addr in m.list_members:
        p = ident.people[ident.person_of[addr]]
        assert not (p.kind == "person" and p.two_way), addr


def test_relationships_by_ground_truth(demo: tuple[DemoManifest, PeopleView]) -> None:
    m, view = demo
    ident = view.identity
    for addr in (
        *m.inner_circle,
        *m.colleagues,
        *m.clients,
        *m.fading,
        *m.new_contacts,
        *m.lopsided_me_initiates,
        *m.lopsided_they_reach_out,
        *m.job_changer,
    ):
        p = ident.people[ident.person_of[addr]]
        assert p.kind == "person" and p.two_way, (addr, p.reasons)
    assert ident.people[ident.person_of[m.me[0]]].kind == "self"


def test_timelines(demo: tuple[DemoManifest, PeopleView]) -> None:
    m, view = demo
    today = datetime.combine(m.today, datetime.min.time(), UTC)

    def stats(addr: str):  # type: ignore[no-untyped-def]
        return view.stats[view.identity.person_of[addr]]

    for addr in m.fading:
        gap = today - stats(addr).last_touch
        assert timedelta(days=60) <= gap <= timedelta(days=125), addr
        assert stats(addr).messages_in >= 10
    for addr in m.new_contacts:
        assert today - stats(addr).first_touch <= timedelta(days=60), addr
    chris = stats(m.lopsided_me_initiates[0])
    assert chris.messages_out > 1.5 * chris.messages_in
    nina = stats(m.lopsided_they_reach_out[0])
    assert nina.messages_in > 4 * nina.messages_out
    for addr in m.replies_owed:
        s = stats(addr)
        assert s.last_inbound > s.last_outbound and today - s.last_inbound < timedelta(days=7)


def test_one_name_at_two_addresses_is_one_person(
    demo: tuple[DemoManifest, PeopleView],
) -> None:
    """Daniel writes from two addresses, Priya from her old and her new employer's: each is one
    person (their full display names match), so nothing is left to propose."""
    m, view = demo
    ident = view.identity
    for a, b in (m.two_addresses, m.job_changer):
        assert ident.person_of[a] == ident.person_of[b]
        assert any("same display name" in r for r in ident.people[ident.person_of[a]].reasons)
    pairs = {frozenset((a.key, b.key)) for a, b, _ in merge_candidates(ident)}
    assert frozenset(m.two_addresses) not in pairs


def test_real_world_shapes(demo: tuple[DemoManifest, PeopleView]) -> None:
    """The assistant is Alex; broadcasts and marketing without list headers are nobody's
    relationship; what the assistant answered, an FYI and a thank-you owe no reply; the copy an
    archive filed twice is one message."""
    from keepwarm.daemon.network import build_report

    m, view = demo
    ident = view.identity
    for addr in m.delegates:
        assert ident.people[ident.person_of[addr]].kind == "self", addr
    for addr in (*m.broadcasters, *m.marketing):
        p = ident.people[ident.person_of[addr]]
        assert not (p.kind == "person" and p.two_way), addr
    obj = Ctx(str(m.config_path))
    with obj.store() as store:
        (stored,) = store.conn.execute("SELECT count(*) FROM messages").fetchone()
        report = build_report(obj.config, store, parse_as_of(m.as_of, obj.config.zone))
    assert stored == m.messages - 1  # the shifted copy joined its original
    owed = {s.person_key for s in report.signals if s.kind == "reply_owed"}
    assert not owed & {ident.person_of[a] for a in m.no_reply_needed}
    people = {p.key for p in report.people}
    assert not people & {ident.person_of[a] for a in (*m.delegates, *m.broadcasters)}


def test_meetings_yesterday_today_and_birthday(demo: tuple[DemoManifest, PeopleView]) -> None:
    m, _ = demo
    obj = Ctx(str(m.config_path))
    zone = obj.config.zone
    with obj.store() as store:
        rows = store.conn.execute("SELECT start, title, event_type FROM events").fetchall()
    by_day: dict[date, set[str]] = {}
    for start, title, _ in rows:
        by_day.setdefault(datetime.fromtimestamp(start, UTC).astimezone(zone).date(), set()).add(
            title
        )
    assert set(m.meetings_yesterday) <= by_day[m.today - timedelta(days=1)]
    assert set(m.meetings_today) <= by_day[m.today]
    assert any(t == "birthday" and "Maya" in title for _, title, t in rows)


def test_demo_command(tmp_path: Path) -> None:
    out = CliRunner().invoke(cli, ["demo", "--dir", str(tmp_path / "d")], catch_exceptions=False)
    assert out.exit_code == 0, out.output
    assert "relationships" in out.output and "Maya Patel" in out.output
    assert (tmp_path / "d" / "keepwarm.db").exists()
    assert out.output.rstrip().splitlines()[-1].endswith("outbox/2026-11-17.html")  # the digest
    again = CliRunner().invoke(cli, ["demo", "--dir", str(tmp_path / "d")])
    assert again.exit_code == 2 and "not empty" in again.output


def test_default_day_is_a_tuesday() -> None:
    assert DEMO_TODAY.weekday() == 1


def test_direct_import_matches_the_connectors(demo: tuple[DemoManifest, PeopleView]) -> None:
    m, view = demo
    store = close_after_test(Store.memory())
    import_direct(store, m)
    cfg = Ctx(str(m.config_path)).config
    direct = load_view(store, cfg, parse_as_of(m.as_of, cfg.zone))

    def summary(v: PeopleView) -> dict[str, tuple[object, ...]]:
        return {
            k: (
                p.kind,
                p.two_way,
                v.stats[k].messages_in,
                v.stats[k].messages_out,
                v.stats[k].meetings,
            )
            for k, p in v.identity.people.items()
        }

    assert summary(direct) == summary(view)


def test_the_demo_address_book_names_joins_and_dates(
    demo: tuple[DemoManifest, PeopleView],
) -> None:
    from keepwarm.daemon import decisions

    m, _ = demo
    obj = Ctx(str(m.config_path))
    when = parse_as_of(m.as_of, obj.config.zone)
    with obj.store() as store:
        assert store.counts()["contacts"] == 7  # the card without an address is skipped
        config = decisions.decided_config(obj.config, store, when)
        view = load_view(store, config, when)
    maya = view.identity.people[view.identity.person_of["maya.patel@brightside.io"]]
    assert "maya@patel.family" in maya.addresses and maya.name == "Maya Patel"
    assert "works at Brightside as Head of Product (your address book)" in maya.reasons
    assert config.people["birthdays"]["jordan@reyes.vc"] == "03-08"
