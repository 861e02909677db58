"""Google contacts (People API) against the emulator, through the real google-api-python-client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fakes.google_api import CONTACTS_READONLY, GoogleEmulator
from fakes.google_world import client_for, write_token
from leakcheck import close_after_test

from keepwarm.connectors.google.contacts import GoogleContactsConnector
from keepwarm.connectors.vcard import NO_EMAIL
from keepwarm.daemon.store import Store
from keepwarm.daemon.sync import run_account


@pytest.fixture
def emu() -> Iterator[GoogleEmulator]:
    with GoogleEmulator(address="me@example.com") as e:
        yield e
        e.check()


@pytest.fixture
def token(emu: GoogleEmulator, tmp_path: Path) -> Path:
    return write_token(emu, tmp_path / "token.json", (CONTACTS_READONLY,))


def connector(emu: GoogleEmulator, token: Path, page_size: int = 2) -> GoogleContactsConnector:
    client = client_for(emu, token, "gc", scopes=(CONTACTS_READONLY,))
    return GoogleContactsConnector("gc", client, page_size=page_size)


def person(name: str, *emails: str, **extra: Any) -> dict[str, Any]:
    return {
        "names": [{"displayName": name, "metadata": {"primary": True}}],
        "emailAddresses": [
            {"value": e, "metadata": {"primary": i == len(emails) - 1}}
            for i, e in enumerate(emails)
        ],
        "phoneNumbers": [{"value": "+1 555 0100"}],
        "addresses": [{"formattedValue": "1 Main St"}],
        "biographies": [{"value": "private notes"}],
        **extra,
    }


def book(store: Store) -> dict[str, tuple[Any, ...]]:
    rows = store.conn.execute(
        """SELECT c.name,
                  (SELECT group_concat(email, ' ') FROM (SELECT email FROM contact_emails
                    WHERE contact = c.id ORDER BY position)),
                  c.birthday, c.anniversary, c.organisation, c.title, c.groups
           FROM contacts c"""
    ).fetchall()
    return {r[0]: tuple(r[1:]) for r in rows}


def test_contacts_with_groups_dates_and_work_then_changes_by_sync_token(
    emu: GoogleEmulator, token: Path
) -> None:
    board = emu.contacts.add_group("Board")
    maya = emu.contacts.put(
        person(
            "Maya Patel",
            "maya.p@home.example",
            "maya@brightside.example",
            birthdays=[{"date": {"month": 4, "day": 12}}],
            events=[{"type": "anniversary", "date": {"year": 2010, "month": 6, "day": 19}}],
            organizations=[{"name": "Brightside", "title": "CTO", "current": True}],
            memberships=[
                {"contactGroupMembership": {"contactGroupResourceName": board}},
                {
                    "contactGroupMembership": {
                        "contactGroupResourceName": "contactGroups/myContacts"
                    }
                },
            ],
        )
    )
    tom = emu.contacts.put(person("Tom", "tom@y.example"))
    emu.contacts.put(person("No Mail"))
    store = close_after_test(Store.memory())
    out = run_account(store, connector(emu, token))
    assert out.state == "ok", out.error
    assert out.skipped == {NO_EMAIL: 1}
    assert book(store) == {
        "Maya Patel": (
            "maya@brightside.example maya.p@home.example",  # primary first
            "--04-12",
            "2010-06-19",
            "Brightside",
            "CTO",
            '["Board"]',
        ),
        "Tom": ("tom@y.example", None, None, None, None, None),
    }
    calls = sum(emu.calls.values())
    assert run_account(store, connector(emu, token)).added == 0
    assert sum(emu.calls.values()) - calls == 2  # the groups, and the changes since the token
    emu.contacts.delete(tom)
    emu.contacts.put({**person("Maya Patel", "maya@brightside.example"), "resourceName": maya})
    assert run_account(store, connector(emu, token)).state == "ok"
    assert set(book(store)) == {"Maya Patel"}
    assert book(store)["Maya Patel"][0] == "maya@brightside.example"


def test_an_expired_sync_token_lists_everything_again_without_duplicates(
    emu: GoogleEmulator, token: Path
) -> None:
    ids = [emu.contacts.put(person(f"P{i}", f"p{i}@x.example")) for i in range(5)]
    store = close_after_test(Store.memory())
    assert run_account(store, connector(emu, token)).state == "ok"
    emu.contacts.delete(ids[0])
    emu.contacts.put(person("New", "new@x.example"))
    emu.contacts.expire_tokens()
    out = run_account(store, connector(emu, token))
    assert out.state == "ok", out.error
    assert set(book(store)) == {"P1", "P2", "P3", "P4", "New"}
    assert store.counts()["contacts"] == 5


def test_a_listing_cut_short_resumes(emu: GoogleEmulator, token: Path) -> None:
    for i in range(7):
        emu.contacts.put(person(f"P{i}", f"p{i}@x.example"))
    batches = list(connector(emu, token).sync(None))
    assert len(batches) == 4
    for k in range(1, len(batches)):
        store = close_after_test(Store.memory())
        for b in batches[:k]:
            store.apply_batch("gc", "gcontacts", b)
        assert run_account(store, connector(emu, token)).state == "ok"
        assert store.counts()["contacts"] == 7


def test_without_the_contacts_scope_nothing_is_asked(emu: GoogleEmulator, tmp_path: Path) -> None:
    from fakes.google_api import GMAIL_METADATA

    token = write_token(emu, tmp_path / "t.json", (GMAIL_METADATA,))
    out = run_account(close_after_test(Store.memory()), connector(emu, token))
    assert out.state == "auth_required"
    assert out.fix == "keepwarm auth google gc"
    assert not emu.calls  # the missing scope is found before any request
