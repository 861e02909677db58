"""What real mail does that a synthetic year does not, on small generated mailboxes.

Each test writes raw header blocks as a mail client files them, reads them through the shared
header parser (so markers, Sent folders and display names come as in an import), stores them and
runs identity and the engine through the daemon's ``build_report``. The evaluation on the real
mailboxes is ``bench/quality.py``; these pin the rules it led to.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
from leakcheck import close_after_test

from keepwarm.connectors.base import Batch, EventMeta, MessageMeta
from keepwarm.connectors.headers import message_from_headers, parse_header_block
from keepwarm.daemon import config as cfgmod
from keepwarm.daemon.config import Config
from keepwarm.daemon.identity import resolve
from keepwarm.daemon.network import build_report
from keepwarm.daemon.store import Store
from keepwarm.digests.cadence import NetworkReport

ME = "greg.whalley@acme.com"
NOW = datetime(2025, 6, 2, 12, 0, tzinfo=UTC)
ANN, BOB, CY = "ann.lee@acme.com", "bob.stone@beta.org", "cy@gamma.net"


class Mailbox:
    """Raw header blocks, filed in folders, parsed as the connectors parse them."""

    def __init__(self) -> None:
        self.items: list[MessageMeta] = []

    def mail(
        self,
        sender: str,
        to: str | list[str],
        days_ago: float,
        subject: str,
        *,
        folder: str = "inbox",
        cc: list[str] = (),  # type: ignore[assignment]
        extra: str = "",
    ) -> MessageMeta:
        n = len(self.items)
        to_list = [to] if isinstance(to, str) else to
        head = (
            f"Message-ID: <m{n}@x>\n"
            f"Date: {format_datetime(NOW - timedelta(days=days_ago))}\n"
            f"From: {sender}\n"
            f"To: {', '.join(to_list)}\n"
            + (f"Cc: {', '.join(cc)}\n" if cc else "")
            + f"Subject: {subject}\n{extra}\n"
        )
        meta = message_from_headers(
            parse_header_block(head.encode()),
            account="a",
            provider_id=f"{folder}/{n}",
            folder=folder,
        )
        assert isinstance(meta, MessageMeta), meta
        self.items.append(meta)
        return meta

    def exchange(self, who: str, days_ago: float, subject: str) -> None:
        self.mail(ME, who, days_ago, subject, folder="sent")
        self.mail(who, ME, days_ago - 0.1, "Re: " + subject)

    def daily_life(self, days: int = 200) -> None:
        """What a complete mailbox shows besides: my mail to others and a newsletter, daily."""
        for d in range(1, days):
            self.mail(ME, "notes@lists.example.org", d + 0.5, f"note {d}", folder="sent")
            self.mail("news@shop.example", ME, d + 0.4, f"news {d}", extra="List-Id: <news.shop>\n")


def setup(
    tmp_path: Path,
    box: Mailbox,
    me: str = "",
    events: list[EventMeta] = (),  # type: ignore[assignment]
) -> tuple[Store, Config]:
    """The store and a config; ``me``: more lines of the [me] table."""
    store = close_after_test(Store.open(tmp_path / "kw.db"))
    store.apply_batch("a", "maildir", Batch(messages=box.items, events=list(events)))
    path = tmp_path / "config.toml"
    path.write_text(
        f'[me]\nname = "Greg Whalley"\naddresses = ["{ME}"]\ntimezone = "UTC"\n{me}\n'
        f'[store]\npath = "{tmp_path / "kw.db"}"\n'
    )
    return store, cfgmod.load(path)


def report(tmp_path: Path, box: Mailbox, me: str = "", **kw: object) -> NetworkReport:
    store, config = setup(tmp_path, box, me, **kw)  # type: ignore[arg-type]
    try:
        return build_report(config, store, NOW)
    finally:
        store.close()


def kinds(r: NetworkReport, key: str) -> set[str]:
    return {s.kind for s in r.signals if s.person_key == key}


# -- 1. reply owed ----------------------------------------------------------------------------------
def test_a_direct_question_from_a_colleague_is_owed_and_outranks_a_strangers_older_note(
    tmp_path: Path,
) -> None:
    box = Mailbox()
    box.daily_life()
    for d in (80, 60, 40):
        box.exchange(ANN, d, f"plan {d}")
    box.mail(ANN, ME, 3, "Can you review the budget?")
    box.mail("pat.doe@delta.org", ME, 20, "Introduction")
    r = report(tmp_path, box)
    owed = {s.person_key: s for s in r.signals if s.kind == "reply_owed"}
    assert ANN in owed and owed[ANN].facts.asks is True
    assert owed[ANN].urgency > owed["pat.doe@delta.org"].urgency


@pytest.mark.parametrize(
    ("sender", "subject", "headers"),
    [
        ("deals@shop.example", "Save up to 60% on flights!", ""),  # marketing, no List-Id
        ("offers@shop.example", "Your account", "Errors-To: bounce@shop.example\n"),
        ("42.8997.6e-2aajoy2t2bp.1@e-mailprograms.delta.example", "Fares", ""),  # generated
        ("service@bank.example", "Statement", ""),  # a role mailbox
        ("cy@gamma.net", "FW: the article", ""),  # an FYI forward
        ("cy@gamma.net", "FYI: the numbers", ""),
        ("cy@gamma.net", "Thanks!", ""),  # a thank-you note
        ("cy@gamma.net", "Lunch today", ""),  # about a day that is over
        ("cy@gamma.net", "Out of Office AutoReply: Plan", ""),  # an auto-reply without headers
        ("cy@gamma.net", "Gerald Nemec is out of office thru Monday", ""),  # an absence notice
        # a sender named after its domain, an address made of the organisation's name
        ('"TD Waterhouse" <theindividualinvestor@tdwaterhouse.com>', "Individual Investor", ""),
        ("phoenix@equiserve.com", "Sale of Book-Entry Shares - 9353609849004177", ""),  # a notice
    ],
)
def test_mail_that_asks_nothing_is_no_reply_owed(
    tmp_path: Path, sender: str, subject: str, headers: str
) -> None:
    box = Mailbox()
    box.daily_life()
    box.mail(sender, ME, 4, subject, extra=headers)
    r = report(tmp_path, box)
    assert not [s for s in r.signals if s.kind == "reply_owed"]


@pytest.mark.parametrize(
    "sender",
    [
        '"John Smith" <john@johnsmith.com>',  # a person at their own domain
        '"Vipul Ved Prakash" <mail@vipul.net>',
        '"Sidney Markowitz" <sidney@sidney.com>',
        '"Smith, Ann" <ann.smith@smith-partners.com>',
    ],
)
def test_people_at_their_own_domains_are_still_people(tmp_path: Path, sender: str) -> None:
    box = Mailbox()
    box.daily_life()
    box.mail(sender, ME, 4, "Can we meet next week?")
    r = report(tmp_path, box)
    assert [s for s in r.signals if s.kind == "reply_owed"]


def test_a_reply_owed_needs_the_thread_to_end_with_it_and_me_to_be_silent_since(
    tmp_path: Path,
) -> None:
    box = Mailbox()
    box.daily_life()
    box.mail(ANN, ME, 6, "Budget")  # answered in another thread: she heard from me since
    box.mail(ME, ANN, 2, "Numbers for you", folder="sent")
    box.mail(BOB, [ME, CY], 6, "Offsite")  # the thread went on without me
    box.mail(CY, [BOB, ME], 5, "Re: Offsite")
    r = report(tmp_path, box)
    assert "reply_owed" not in kinds(r, ANN) | kinds(r, BOB)


def test_someone_who_only_keeps_me_informed_is_owed_nothing_unless_they_chase(
    tmp_path: Path,
) -> None:
    box = Mailbox()
    box.daily_life()
    box.mail(BOB, ME, 20, "Weekly report 1")
    box.mail(BOB, ME, 13, "Weekly report 2")
    box.mail(BOB, ME, 6, "Weekly report 3")
    box.mail(ME, CY, 10, "Proposal", folder="sent")
    box.mail(CY, ME, 9, "Re: Proposal")
    box.mail(CY, ME, 5, "Re: Proposal")  # she followed up: now she waits for me
    r = report(tmp_path, box)
    assert "reply_owed" not in kinds(r, BOB)
    assert "reply_owed" in kinds(r, CY)


@pytest.mark.parametrize(("subject", "owed"), [("Issues", False), ("Can you approve it?", True)])
def test_one_way_mail_from_someone_i_never_write_to_asks_only_by_its_subject(
    tmp_path: Path, subject: str, owed: bool
) -> None:
    """Bob copies me on the team's threads and writes to me once directly; I have never written
    to him: his direct mail keeps me informed, unless its subject asks. His first mail ever
    would have been owed (test_a_direct_question_from_a_colleague...)."""
    box = Mailbox()
    box.daily_life()
    box.exchange(CY, 40, "team")
    box.mail(BOB, [CY], 30, "Status", cc=[ME])
    box.mail(BOB, ME, 6, subject)
    r = report(tmp_path, box)
    assert ("reply_owed" in kinds(r, BOB)) is owed


def test_no_reply_is_claimed_where_my_own_mail_is_not_visible(tmp_path: Path) -> None:
    """An archive without a Sent folder for that time: the answer may be where keepwarm
    cannot see, so nothing is claimed; with my mail visible, the same message is owed."""
    box = Mailbox()
    box.mail(ANN, ME, 4, "Can you call me?")
    assert not [s for s in report(tmp_path / "a", box).signals if s.kind == "reply_owed"]
    box.daily_life()
    assert "reply_owed" in kinds(report(tmp_path / "b", box), ANN)


# -- 2. follow up (awaiting their reply) -----------------------------------------------------------
@pytest.mark.parametrize(
    "subject",
    ["Re: your question", "FW: the deck", "Declined: Staff meeting", "Thanks for lunch"],
)
def test_follow_up_only_for_threads_I_started_with_a_relationship(
    tmp_path: Path, subject: str
) -> None:
    box = Mailbox()
    box.daily_life()
    box.exchange(ANN, 60, "intro")
    box.mail(ME, ANN, 12, subject, folder="sent")  # an answer, a forward, a decline, a thanks
    box.mail(ME, BOB, 12, "Can we meet?", folder="sent")  # a stranger: no relationship
    r = report(tmp_path, box)
    assert not [s for s in r.signals if s.kind == "awaiting_reply"]


def test_follow_up_on_my_own_question_to_a_relationship(tmp_path: Path) -> None:
    box = Mailbox()
    box.daily_life()
    box.exchange(ANN, 60, "intro")
    box.mail(ME, ANN, 12, "Can we meet?", folder="sent")
    assert "awaiting_reply" in kinds(report(tmp_path, box), ANN)


# -- 3. broadcasts and lists without list headers ---------------------------------------------------
def test_broadcasts_and_list_posts_are_no_touches(tmp_path: Path) -> None:
    box = Mailbox()
    box.daily_life()
    for d in range(5, 60, 5):
        box.mail(BOB, BOB, d, f"Newsletter {d}")  # the sender the only visible recipient
        box.mail(CY, "undisclosed-recipients:;", d, f"Update {d}")
        box.mail(ANN, ["gardeners@yahoogroups.com", ME], d, f"[gardeners] tip {d}")
    r = report(tmp_path, box)
    assert not r.signals
    assert not [p for p in r.people if p.two_way]
    store, config = setup(tmp_path / "i", box)
    ident = resolve(store, config)
    store.close()
    assert ident.people[ident.person_of["gardeners@yahoogroups.com"]].kind == "list"


# -- 4. delegates ------------------------------------------------------------------------------------
def test_an_assistants_mail_in_my_sent_folder_is_mine(tmp_path: Path) -> None:
    box = Mailbox()
    box.daily_life()
    box.mail("Liz Taylor <liz.taylor@acme.com>", ME, 30, "Your week")  # she writes to me too
    box.mail(BOB, ME, 6, "Can Greg meet on Friday?")
    box.mail("liz.taylor@acme.com", BOB, 5, "Re: Can Greg meet on Friday?", folder="sent")
    r = report(tmp_path, box)
    assert "reply_owed" not in kinds(r, BOB)  # answered by the assistant
    assert r.person("liz.taylor@acme.com") is None  # never a relationship or a suggestion
    store, config = setup(tmp_path / "i", box)
    assert resolve(store, config).people[ME].kind == "self"
    assert "liz.taylor@acme.com" in resolve(store, config).self_addresses
    store.close()


def test_configured_delegates_are_me(tmp_path: Path) -> None:
    box = Mailbox()
    box.daily_life()
    box.mail(BOB, ME, 6, "Can Greg meet on Friday?")
    box.mail("pa@acme.com", BOB, 5, "Re: Can Greg meet on Friday?")  # not in my Sent folder
    r = report(tmp_path, box, 'delegates = ["pa@acme.com"]')
    assert "reply_owed" not in kinds(r, BOB)
    assert r.person("pa@acme.com") is None


# -- 5. copies with a time shift --------------------------------------------------------------------
def test_a_copy_filed_with_its_date_shifted_by_hours_is_one_message(tmp_path: Path) -> None:
    box = Mailbox()
    box.mail(BOB, ME, 3, "Plan")
    copy = box.mail(BOB, ME, 3 - 10 / 24, "Plan", folder="archive")  # 10 hours later
    store, _config = setup(tmp_path, box)
    (n,) = store.conn.execute("SELECT count(*) FROM messages").fetchone()
    (date,) = store.conn.execute("SELECT date FROM messages").fetchone()
    assert n == 1 and date < int(copy.date.timestamp())  # the earlier date is kept
    store.close()


def test_a_person_in_cc_and_bcc_counts_once(tmp_path: Path) -> None:
    box = Mailbox()
    box.daily_life()
    box.mail(ME, [ANN], 3, "Plan", folder="sent", cc=[BOB], extra=f"Bcc: {BOB}\n")
    box.mail(BOB, ME, 2, "Re: Plan")
    r = report(tmp_path, box)
    bob = r.person(BOB)
    assert bob is not None and bob.messages_out == 1


# -- 6. what a relationship is ---------------------------------------------------------------------
def test_once_two_way_direct_mail_either_way_is_contact(tmp_path: Path) -> None:
    box = Mailbox()
    box.daily_life()
    box.exchange(BOB, 150, "first")
    for d in range(140, 10, -10):  # direct mail in threads of its own, never answered inside
        box.mail(BOB, ME, d, f"idea {d}")
        box.mail(ME, BOB, d - 3, f"thought {d}", folder="sent")
    r = report(tmp_path, box)
    bob = r.person(BOB)
    assert bob is not None and bob.contact_days >= 27
    assert bob.typical_gap_days is not None  # a rhythm learnt from the history


# -- 7. names and merges ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "x_from",
    [
        "Stone, Bob </O=BETA/OU=NA/CN=BSTONE>",  # an Exchange DN
        "Bob Stone <Bob Stone/HOU/BETA@BETA>",  # a Notes name in brackets, "@" and all
    ],
)
def test_display_names_come_from_archives_that_keep_them_apart(tmp_path: Path, x_from: str) -> None:
    box = Mailbox()
    box.daily_life()
    box.mail(BOB, ME, 3, "Hello", extra=f"X-From: {x_from}\n")
    box.mail(ME, BOB, 2, "Re: Hello", folder="sent")
    r = report(tmp_path, box)
    assert r.person(BOB).name == "Bob Stone"  # type: ignore[union-attr]


def test_an_address_written_as_its_own_name_is_a_person_without_a_name(tmp_path: Path) -> None:
    """Outlook and archives write ``"'bob.stone@beta.org'" <bob.stone@beta.org>``: that is no
    name (and not "the name of a service", which made every such colleague a robot)."""
    box = Mailbox()
    box.daily_life()
    quoted = f"\"'{BOB}'\" <{BOB}>, \"'{CY}'\" <{CY}>"
    box.mail(ANN, [BOB, CY, ME], 3, "Press release", extra=f"X-To: {quoted}\n")
    box.mail(f"\"'{BOB}'\" <{BOB}>", ME, 2, "Can we talk?")
    store, config = setup(tmp_path, box)
    ident = resolve(store, config)
    store.close()
    for who in (BOB, CY):
        person = ident.people[ident.person_of[who]]
        assert person.kind == "person", person
    assert "@" not in ident.people[ident.person_of[BOB]].name


def test_an_answer_from_another_address_of_the_same_person_closes_the_loop(
    tmp_path: Path,
) -> None:
    box = Mailbox()
    box.daily_life()
    box.mail(ME, "Bob Stone <bob.stone@beta.org>", 12, "Can we meet?", folder="sent")
    box.mail("Bob Stone <bob@home.example>", ME, 10, "Re: Can we meet?")
    box.exchange(BOB, 60, "intro")
    r = report(tmp_path, box)
    assert "awaiting_reply" not in kinds(r, BOB)


# -- 8. subjects -----------------------------------------------------------------------------------
def test_advice_is_never_built_on_a_meaningless_or_stale_subject(tmp_path: Path) -> None:
    box = Mailbox()
    box.daily_life(300)
    for d in range(290, 150, -7):
        box.exchange(BOB, d, "Q3 launch" if d > 200 else "hi")
    r = report(tmp_path, box)
    fading = [s for s in r.signals if s.person_key == BOB and s.kind in ("fading", "dormant")]
    assert fading and all(s.facts.topic is None for s in fading)


# -- 10. calendars ---------------------------------------------------------------------------------
def test_rooms_lists_and_unanswered_invitations_are_no_meetings(tmp_path: Path) -> None:
    from keepwarm.connectors.base import Address, Attendee

    def event(n: int, attendees: list[Attendee], mine: str = "accepted") -> EventMeta:
        start = NOW - timedelta(days=n)
        return EventMeta(
            account="a",
            provider_id=f"e{n}",
            start=start,
            end=start + timedelta(hours=1),
            organizer=Address("ext@partner.example"),  # an organiser from outside
            attendees=(Attendee(ME, response=mine, is_self=True), *attendees),
            my_response=mine,  # type: ignore[arg-type]
        )

    events = [
        event(3, [Attendee("DL-GA-all@acme.com", "DL-GA-all")]),
        event(4, [Attendee("c_123@resource.calendar.google.com", "Room 1")]),
        event(5, [Attendee(ANN)], mine="needsAction"),
        event(6, []),
    ]
    box = Mailbox()
    box.daily_life()
    r = report(tmp_path, box, events=events)
    keys = {p.key for p in r.people}
    assert "ext@partner.example" in keys  # the outside organiser of held meetings
    assert not keys & {"dl-ga-all@acme.com", "c_123@resource.calendar.google.com", ANN}
