"""Outlook contacts through Graph (``contacts = true``), against the emulator with real msal."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fakes.graph_api import GraphEmulator
from leakcheck import close_after_test
from ms_world import ACCOUNT, auth_for, sign_in

from keepwarm.connectors.microsoft.account import MicrosoftConnector, Options, make_client
from keepwarm.connectors.vcard import NO_EMAIL
from keepwarm.daemon.store import Store
from keepwarm.daemon.sync import run_account


@pytest.fixture
def emu() -> Iterator[GraphEmulator]:
    with GraphEmulator() as e:
        yield e


def connector(emu: GraphEmulator, token: Path, *, contacts: bool = True) -> MicrosoftConnector:
    auth = auth_for(emu, token, mail=False, calendar=True, contacts=contacts)
    client = make_client(auth, graph_endpoint=emu.graph_endpoint, timeout=timedelta(seconds=5))
    options = Options(mail=False, calendar=False, contacts=contacts, me=(emu.user,))
    return MicrosoftConnector(ACCOUNT, client, options)  # its sync closes the client


def book(store: Store) -> dict[str, tuple[object, ...]]:
    rows = store.conn.execute(
        """SELECT c.name,
                  (SELECT group_concat(email, ' ') FROM (SELECT email FROM contact_emails
                    WHERE contact = c.id ORDER BY position)),
                  c.birthday, c.organisation, c.title, c.groups
           FROM contacts c"""
    ).fetchall()
    return {r[0]: tuple(r[1:]) for r in rows}


def test_contacts_from_every_folder_then_changes_and_deletions(
    emu: GraphEmulator, tmp_path: Path
) -> None:
    token = tmp_path / "t.json"
    sign_in(emu, token, mail=False, calendar=True, contacts=True)
    emu.default_page = 2
    maya = emu.add_contact(
        displayName="Maya Patel",
        emailAddresses=["maya@brightside.example", "maya@home.example"],
        birthday="1985-04-12T11:59:00Z",
        companyName="Brightside",
        jobTitle="CTO",
        categories=["Board"],
    )
    tom = emu.add_contact(displayName="Tom", emailAddresses=["tom@y.example"])
    emu.add_contact(displayName="No Mail", emailAddresses=[])
    board = emu.add_contact_folder("Board members")
    emu.add_contact(board, displayName="Ann Lee", emailAddresses=["ann@lee.example"])
    store = close_after_test(Store.memory())
    out = run_account(store, connector(emu, token))
    assert out.state == "ok", out.error
    assert out.skipped == {NO_EMAIL: 1}
    assert book(store) == {
        "Maya Patel": (
            "maya@brightside.example maya@home.example",
            "1985-04-12",
            "Brightside",
            "CTO",
            '["Board"]',
        ),
        "Tom": ("tom@y.example", None, None, None, None),
        "Ann Lee": ("ann@lee.example", None, None, None, None),
    }
    assert "businessPhones" not in emu.selected and "personalNotes" not in emu.selected
    emu.delete_contact(tom)
    emu.update_contact(maya, companyName="Northwind")
    assert run_account(store, connector(emu, token)).state == "ok"
    assert set(book(store)) == {"Maya Patel", "Ann Lee"}
    assert book(store)["Maya Patel"][2] == "Northwind"
    emu.delete_contact_folder(board)
    assert run_account(store, connector(emu, token)).state == "ok"
    assert set(book(store)) == {"Maya Patel"}


def test_an_expired_delta_reads_the_folder_again_and_removes_what_is_gone(
    emu: GraphEmulator, tmp_path: Path
) -> None:
    token = tmp_path / "t.json"
    sign_in(emu, token, mail=False, calendar=True, contacts=True)
    ids = [
        emu.add_contact(displayName=f"P{i}", emailAddresses=[f"p{i}@x.example"]) for i in range(4)
    ]
    store = close_after_test(Store.memory())
    assert run_account(store, connector(emu, token)).state == "ok"
    emu.expire_tokens()
    emu.delete_contact(ids[0])
    out = run_account(store, connector(emu, token))
    assert out.state == "ok", out.error
    assert set(book(store)) == {"P1", "P2", "P3"}


def test_contacts_are_off_unless_asked_for(emu: GraphEmulator, tmp_path: Path) -> None:
    token = tmp_path / "t.json"
    sign_in(emu, token, mail=False, calendar=True)
    emu.add_contact(displayName="Tom", emailAddresses=["tom@y.example"])
    store = close_after_test(Store.memory())
    assert run_account(store, connector(emu, token, contacts=False)).state == "ok"
    assert store.counts()["contacts"] == 0 and emu.routes["contactFolders"] == 0
    assert "Contacts.Read" not in emu.consented
