"""vCard files: the forgiving parser (2.1, 3.0, 4.0, Apple, Google exports) and the connector."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from click.testing import CliRunner
from leakcheck import close_after_test

from keepwarm.connectors.local.vcard import VcardConnector
from keepwarm.connectors.vcard import NO_EMAIL, contacts_of, date_value
from keepwarm.daemon.cli import cli
from keepwarm.daemon.store import Store
from keepwarm.daemon.sync import run_account

V3 = """BEGIN:VCARD
VERSION:3.0
UID:maya-1
FN:Maya Patel
N:Patel;Maya;;;
EMAIL;TYPE=INTERNET:maya.patel@gmail.com
EMAIL;TYPE=INTERNET,pref:Maya@Brightside.io
TEL;TYPE=CELL:+1 555 0100
ADR;TYPE=HOME:;;1 Main St;Springfield;;;
NOTE:met at the conference
BDAY:1985-04-12
ORG:Brightside Inc.;R&D
TITLE:VP Engineering
CATEGORIES:Board,Friends
END:VCARD
"""

V21 = """BEGIN:VCARD
VERSION:2.1
N;CHARSET=UTF-8;ENCODING=QUOTED-PRINTABLE:M=C3=BCller;J=C3=BCrgen;;;
FN;CHARSET=UTF-8;ENCODING=QUOTED-PRINTABLE:J=C3=BCrgen M=C3=BC=
ller
EMAIL;PREF;INTERNET:juergen@example.de
END:VCARD
"""

V4 = """BEGIN:VCARD
VERSION:4.0
UID:urn:uuid:tom-4
FN:Tom
  Nakamura
