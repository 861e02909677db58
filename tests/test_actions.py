"""Acting from the digest itself, end to end: render the digest, "send" one of its action links
as the user's mail client would (into a maildir, a real Dovecot, the Gmail and the Outlook
emulators' sent mail),
sync, and see the effect; a forged one is rejected and said so."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from email.utils import format_datetime, make_msgid, parseaddr
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from click.testing import CliRunner
from digest_fixtures import facts_of
from fakes.google_api import GoogleEmulator
from fakes.google_world import write_token
from fakes.graph_api import GraphEmulator, recipient
from ms_world import sign_in
from test_imap import Mailbox, server  # noqa: F401  (the Dovecot fixture)

from keepwarm.connectors.base import Address, Batch, MessageMeta
from keepwarm.daemon import actions
from keepwarm.daemon.actions import ActionInbox, Command, Rejected, parse
from keepwarm.daemon.cli import cli
from keepwarm.daemon.config import loads
from keepwarm.daemon.store import Store
from keepwarm.digests.suggest import Suggestion

NOW = datetime.now(UTC).replace(microsecond=0)
_OFFSET = 12 - NOW.hour  # a zone where it is about noon: "today" is today all test long
ZONE = f"Etc/GMT{'-' if _OFFSET >= 0 else '+'}{abs(_OFFSET)}"
CAROL, BOB = "carol@beta.org", "bob@acme.com"
RHYTHM = facts_of("fading")


# -- the command and its tag ----------------------------------------------------------------------
KEY = bytes(range(32))


def test_a_command_round_trips_and_a_changed_one_fails_its_tag() -> None:
    cmd = Command("snooze", "maya@example.com", date(2026, 11, 24), span="1mo")
    subject = cmd.subject(KEY)
    assert subject.startswith("keepwarm: snooze maya@example.com 1mo 2026-11-24 #")
    got, given = parse(subject)
    assert got == cmd and given == actions.tag(KEY, cmd.words())
    forged, given = parse(subject.replace("maya@", "tom@"))
    assert actions.tag(KEY, forged.words()) != given
    assert actions.tag(bytes(32), cmd.words()) != actions.tag(KEY, cmd.words())


def test_merge_takes_the_address_written_after_the_tag() -> None:
    subject = Command("merge", "maya@example.com", date(2026, 11, 24)).subject(KEY)
    assert subject.endswith(" as OTHER@EXAMPLE.COM")
    with pytest.raises(Rejected, match=r"replace OTHER@EXAMPLE\.COM"):
        parse(subject)
    cmd, _tag = parse(subject.replace("OTHER@EXAMPLE.COM", "Maya.P@Gmail.com"))
    assert cmd.other == "mayap@gmail.com"


@pytest.mark.parametrize(
    ("subject", "why"),
    [
        ("keepwarm: done maya@example.com reply_owed 2026-11-24", "no tag"),
        ("keepwarm: done maya reply_owed 2026-11-24 #AAAA", "no valid address"),
        ("keepwarm: done maya@example.com nonsense 2026-11-24 #AAAA", "not a suggestion kind"),
        ("keepwarm: snooze maya@example.com 5y 2026-11-24 #AAAA", "not a command"),
        ("keepwarm: done maya@example.com reply_owed soon #AAAA", "no valid date"),
        ("keepwarm: explode maya@example.com 2026-11-24 #AAAA", "not a command"),
    ],
)
def test_damaged_subjects_are_rejected_with_a_reason(subject: str, why: str) -> None:
    with pytest.raises(Rejected, match=why):
        parse(subject)


def test_links_of_an_item() -> None:
    s = Suggestion(
        kind="reply_owed",
        person_key="maya@example.com",
        person_name="Maya Lopez",
        person_address="maya@example.com",
        action="Reply to Maya",
        reasons=(),
        urgency=1.0,
        score=1.0,
        facts=facts_of("reply_owed", subject="Re: Budget"),
    )
    got = actions.links(s, KEY, "jane@example.com", date(2026, 11, 24))
    labels = [link.label for link in got]
    assert labels == [
        "Done",
        "Not now: 1 week",
        "1 month",
        "3 months",
        "Not useful",
        "Not a person",
        "Same person as…",
        "Reply",
    ]
    assert all(link.href.startswith("mailto:jane@example.com?subject=keepwarm") for link in got[:7])
    assert got[-1].href == "mailto:maya@example.com?subject=Re:%20Budget"


def test_the_key_is_private_and_kept(tmp_path: Path) -> None:
    config = loads(
        f'[me]\nname = "J"\naddresses = ["j@x.org"]\ntimezone = "UTC"\n'
        f'[store]\npath = "{tmp_path}/kw.db"\n'
    )
    key = actions.load_key(config)
    path = actions.key_path(config)
    assert path == tmp_path / "kw.action-key" and (path.stat().st_mode & 0o777) == 0o600
    assert actions.load_key(config) == key and len(key) == 32


# -- end to end ------------------------------------------------------------------------------------
@dataclass
class Mail:
    sender: str
    to: str
    subject: str
    when: datetime
    message_id: str

    def raw(self) -> bytes:
        return (
            f"From: {self.sender}\r\nTo: {self.to}\r\nSubject: {self.subject}\r\n"
            f"Message-ID: {self.message_id}\r\nDate: {format_datetime(self.when)}\r\n"
            "\r\nA body keepwarm never reads.\r\n"
        ).encode()

    def headers(self) -> list[tuple[str, str]]:
        return [
            ("From", self.sender),
            ("To", self.to),
            ("Subject", self.subject),
            ("Message-ID", self.message_id),
            ("Date", format_datetime(self.when)),
        ]


def history(me: str) -> list[tuple[Mail, bool]]:
    """(mail, sent by me): Carol, a relationship, is owed a reply; Bob's weekly contact stopped."""
    out: list[tuple[Mail, bool]] = []
    n = 0

    def add(sender: str, to: str, days: float, subject: str) -> None:
        nonlocal n
        n += 1
        when = NOW - timedelta(days=days)
        out.append((Mail(sender, to, subject, when, f"<h{n}@test.example>"), sender == me))

    add(me, CAROL, 40, "project")
    add(f"Carol Ng <{CAROL}>", me, 39.9, "Re: project")
    add(f"Carol Ng <{CAROL}>", me, 3, "Could you review the budget?")
    for d in range(160, 1, -4):  # the user writes to others all along: their Sent mail is read
        add(me, f"team{d % 3}@gamma.org", d, f"notes {d}")
    for d in range(35 + 7 * 12, 34, -7):
        add(me, BOB, d, f"weekly {d}")
        add(f"Bob Stone <{BOB}>", me, d - 0.05, f"Re: weekly {d}")
    return out


