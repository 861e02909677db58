"""Your address book in identity and the engine: names, aliases, birthdays, groups and conflicts,
through the real path (stored contacts, decisions.decided_config, identity, the CLI)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from cadence_helpers import NOW as NOW_ENGINE
from cadence_helpers import H, ago, run, signals
from click.testing import CliRunner
from leakcheck import close_after_test

from keepwarm.connectors.base import Address, Batch, ContactMeta, MessageMeta
from keepwarm.daemon import decisions
from keepwarm.daemon.cli import cli
from keepwarm.daemon.config import Config, loads
from keepwarm.daemon.identity import Identity, Person, resolve
from keepwarm.daemon.network import engine_settings
from keepwarm.daemon.store import Store
from keepwarm.digests.cadence import Organisation
from keepwarm.digests.suggest import phrase

ME = "me@example.com"
T0 = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)
NOW = T0 + timedelta(days=30)
_n = iter(range(10**9))


def mail(sender: str, to: str, days: float, name: str = "") -> MessageMeta:
    n = next(_n)
    return MessageMeta(
        account="mail",
        provider_id=f"p{n}",
        date=T0 + timedelta(days=days, seconds=n),
        sender=Address(sender, name),
        to=(Address(to),),
        message_id=f"m{n}@x",
        subject=f"hello {n}",
    )


def talk(addr: str, name: str = "", days: float = 0) -> list[MessageMeta]:
    return [mail(ME, addr, days), mail(addr, ME, days + 1, name)]


def contact(pid: str, name: str, *emails: str, **kw: object) -> ContactMeta:
    return ContactMeta("book", pid, name, tuple(emails), **kw)  # type: ignore[arg-type]


CONFIG = f"""
[me]
name = "Jane Doe"
addresses = ["{ME}"]
timezone = "Europe/Berlin"
"""


def setup(
    messages: list[MessageMeta], contacts: list[ContactMeta], extra: str = ""
) -> tuple[Store, Config, Identity]:
    store = close_after_test(Store.memory())
    store.apply_batch("mail", "maildir", Batch(messages=messages))
    store.apply_batch("book", "vcard", Batch(contacts=contacts))
    cfg = decisions.decided_config(loads(CONFIG + extra), store, NOW)
    return store, cfg, resolve(store, cfg, NOW)


def person(ident: Identity, addr: str) -> Person:
    return ident.people[ident.person_of[addr]]


def test_a_contact_names_the_person_and_joins_its_addresses() -> None:
    msgs = talk("a.shankman@corp.example", "a..shankman") + talk("art@home.example", "art", 3)
    _, _, ident = setup(
        msgs, [contact("c1", "Art Shankman", "art@home.example", "a.shankman@corp.example")]
    )
    p = person(ident, "art@home.example")
    assert set(p.addresses) == {"art@home.example", "a.shankman@corp.example"}
    assert p.name == "Art Shankman"
    assert "2 addresses merged by your address book" in p.reasons
    assert any("one contact in your address book" in r for r in p.reasons)
    assert any(
        r.startswith('name "Art Shankman" from your address book (mail says') for r in p.reasons
    )
    assert p.two_way


def test_a_contact_alone_is_not_a_relationship() -> None:
    _, _, ident = setup(talk("bob@corp.example"), [contact("c1", "Stranger", "x@nowhere.example")])
    assert "x@nowhere.example" not in ident.person_of  # never mailed: not a person of yours
    assert person(ident, "bob@corp.example").name == "bob"


def test_an_address_shared_by_two_contacts_links_neither() -> None:
    msgs = (
        talk("family@home.example", "The Lees") + talk("ann@lee.example") + talk("bo@lee.example")
    )
    _, _, ident = setup(
        msgs,
        [
            contact("c1", "Ann Lee", "ann@lee.example", "family@home.example"),
            contact("c2", "Bo Lee", "bo@lee.example", "family@home.example"),
        ],
    )
    shared = person(ident, "family@home.example")
    assert shared.addresses == ("family@home.example",)
    assert shared.name == "The Lees"
    assert any(
        'family@home.example is in 2 contacts of your address book ("Ann Lee", "Bo Lee")' in r
        for r in shared.reasons
    )
    assert person(ident, "ann@lee.example").addresses == ("ann@lee.example",)


def test_duplicate_contacts_with_one_name_are_one_contact() -> None:
    msgs = talk("kim@a.example") + talk("kim@b.example", days=2)
    _, _, ident = setup(
        msgs,
        [
            contact("c1", "Kim Park", "kim@a.example", "kim@shared.example"),
            contact("c2", "kim park", "kim@b.example", "kim@shared.example"),
        ],
    )
    p = person(ident, "kim@a.example")
    assert {"kim@a.example", "kim@b.example"} <= set(p.addresses)
    assert p.name == "Kim Park"


def test_your_merge_that_joins_two_contacts_wins_and_says_so() -> None:
    msgs = talk("a@x.example") + talk("b@y.example", days=2)
    _, _, ident = setup(
        msgs,
        [contact("c1", "Alex Roe", "a@x.example"), contact("c2", "Alexandra Roe", "b@y.example")],
        '[people]\naliases = [["a@x.example", "b@y.example"]]\n',
    )
    p = person(ident, "a@x.example")
    assert set(p.addresses) == {"a@x.example", "b@y.example"}
    assert any(
        "your merges (people.aliases or keepwarm merge) join 2 contacts" in r
        and "your merge wins" in r
        for r in p.reasons
    )
    assert "2 addresses merged by people.aliases and your address book" in p.reasons


def test_birthdays_from_the_book_and_the_config_wins_a_conflict() -> None:
    msgs = talk("maya@x.example") + talk("tom@y.example", days=2)
    _, cfg, ident = setup(
        msgs,
        [
            contact("c1", "Maya", "maya@x.example", birthday="1985-04-12"),
            contact("c2", "Tom", "tom@y.example", birthday="--06-01"),
        ],
        '[people.birthdays]\n"tom@y.example" = "06-02"\n',
    )
    settings = engine_settings(cfg)
    assert settings.birthdays["maya@x.example"] == "04-12"
    assert settings.birthdays["tom@y.example"] == "06-02"
    assert "birthday 04-12 from your address book" in person(ident, "maya@x.example").reasons
    assert (
        "birthday 06-02 from your config (your address book says 06-01): your config wins"
        in person(ident, "tom@y.example").reasons
    )


def test_a_contact_group_pins_a_tier() -> None:
    msgs = talk("chair@board.example") + talk("other@x.example")
    _, cfg, _ = setup(
        msgs,
        [contact("c1", "Chair", "chair@board.example", "chair@home.example", groups=("Board",))],
        '[[tiers]]\nname = "inner"\nsize = 5\ncadence = "2w"\nmembers = ["group:board", "x@y.example"]\n'
        '[[tiers]]\nname = "wider"\nsize = 150\ncadence = "26w"\n',
    )
    assert cfg.tiers[0].members == ("chair@board.example", "chair@home.example", "x@y.example")


def test_person_why_and_people_show_the_address_book(tmp_path: Path) -> None:
    db = tmp_path / "kw.db"
    store = Store.open(db)
    now = datetime.now(UTC)
    msgs = [
        MessageMeta(
            account="mail",
            provider_id=f"q{i}",
            date=now - timedelta(days=10 - i),
            sender=Address(*s),
            to=(Address(t),),
            message_id=f"q{i}@x",
            subject="hi",
        )
        for i, (s, t) in enumerate(
            [
                ((ME, "Jane"), "a.shankman@corp.example"),
                (("a.shankman@corp.example", "a..shankman"), ME),
            ]
        )
    ]
    store.apply_batch("mail", "maildir", Batch(messages=msgs))
    store.close()
    vcf = tmp_path / "book.vcf"
    vcf.write_text(
        "BEGIN:VCARD\nVERSION:3.0\nUID:1\nFN:Art Shankman\nEMAIL:a.shankman@corp.example\n"
        "EMAIL:art@home.example\nBDAY:--05-06\nORG:Corp Inc.\nTITLE:CFO\nEND:VCARD\n"
    )
    cfg = tmp_path / "config.toml"
    cfg.write_text(CONFIG + f'[store]\npath = "{db}"\n')
    runner = CliRunner()
    assert runner.invoke(cli, ["--config", str(cfg), "import", "vcard", str(vcf)]).exit_code == 0
    why = runner.invoke(
        cli, ["--config", str(cfg), "person", "art@home.example", "--why", "--json"]
    )
    assert why.exit_code == 0, why.output
    data = json.loads(why.output)
    assert data["name"] == "Art Shankman"
    text = json.dumps(data)
    assert "from your address book" in text and "works at Corp Inc. as CFO" in text
    people = runner.invoke(cli, ["--config", str(cfg), "people", "--json", "--all"])
    names = {p["name"] for p in json.loads(people.output)}
    assert "Art Shankman" in names and "a..shankman" not in names


# -- the engine's address-book inputs (digests/cadence/book.py) -------------------------------------
def _ties(*who: str) -> H:
    h = H()
    for w in who:
        for d in range(3, 90, 7):
            h.exchange(w, ago(d), subject=f"{w} {d}")
    return h


def test_an_anniversary_from_the_address_book_is_an_occasion_with_its_words() -> None:
    a = "ann@corp.example"
    today = NOW_ENGINE.date().isoformat()[5:]
    r = run(_ties(a), anniversaries={a: today})
    [s] = signals(r, "occasion_anniversary", a)
    assert s.facts.source == "address book" and s.facts.days_until == 0
    assert s.because == [f"anniversary today ({today}), from your address book"]
    assert phrase("occasion_anniversary", "Ann", s.facts, ZoneInfo("UTC")) == (
        "Wish Ann a happy anniversary today"
    )


def test_a_new_organisation_in_the_address_book_is_a_job_change() -> None:
    a = "ann@gmail.com"
    since = int((NOW_ENGINE - timedelta(days=5)).timestamp())
    org = Organisation("Northwind", "CTO", "Initech", since)
    r = run(_ties(a), organisations={a: org})
    [s] = signals(r, "occasion_job_change", a)
    assert s.facts.new_org == "Northwind" and s.facts.old_org == "Initech"
    assert phrase("occasion_job_change", "Ann", s.facts, ZoneInfo("UTC")) == (
        "Congratulate Ann on the new role at Northwind"
    )
    assert s.because[0].startswith("now at Northwind as CTO (your address book, changed ")
    old = Organisation("Northwind", "CTO", "Initech", since - 200 * 86400)
    assert not signals(run(_ties(a), organisations={a: old}), "occasion_job_change")


def test_the_address_book_organisation_places_free_mail_users_for_introductions() -> None:
    """Introductions join people at different organisations who share a topic; a free-mail
    address has no organisation until the address book gives it one."""
    a, b, c = "ann@gmail.com", "ben@yahoo.com", "cy@gmail.com"
    h = H()
    for w, topic in ((a, "solar permits"), (b, "solar permits"), (c, "quarterly budget")):
        for d in range(3, 90, 7):
            h.exchange(w, ago(d), subject=f"{topic}, week {d} ({w})")
    assert not signals(run(h), "introduce")
    orgs = {a: Organisation("Acme, Inc."), b: Organisation("Globex"), c: Organisation("ACME")}
    [s] = signals(run(h, organisations=orgs), "introduce")
    assert {s.person_key, s.facts.other} == {a, b} and s.facts.topic in ("solar", "permits")
    same = {a: Organisation("Acme, Inc."), b: Organisation("ACME")}  # colleagues know each other
    assert not signals(run(h, organisations=same), "introduce")