EMAIL;PREF=2:tom@home.example
EMAIL;PREF=1:tom@work.example
BDAY:--0412
ANNIVERSARY:20100619
END:VCARD
BEGIN:VCARD
VERSION:4.0
KIND:group
FN:Advisors
MEMBER:urn:uuid:tom-4
END:VCARD
"""

APPLE = """BEGIN:VCARD
VERSION:3.0
UID:ann-apple
N:Lee;Ann;;;
EMAIL;type=INTERNET;type=WORK:ann@lee.example
BDAY:1604-07-30
item1.X-ABDATE;type=pref:2004-06-15
item1.X-ABLabel:_$!<Anniversary>!$_
END:VCARD
BEGIN:VCARD
VERSION:3.0
X-ADDRESSBOOKSERVER-KIND:group
FN:Board
X-ADDRESSBOOKSERVER-MEMBER:urn:uuid:ann-apple
END:VCARD
BEGIN:VCARD
VERSION:3.0
FN:No Address
TEL:+1 555 0199
END:VCARD
"""


def one(text: str) -> tuple[list[dict[str, object]], dict[str, int]]:
    contacts, skips = contacts_of(text, "book", "f.vcf")
    return [
        {
            "id": c.provider_id,
            "name": c.name,
            "emails": c.emails,
            "birthday": c.birthday,
            "anniversary": c.anniversary,
            "org": c.organisation,
            "title": c.title,
            "groups": c.groups,
        }
        for c in contacts
    ], skips


def test_vcard_3_keeps_names_addresses_dates_work_and_groups_only() -> None:
    (c,), skips = one(V3)
    assert skips == {}
    assert c == {
        "id": "f.vcf#maya-1",
        "name": "Maya Patel",
        "emails": ("maya@brightside.io", "mayapatel@gmail.com"),  # preferred first; Gmail dots
        "birthday": "1985-04-12",
        "anniversary": None,
        "org": "Brightside Inc.",
        "title": "VP Engineering",
        "groups": ("Board", "Friends"),
    }


def test_vcard_2_1_quoted_printable_with_a_soft_line_break() -> None:
    (c,), _ = one(V21)
    assert c["name"] == "Jürgen Müller"
    assert c["emails"] == ("juergen@example.de",)
    assert str(c["id"]).startswith("f.vcf#nouid-")


def test_vcard_4_folded_lines_pref_numbers_dates_without_year_and_group_cards() -> None:
    (c,), _ = one(V4)
    assert c["name"] == "Tom Nakamura"
    assert c["emails"] == ("tom@work.example", "tom@home.example")
    assert (c["birthday"], c["anniversary"]) == ("--04-12", "2010-06-19")
    assert c["groups"] == ("Advisors",)
    assert c["id"] == "f.vcf#tom-4"


def test_apple_exports_unknown_years_labelled_dates_groups_and_cards_without_email() -> None:
    (c,), skips = one(APPLE)
    assert c["name"] == "Ann Lee"
    assert (c["birthday"], c["anniversary"]) == ("--07-30", "2004-06-15")
    assert c["groups"] == ("Board",)
    assert skips == {NO_EMAIL: 1}


def test_dates_in_the_forms_exports_use() -> None:
    assert date_value("19850412") == "1985-04-12"
    assert date_value("1985-04-12T00:00:00Z") == "1985-04-12"
    assert date_value("--04-12") == "--04-12"
    assert date_value("0000-04-12") == "--04-12"
    assert date_value("1985-13-40") is None
    assert date_value("April 12") is None


def test_garbage_never_raises() -> None:
    for text in ("", "BEGIN:VCARD\nEMAIL", "\x00\x01BEGIN:VCARD\r\nEMAIL:x@y.org\r\n", "END:VCARD"):
        contacts_of(text, "book", "f.vcf")
    contacts, _ = contacts_of("BEGIN:VCARD\nEMAIL:x@y.org\n", "book", "f.vcf")  # no END
    assert [c.emails for c in contacts] == [("x@y.org",)]


def stored(store: Store) -> dict[str, tuple[str, ...]]:
    out: dict[str, list[str]] = {}
    for name, email in store.conn.execute(
        """SELECT c.name, e.email FROM contacts c JOIN contact_emails e ON e.contact = c.id
           ORDER BY c.name, e.position"""
    ):
        out.setdefault(name, []).append(email)
    return {k: tuple(v) for k, v in out.items()}


def test_the_connector_adds_changes_and_removes_contacts(tmp_path: Path) -> None:
    book = tmp_path / "contacts"
    book.mkdir()
    (book / "all.vcf").write_text(V3 + V4)
    (book / "apple.vcf").write_text(APPLE)
    store = close_after_test(Store.memory())
    out = run_account(store, VcardConnector("book", book))
    assert out.state == "ok" and out.added == 3
    assert out.skipped == {NO_EMAIL: 1}
    assert set(stored(store)) == {"Maya Patel", "Tom Nakamura", "Ann Lee"}
    assert run_account(store, VcardConnector("book", book)).added == 0
    (book / "all.vcf").write_text(V3.replace("Brightside Inc.", "Northwind"))
    out = run_account(store, VcardConnector("book", book))
    assert out.deleted == 1  # Tom left the file
    org = store.conn.execute(
        "SELECT organisation, previous_organisation, organisation_since FROM contacts "
        "WHERE name = 'Maya Patel'"
    ).fetchone()
    assert org[0] == "Northwind" and org[1] == "Brightside Inc." and org[2] > 0
    (book / "apple.vcf").unlink()
    run_account(store, VcardConnector("book", book))
    assert set(stored(store)) == {"Maya Patel"}


def test_keepwarm_import_vcard(tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        textwrap.dedent(
            f"""\
            [me]
            name = "Me"
            addresses = ["me@example.com"]
            timezone = "Europe/Berlin"
            [store]
            path = "{tmp_path / "kw.db"}"
            """
        )
    )
    path = tmp_path / "contacts.vcf"
    path.write_text(APPLE)
    res = CliRunner().invoke(cli, ["--config", str(cfg), "import", "vcard", str(path), "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["added"] == 1