def digest_links(cfg: Path, tmp: Path) -> dict[str, dict[str, str]]:
    """The digest as the user receives it: for each person, the action links by label."""
    out = tmp / "digest.html"
    res = CliRunner().invoke(cli, ["--config", str(cfg), "digest", "--out", str(out)])
    assert res.exit_code == 0, res.output
    page = out.read_text()
    found: dict[str, dict[str, str]] = {}
    for block in page.split('<tr><td style="padding:14px 22px 0 22px;')[1:]:  # one per item
        m = re.search(r"&lt;([^&]+)&gt;", block)
        hrefs = re.findall(r'<a href="([^"]+)"[^>]*>([^<]+)</a>', block)
        if m and hrefs:
            found.setdefault(m.group(1), {}).update(
                {html.unescape(label): html.unescape(href) for href, label in hrefs}
            )
    return found


def compose(href: str, me: str) -> Mail:
    """What a mail client sends for a mailto: link."""
    url = urlsplit(href)
    assert url.scheme == "mailto"
    subject = parse_qs(url.query)["subject"][0]
    return Mail(me, unquote(url.path), subject, NOW, make_msgid(domain="client.example"))


def forge(mail: Mail) -> Mail:
    words = mail.subject.split()
    words[2] = BOB  # the same command for someone else, with the tag it carried
    return Mail(mail.sender, mail.to, " ".join(words), mail.when, make_msgid(domain="evil.example"))


