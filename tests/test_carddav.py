"""The CardDAV connector against the same real Radicale (TLS) as CalDAV."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from davworld import needs_radicale, radicale, settings, user
from fakes.radicale import Radicale
from leakcheck import close_after_test

from keepwarm.connectors.dav.contacts import CardDavConnector
from keepwarm.connectors.vcard import NO_EMAIL
from keepwarm.daemon.cli import cli
from keepwarm.daemon.store import Store
from keepwarm.daemon.sync import run_account

pytestmark = needs_radicale
__all__ = ["radicale", "user"]  # fixtures


def card(uid: str, name: str, *emails: str, extra: str = "") -> str:
    lines = ["BEGIN:VCARD", "VERSION:3.0", f"UID:{uid}", f"FN:{name}"]
    lines += [f"EMAIL;TYPE=INTERNET:{e}" for e in emails]
    if extra:
        lines.append(extra)
    return "\r\n".join([*lines, "END:VCARD"]) + "\r\n"


def carddav(server: Radicale, user: str, **kw: object) -> CardDavConnector:
    return CardDavConnector("cards", settings(server, user, **kw))  # type: ignore[arg-type]


def book(store: Store) -> dict[str, tuple[str, ...]]:
    out: dict[str, list[str]] = {}
    for name, email in store.conn.execute(
        """SELECT c.name, e.email FROM contacts c JOIN contact_emails e ON e.contact = c.id
           ORDER BY c.name, e.position"""
    ):
        out.setdefault(name, []).append(email)
    return {k: tuple(v) for k, v in out.items()}


def test_address_books_sync_incrementally(radicale: Radicale, user: str) -> None:
    radicale.make_addressbook(user, "contacts", "Contacts")
    radicale.make_calendar(user, "work", "Work")  # not an address book: ignored
    radicale.put(
        user,
        "contacts",
        "maya.vcf",
        card("maya", "Maya Patel", "maya@x.example", extra="BDAY:1985-04-12"),
    )
    radicale.put(user, "contacts", "tom.vcf", card("tom", "Tom", "tom@y.example"))
    radicale.put(user, "contacts", "nomail.vcf", card("n", "No Mail"))
    store = close_after_test(Store.memory())
    out = run_account(store, carddav(radicale, user))
    assert out.state == "ok", out.error
    assert book(store) == {"Maya Patel": ("maya@x.example",), "Tom": ("tom@y.example",)}
    assert out.skipped == {NO_EMAIL: 1}
    idle = carddav(radicale, user)
    assert run_account(store, idle).added == 0 and idle.session.requests == 1
    radicale.put(
        user, "contacts", "tom.vcf", card("tom", "Tom Nakamura", "tom@y.example", "t@z.example")
    )
    radicale.delete(user, "contacts", "maya.vcf")
    radicale.forget_sync_tokens(user, "contacts")
    assert run_account(store, carddav(radicale, user)).state == "ok"
    assert book(store) == {"Tom Nakamura": ("tom@y.example", "t@z.example")}


def test_a_chosen_address_book_and_one_removed_on_the_server(radicale: Radicale, user: str) -> None:
    radicale.make_addressbook(user, "work", "Work")
    radicale.make_addressbook(user, "family", "Family")
    radicale.put(user, "work", "a.vcf", card("a", "Ann", "ann@work.example"))
    radicale.put(user, "family", "b.vcf", card("b", "Bo", "bo@home.example"))
    store = close_after_test(Store.memory())
    assert run_account(store, carddav(radicale, user, collections=("Work",))).state == "ok"
    assert set(book(store)) == {"Ann"}
    assert run_account(store, carddav(radicale, user)).state == "ok"
    assert set(book(store)) == {"Ann", "Bo"}
    radicale.delete_collection(user, "family")
    assert run_account(store, carddav(radicale, user)).state == "ok"
    assert set(book(store)) == {"Ann"}  # an address book has no history


def test_wrong_password(radicale: Radicale, user: str) -> None:
    out = run_account(close_after_test(Store.memory()), carddav(radicale, user, password="nope"))
    assert out.state == "auth_required"
    assert out.error == "the CARDDAV server 127.0.0.1 refused the user name or password"


@pytest.fixture
def many(radicale: Radicale, user: str) -> Iterator[str]:
    radicale.make_addressbook(user, "contacts", "Contacts")
    for i in range(7):
        radicale.put(user, "contacts", f"p{i}.vcf", card(f"p{i}", f"Person {i}", f"p{i}@x.example"))
    yield user


def test_a_sync_cut_short_resumes_without_losing_or_duplicating(
    radicale: Radicale, many: str
) -> None:
    conn = CardDavConnector("cards", settings(radicale, many), batch_size=2)
    batches = list(conn.sync(None))
    assert len(batches) >= 3
    for k in range(1, len(batches)):
        store = close_after_test(Store.memory())
        for b in batches[:k]:
            store.apply_batch("cards", "carddav", b)
        assert (
            run_account(
                store, CardDavConnector("cards", settings(radicale, many), batch_size=2)
            ).state
            == "ok"
        )
        assert len(book(store)) == 7 and store.counts()["contacts"] == 7


def test_sync_and_doctor_from_the_config(tmp_path: Path, radicale: Radicale, user: str) -> None:
    radicale.make_addressbook(user, "contacts", "Contacts")
    radicale.put(user, "contacts", "a.vcf", card("a", "Ann Lee", "ann@lee.example"))
    pw = tmp_path / "pw"
    pw.write_text(radicale.users[user])
    pw.chmod(0o600)
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        f"""[me]
name = "Me"
addresses = ["me@example.com"]
timezone = "UTC"
[store]
path = "{tmp_path / "kw.db"}"
[[accounts]]
name = "cards"
kind = "carddav"
url = "{radicale.base_url}"
username = "{user}"
password_file = "{pw}"
ca_file = "{radicale.ca_file}"
addressbooks = ["Contacts"]
"""
    )
    cfg.chmod(0o600)
    runner = CliRunner()
    res = runner.invoke(cli, ["--config", str(cfg), "sync", "--json"])
    assert res.exit_code == 0, res.output
    doctor = runner.invoke(cli, ["--config", str(cfg), "doctor", "--json"])
    checks = {c["name"]: c for c in json.loads(doctor.output)["checks"]}
    assert checks["login to cards"]["detail"] == f"logged in as {user}; 1 address book: Contacts"
    status = json.loads(runner.invoke(cli, ["--config", str(cfg), "status", "--json"]).output)
    assert status["contacts"] == 1