def run(cfg: Path, *args: str) -> str:
    res = CliRunner().invoke(cli, ["--config", str(cfg), *args], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return res.output


def kinds(cfg: Path, key: str) -> set[str]:
    data = json.loads(run(cfg, "digest", "--json"))
    return {s["kind"] for s in data["suggestions"] if s["person"]["key"] == key}


def counts(cfg: Path) -> tuple[int, int]:
    store = Store.open(cfg.parent / "kw.db")
    try:
        c = store.counts()
        return c["messages"], c["addresses"]
    finally:
        store.close()


class Source:
    """Where the user's mail lives: history goes in, sent action mails are added later."""

    me: str

    def config(self) -> str:
        raise NotImplementedError

    def put(self, mail: Mail, sent: bool) -> None:
        raise NotImplementedError


def act_and_check(source: Source, tmp: Path, extra_config: str = "") -> None:
    me = source.me
    for mail, sent in history(me):
        source.put(mail, sent)
    cfg = tmp / "config.toml"
    cfg.write_text(
        source.config()
        + f'\n[store]\npath = "{tmp / "kw.db"}"\n[delivery]\noutbox = "{tmp / "out"}"\n'
        + extra_config
    )
    text = cfg.read_text().replace('timezone = "Europe/Berlin"', f'timezone = "{ZONE}"')
    cfg.write_text(text)
    run(cfg, "sync")
    assert "reply_owed" in kinds(cfg, CAROL) and "fading" in kinds(cfg, BOB)
    before = counts(cfg)

    links = digest_links(cfg, tmp)
    done = compose(links[CAROL]["Done"], me)
    assert done.to == me and done.subject.startswith("keepwarm: done carol@beta.org reply_owed")
    source.put(done, True)
    source.put(forge(done), True)
    run(cfg, "sync")

    assert "reply_owed" not in kinds(cfg, CAROL)
    assert "fading" in kinds(cfg, BOB)  # the forged "done" for Bob changed nothing
    assert counts(cfg) == before  # neither mail is stored: no interaction, no new address
    found = json.loads(run(cfg, "decisions", "--all", "--json"))
    applied = [d for d in found if d["state"] == "active"]
    rejected = [d for d in found if d["state"] == "rejected"]
    assert [(d["verb"], d["person"], d["source"]) for d in applied] == [("done", CAROL, "mail")]
    assert len(rejected) == 1 and "tag does not match" in rejected[0]["reason"]
    digest = run(cfg, "digest")
    assert "done: reply to Carol, today" in digest
    assert "not applied: an action mail of today: its tag does not match" in digest

    # not now, one week, for Bob; sent again: applied once
    snooze = compose(links[BOB]["Not now: 1 week"], me)
    source.put(snooze, True)
    run(cfg, "sync")
    source.put(compose(links[BOB]["Not now: 1 week"], me), True)
    run(cfg, "sync")
    assert not kinds(cfg, BOB)
    snoozes = json.loads(run(cfg, "snooze", "--list", "--json"))
    assert len(snoozes) == 1 and snoozes[0]["until"].startswith(
        (NOW + timedelta(weeks=1)).date().isoformat()
    )


def test_maildir_sent_folder(tmp_path: Path) -> None:
    act_and_check(MaildirSource(tmp_path / "Mail"), tmp_path)


def test_maildir_without_stored_subjects(tmp_path: Path) -> None:
    """[privacy] store_subjects = false: the command is still read, and nothing is stored."""
    act_and_check(MaildirSource(tmp_path / "Mail"), tmp_path, "[privacy]\nstore_subjects = false\n")
    store = Store.open(tmp_path / "kw.db")
    assert (
        store.conn.execute("SELECT count(*) FROM messages WHERE subject IS NOT NULL").fetchone()[0]
        == 0
    )
    store.close()


def test_imap_sent_folder_on_dovecot(server: Any, tmp_path: Path) -> None:  # noqa: F811
    box = Mailbox(server, tmp_path)
    try:
        act_and_check(ImapSource(box), tmp_path)
    finally:
        box.close()


@pytest.fixture
def emu() -> Iterator[GoogleEmulator]:
    with GoogleEmulator(address="jane@example.com") as e:
        yield e
        e.check()


def test_gmail_sent_mail_on_the_emulator(emu: GoogleEmulator, tmp_path: Path) -> None:
    act_and_check(GmailSource(emu, tmp_path), tmp_path)


@pytest.fixture
def graph() -> Iterator[GraphEmulator]:
    with GraphEmulator(user="jane@contoso.test") as e:
        yield e


def test_outlook_sent_items_on_the_emulator(graph: GraphEmulator, tmp_path: Path) -> None:
    act_and_check(OutlookSource(graph, tmp_path), tmp_path)


def test_not_a_person_and_same_person_as_from_the_digest(tmp_path: Path) -> None:
    source = MaildirSource(tmp_path / "Mail")
    for mail, sent in history(source.me):
        source.put(mail, sent)
    other = Mail(
        "Bob Stone <bob.stone@gmail.com>", source.me, "hi", NOW - timedelta(days=50), "<o1@x>"
    )
    source.put(other, False)
    source.put(
        Mail(source.me, "bob.stone@gmail.com", "Re: hi", NOW - timedelta(days=49), "<o2@x>"), True
    )
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        source.config() + f'\n[store]\npath = "{tmp_path / "kw.db"}"\n'
        f'[delivery]\noutbox = "{tmp_path / "out"}"\n'
    )
    run(cfg, "sync")
    links = digest_links(cfg, tmp_path)
    same = compose(links[BOB]["Same person as…"], source.me)
    source.put(same, True)  # sent without replacing the placeholder: rejected, said why
    same.subject = same.subject.replace("OTHER@EXAMPLE.COM", "bob.stone@gmail.com")
    same.message_id = make_msgid(domain="client.example")
    source.put(same, True)
    source.put(compose(links[CAROL]["Not a person"], source.me), True)
    run(cfg, "sync")
    people = {r["key"]: r for r in json.loads(run(cfg, "people", "--json"))}
    assert CAROL not in people
    assert set(people[BOB]["addresses"]) == {BOB, "bobstone@gmail.com"}
    found = json.loads(run(cfg, "decisions", "--all", "--json"))
    assert [d["verb"] for d in found if d["state"] == "active"] == ["merge", "ignore"]
    [bad] = [d for d in found if d["state"] == "rejected"]
    assert "OTHER@EXAMPLE.COM" in bad["reason"]


def test_a_mail_not_from_me_is_rejected_even_with_a_good_tag(tmp_path: Path) -> None:
    config = loads(
        f'[me]\nname = "J"\naddresses = ["me@example.com"]\ntimezone = "UTC"\n'
        f'[store]\npath = "{tmp_path}/kw.db"\n'
    )
    store = Store.open(config.store_path)
    subject = Command("ignore", "carol@beta.org", date(2026, 11, 24)).subject(
        actions.load_key(config)
    )
    msg = MessageMeta(
        account="a",
        provider_id="1",
        date=NOW,
        sender=Address("someone@else.example"),
        to=(Address("me@example.com"),),
        message_id="<f@x>",
        subject=subject,
    )
    batch = Batch(messages=[msg])
    ActionInbox(config, store)(batch)
    assert batch.messages == []
    row = store.conn.execute("SELECT state, reason FROM decisions").fetchone()
    assert row[0] == "rejected" and "not sent from one of your addresses" in row[1]
    store.close()


# -- sources ---------------------------------------------------------------------------------------
class MaildirSource(Source):
    me = "me@example.com"

    def __init__(self, root: Path) -> None:
        self.root = root
        self.n = 0

    def config(self) -> str:
        return (
            f'[me]\nname = "Jane"\naddresses = ["{self.me}"]\ntimezone = "{ZONE}"\n'
            f'[[accounts]]\nname = "mail"\nkind = "maildir"\npath = "{self.root}"\n'
        )

    def put(self, mail: Mail, sent: bool) -> None:
        from localmail import write_maildir_message

        self.n += 1
        folder = self.root / ".Sent" if sent else self.root
        write_maildir_message(folder, f"{self.n}.{abs(hash(mail.message_id))}:2,S", mail.raw())


class ImapSource(Source):
    me = "me@example.org"

    def __init__(self, box: Mailbox) -> None:
        self.box = box

    def config(self) -> str:
        return self.box.config_text()

    def put(self, mail: Mail, sent: bool) -> None:
        folder = "Sent" if sent else "INBOX"
        self.box.ensure(folder)
        self.box.admin.append(folder, mail.raw(), msg_time=mail.when)


class GmailSource(Source):
    me = "jane@example.com"

    def __init__(self, emu: GoogleEmulator, tmp: Path) -> None:
        self.emu = emu
        self.token = write_token(emu, tmp / "google.json")
        self.threads: dict[str, str] = {}

    def config(self) -> str:
        return (
            f'[me]\nname = "Jane"\naddresses = ["{self.me}"]\ntimezone = "{ZONE}"\n'
            f'[[accounts]]\nname = "gmail"\nkind = "gmail"\ntoken_file = "{self.token}"\n'
            f'api_endpoint = "{self.emu.api_endpoint}"\ntoken_uri = "{self.emu.token_uri}"\n'
            'timeout = "5s"\n'
        )

    def put(self, mail: Mail, sent: bool) -> None:
        to_me = mail.to == self.me
        labels = ({"SENT"} | ({"INBOX"} if to_me else set())) if sent else {"INBOX"}
        topic = mail.subject.removeprefix("Re: ")  # Gmail threads a reply with its message
        msg = self.emu.mailbox.add(
            mail.headers(),
            labels=labels,
            internal_ms=int(mail.when.timestamp() * 1000),
            thread_id=self.threads.get(topic),
        )
        self.threads.setdefault(topic, msg.thread_id)


class OutlookSource(Source):
    """Microsoft 365 through Graph (Mail.ReadBasic): the action mail lands in Sent Items."""

    me = "jane@contoso.test"

    def __init__(self, emu: GraphEmulator, tmp: Path) -> None:
        self.emu = emu
        self.token = tmp / "tokens" / "office.json"
        sign_in(emu, self.token, calendar=False)
        self.threads: dict[str, str] = {}

    def config(self) -> str:
        e = self.emu
        return (
            f'[me]\nname = "Jane"\naddresses = ["{self.me}"]\ntimezone = "{ZONE}"\n'
            f'[[accounts]]\nname = "office"\nkind = "microsoft"\nclient_id = "{e.client_id}"\n'
            f'tenant = "{e.tenant}"\ncalendar = false\nauthority_host = "{e.url}"\n'
            f'graph_endpoint = "{e.graph_endpoint}"\ntoken_file = "{self.token}"\n'
            'timeout = "5s"\n'
        )

    def put(self, mail: Mail, sent: bool) -> None:
        name, address = parseaddr(mail.sender)
        topic = mail.subject.removeprefix("Re: ")  # Outlook keeps a reply in its conversation
        mid = self.emu.add_message(
            "sentitems" if sent else "inbox",
            sender=address,
            to=[parseaddr(mail.to)[1]],
            subject=mail.subject,
            sent=mail.when,
            message_id=mail.message_id,
            conversation=self.threads.get(topic),
        )
        with self.emu.lock:
            msg = self.emu.messages[mid]
            msg["from"] = msg["sender"] = recipient(address, name)
        self.threads.setdefault(topic, msg["conversationId"])


def test_every_connector_keeps_an_action_subject_when_subjects_are_off() -> None:
    """Outlook (Graph) and header-based sources alike: only the command survives."""
    from keepwarm.connectors.headers import message_from_headers
    from keepwarm.connectors.microsoft.records import message_from_graph

    subject = Command("ignore", "x@y.org", date(2026, 11, 24)).subject(KEY)
    for text, kept in ((subject, subject), ("Lunch on Friday?", None)):
        item = {
            "id": "1",
            "subject": text,
            "from": {"emailAddress": {"address": "me@example.com"}},
            "toRecipients": [{"emailAddress": {"address": "me@example.com"}}],
            "sentDateTime": "2026-11-24T08:00:00Z",
        }
        graph = message_from_graph(item, account="o", folder="sentitems", keep_subject=False)
        assert not isinstance(graph, str) and graph.subject == kept
        headers = {
            "from": ["me@example.com"],
            "to": ["me@example.com"],
            "subject": [text],
            "date": ["Tue, 24 Nov 2026 08:00:00 +0000"],
        }
        mail = message_from_headers(headers, account="m", provider_id="1", keep_subject=False)
        assert not isinstance(mail, str) and mail.subject == kept


def test_only_mailto_links_are_rendered() -> None:
    from keepwarm.digests.render import DigestModel, render

    s = actions.links(
        Suggestion(
            "fading", "a@b.org", "A B", "a@b.org", "Check in with A", (), 1.0, 1.0, facts=RHYTHM
        ),
        KEY,
        "me@example.com",
        date(2026, 11, 24),
    )
    model = DigestModel(
        local_date=date(2026, 11, 24),
        generated_at=NOW,
        zone="UTC",
        owner_name="Jane",
        suggestions=[
            Suggestion(
                "fading", "a@b.org", "A B", "a@b.org", "Check in with A", (), 1.0, 1.0, facts=RHYTHM
            )
        ],
        links=[[(s[0].label, s[0].href), ("Evil", "javascript:alert(1)")]],
    )
    page = render(model).html
    assert s[0].href.replace("&", "&amp;") in page and "javascript:" not in page


def test_doctor_fails_a_readable_action_key(tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        f'[me]\nname = "J"\naddresses = ["j@x.org"]\ntimezone = "UTC"\n'
        f'[store]\npath = "{tmp_path}/kw.db"\n'
    )
    key = actions.key_path(loads(cfg.read_text()))
    actions.load_key(loads(cfg.read_text()))
    key.chmod(0o644)
    res = CliRunner().invoke(cli, ["--config", str(cfg), "doctor", "--json"])
    checks = {c["name"]: c for c in json.loads(res.output)["checks"]}
    assert not checks["permissions of action key"]["ok"]
    assert checks["permissions of action key"]["fix"] == f"chmod 600 {key}"
