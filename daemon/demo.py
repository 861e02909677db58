"""A seeded, deterministic year of one professional's mail and calendar, for ``make demo`` and tests.

:func:`generate` writes ``DIR/mail`` (a maildir: ``cur/`` and ``new/``, real RFC 5322 files with
Message-ID / In-Reply-To / References, some replies without them as many mailers do) and
``DIR/calendar.ics`` (meetings with organizer and attendees, two weekly series as RRULEs with a
VTIMEZONE, a cancelled and a declined meeting, a yearly birthday), ``DIR/contacts.vcf`` (an
address book: names, a second address, birthdays, work, groups), and returns a
:class:`DemoManifest`: the ground truth (who is fading, lopsided, new, a list, a robot ...) that
tests and benchmarks check the pipeline against.

The cast, all fictional: Alex Morgan, co-founder of Northwind Labs, with an inner circle,
colleagues, clients, three fading ties (frequent contact that stopped 2-4 months before the demo
day), one relationship where Alex always initiates and one where the other side keeps reaching
out, new contacts from the last 60 days, newsletters, robots, a community mailing list, company
wide CC threads, a contact who changes jobs, a contact writing from two addresses, replies Alex
owes, a birthday, and meetings yesterday and today.

Nothing here depends on the clock: the same seed and day give byte-identical files.
"""

from __future__ import annotations

import hashlib
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from email.utils import format_datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from keepwarm.connectors.base import (
    Address,
    Attendee,
    Batch,
    EventMeta,
    MessageMeta,
    ResponseStatus,
)
from keepwarm.connectors.headers import (
    header_block,
    message_from_headers,
    normalize_address,
    parse_header_block,
)
from keepwarm.daemon.store import Store

DEMO_TODAY = date(2026, 11, 17)  # a Tuesday
DEMO_SEED = 7
ZONE_NAME = "Europe/London"


@dataclass(frozen=True)
class Contact:
    name: str
    email: str
    zone: str = ZONE_NAME

    @property
    def domain(self) -> str:
        return self.email.rsplit("@", 1)[1]

    def header(self) -> str:
        return (
            f'"{self.name}" <{self.email}>' if "," in self.name else f"{self.name} <{self.email}>"
        )


ME = Contact("Alex Morgan", "alex@northwind-labs.com")
ME_OTHER = "alex.morgan@gmail.com"


@dataclass
class DemoMessage:
    date: datetime  # UTC
    sender: Contact
    to: list[Contact]
    subject: str
    message_id: str
    cc: list[Contact] = field(default_factory=list)
    in_reply_to: str | None = None
    references: list[str] = field(default_factory=list)
    extra: list[tuple[str, str]] = field(default_factory=list)  # list / robot headers
    thread: int = 0  # which conversation (0: a lone message)
    folder: str = ""  # a Maildir++ sub-folder ("Sent", "Archive"); "" the inbox
    to_header: str | None = None  # a To header written as is ("undisclosed-recipients:;")


@dataclass
class DemoEvent:
    uid: str
    start: datetime  # UTC (all-day: midnight UTC of the day)
    end: datetime
    title: str
    organizer: Contact | None
    attendees: list[tuple[Contact, str]]  # (contact, PARTSTAT)
    all_day: bool = False
    status: str = "CONFIRMED"
    rrule: str | None = None  # written as a series; ``occurrences`` are its expansion
    occurrences: list[datetime] = field(default_factory=list)
    birthday: bool = False


@dataclass(frozen=True)
class DemoManifest:
    """Ground truth of one generated demo."""

    dir: Path
    today: date
    zone: str
    seed: int
    me: tuple[str, ...]
    inner_circle: tuple[str, ...]
    colleagues: tuple[str, ...]
    clients: tuple[str, ...]
    fading: tuple[str, ...]
    lopsided_me_initiates: tuple[str, ...]
    lopsided_they_reach_out: tuple[str, ...]
    new_contacts: tuple[str, ...]
    lists: tuple[str, ...]  # newsletter senders and the mailing list address
    list_members: tuple[str, ...]  # people who only post to the mailing list
    robots: tuple[str, ...]
    job_changer: tuple[str, str]  # (old address, new address)
    two_addresses: tuple[str, str]  # one person, same display name
    replies_owed: tuple[str, ...]  # senders of recent direct mail Alex has not answered
    delegates: tuple[str, ...]  # the assistant: mail in the Sent folder from another address
    broadcasters: tuple[str, ...]  # write to themselves or "undisclosed recipients"
    marketing: tuple[str, ...]  # marketing without list headers
    no_reply_needed: tuple[str, ...]  # answered by the assistant, an FYI, a thank-you note
    birthday: tuple[str, str]  # (address, "MM-DD")
    meetings_yesterday: tuple[str, ...]  # titles
    meetings_today: tuple[str, ...]
    messages: int
    events: int  # meeting occurrences (series expanded), birthdays excluded
    mail_dir: Path
    ics_path: Path
    config_path: Path
    contacts_path: Path  # the address book (names, a second address, birthdays, work, groups)

    @property
    def as_of(self) -> str:
        return self.today.isoformat()


# -- the cast ---------------------------------------------------------------------------------------
NW = "northwind-labs.com"
SAM = Contact("Sam Chen", f"sam@{NW}")
INNER = [
    SAM,
    Contact("Jordan Reyes", "jordan@reyes.vc", "America/New_York"),
    Contact("Maya Patel", "maya.patel@brightside.io"),
    Contact("Lena Fischer", "lena@fischer-partners.de", "Europe/Berlin"),
]
DANIEL_A = Contact("Daniel Okafor", "dan.okafor@gmail.com")
DANIEL_B = Contact("Daniel Okafor", "daniel@okafor-consulting.com")
COLLEAGUES = [
    Contact(n, f"{n.split()[0].lower()}.{n.split()[1].lower()}@{NW}")
    for n in (
        "Rita Gomez",
        "Tom Walsh",
        "Hannah Berg",
        "Felix Wagner",
        "Zoe Martin",
        "Ivan Petrov",
        "Mei Tanaka",
        "Luca Bianchi",
        "Emma Clarke",
        "Noah Adams",
        "Sara Lindqvist",
        "Ravi Kumar",
    )
]
CLIENTS = [
    Contact("Carlos Mendes", "carlos@harborfreight-logistics.com"),
    Contact("Julia Novak", "j.novak@alpinebank.ch", "Europe/Zurich"),
    Contact("Kevin O'Brien", "kobrien@cedarhealth.org", "America/New_York"),
    Contact("Aiko Sato", "aiko.sato@kumo-retail.jp", "Asia/Tokyo"),
    Contact("Pieter de Vries", "pieter@dijkstra-energy.nl", "Europe/Amsterdam"),
    Contact("Fatima Zahra", "fatima@atlas-insure.ma", "Africa/Casablanca"),
    Contact("Henry Walker", "henry.walker@oakmont.co.uk"),
]
FADING = [
    Contact("Tom Becker", "tom@becker-design.de", "Europe/Berlin"),
    Contact("Aisha Bello", "aisha.bello@lagosfintech.ng", "Africa/Lagos"),
    Contact("Marco Rossi", "marco.rossi@venturelab.it", "Europe/Rome"),
]
FADING_STOP_DAYS = (62, 78, 96)  # last contact this many days before the demo day
CHRIS = Contact(
    "Chris Park", "chris.park@bigretail.com", "America/Chicago"
)  # Alex always initiates
NINA = Contact("Nina Volkova", "nina@growthloop.io")  # keeps reaching out, rarely answered
NEW = [
    Contact("Omar Haddad", "omar@quantaflow.ai"),
    Contact("Grace Liu", "grace.liu@seedline.vc", "America/Los_Angeles"),
    Contact("Ben Carter", "ben@carter-analytics.com"),
    Contact("Sofia Marin", "sofia.marin@lumen-health.es", "Europe/Madrid"),
]
NEW_START_DAYS = (45, 21, 9, 33)
PRIYA_OLD = Contact("Priya Natarajan", "priya@acmecorp.com")
PRIYA_NEW = Contact("Priya Natarajan", "priya.natarajan@globex-systems.io")
PRIYA_SWITCH_DAYS = 150
NEWSLETTERS = [
    (Contact("SaaS Weekly", "digest@saasweekly.co"), 7, "SaaS Weekly #"),
    (Contact("Founder Letters", "letters@founderletter.com"), 7, "Founder Letters: issue "),
    (Contact("Data Eng Weekly", "editor@dataeng-weekly.com"), 7, "Data Eng Weekly "),
    (Contact("Market Pulse", "insights@marketpulse.io"), 1, "Market Pulse daily brief "),
]
ROBOTS = [
    (Contact("GitForge", "notifications@gitforge.dev"), 2, "[northwind/api] PR #"),
    (Contact("Cloudly", "no-reply@accounts.cloudly.com"), 10, "Your Cloudly invoice "),
    (Contact("Google Calendar", "calendar-notification@google.com"), 6, "Reminder: "),
    (Contact("PayFlow", "billing-noreply@payflow.com"), 14, "Payment received "),
]
MAILER_DAEMON = Contact("Mail Delivery System", f"mailer-daemon@{NW}")
# Real-world shapes (see _real_world): an assistant, broadcasts, marketing without list headers.
ASSISTANT = Contact("Robin Hale", f"robin.hale@{NW}")  # answers for Alex, from the Sent folder
VENDOR = Contact("Quentin Vale", "quentin@valeware.com")  # writes to himself, Alex in Bcc
EVENTS = Contact("Summit Team", "team@cloudsummit-events.com")  # "undisclosed recipients"
PROMO = Contact("FlyDeals", "deals@flydeals-travel.com")  # marketing without a List-Id
GENERATED = Contact("ShopCo", "42.8813.a9c2f@e.shopco-mail.com")  # a mass mailer's address
LIST = Contact("Dev Community", "dev-community@lists.pyconf.org")
LIST_ID = "Dev Community <dev-community.lists.pyconf.org>"
LIST_MEMBERS = [
    Contact(n, e)
    for n, e in (
        ("Ola Nordmann", "ola@nordmann.no"),
        ("Kim Lee", "kim.lee@hanmail-dev.kr"),
        ("Paul Dubois", "paul.dubois@orange-dev.fr"),
        ("Anna Kowalski", "anna.k@kowalski.pl"),
        ("Diego Torres", "diego@torres.mx"),
        ("Wei Zhang", "wei.zhang@pylab.cn"),
        ("Elif Yilmaz", "elif@yilmaz.tr"),
        ("John Smith", "jsmith@smith-consulting.us"),
    )
]
STRANGERS = [
    Contact(f"{first} {last}", f"{first.lower()}@{dom}")
    for first, last, dom in (
        ("Victor", "Hale", "halepartners.com"),
        ("Nora", "Quinn", "quinnmedia.co"),
        ("Liam", "Foster", "fostergrowth.io"),
        ("Chloe", "Baker", "bakerpr.com"),
        ("Oscar", "Reid", "reidrecruiting.com"),
        ("Ella", "Price", "priceevents.org"),
    )
]

TOPICS = [
    "Q{q} roadmap",
    "pricing proposal",
    "contract renewal",
    "pilot results",
    "hiring plan",
    "board deck",
    "API rate limits",
    "intro call",
    "workshop agenda",
    "data migration",
    "security review",
    "budget for {y}",
    "launch checklist",
    "customer feedback",
    "partnership idea",
    "invoice question",
    "team offsite",
    "demo follow-up",
    "quarterly review",
    "product update",
]


# -- generation -------------------------------------------------------------------------------------
class _Gen:
    def __init__(self, seed: int, today: date) -> None:
        self.rng = random.Random(seed)
        self.today = today
        self.zone = ZoneInfo(ZONE_NAME)
        self.start = today - timedelta(days=365)
        self.end = datetime.combine(today, time(8, 30), self.zone).astimezone(UTC)
        self.messages: list[DemoMessage] = []
        self.events: list[DemoEvent] = []
        self.replies_owed: list[str] = []
        self._n = 0
        self._threads = 0

    # time helpers
    def day(self, days_ago: float) -> date:
        return self.today - timedelta(days=int(days_ago))

    def at(self, d: date, hour: float, who: Contact = ME) -> datetime:
        h, m = int(hour), int((hour % 1) * 60)
        return datetime.combine(d, time(h, m), ZoneInfo(who.zone)).astimezone(UTC)

    def work_time(self, d: date, who: Contact = ME) -> datetime:
        return self.at(d, self.rng.uniform(8.5, 18.5), who) + timedelta(
            seconds=self.rng.randrange(60)
        )

    def workday(self, d: date) -> date:
        while d.weekday() >= 5:
            d -= timedelta(days=1)
        return d

    def msgid(self, who: Contact) -> str:
        self._n += 1
        return f"{self.rng.getrandbits(64):016x}.{self._n}@{who.domain}"

    def subject(self) -> str:
        t = self.rng.choice(TOPICS)
        return t.format(q=self.rng.randint(1, 4), y=self.today.year + 1)

    # threads
    def thread(
        self,
        when: datetime,
        senders: list[Contact],
        others: list[Contact],
        subject: str,
        *,
        cc: list[Contact] | None = None,
        max_gap_h: float = 30.0,
    ) -> list[DemoMessage]:
        """A conversation: ``senders[i]`` writes message i to everyone else in it."""
        everyone = [ME, *others]
        out: list[DemoMessage] = []
        t = when
        self._threads += 1
        for i, who in enumerate(senders):
            if i:
                t += timedelta(hours=self.rng.uniform(0.3, max_gap_h))
            if t > self.end:
                break
            prev = out[-1] if out else None
            to = [c for c in everyone if c.email != who.email and c not in (cc or [])]
            m = DemoMessage(
                date=t,
                sender=who,
                to=to,
                cc=[c for c in (cc or []) if c.email != who.email],
                subject=subject if prev is None else f"Re: {subject}",
                message_id=self.msgid(who),
                thread=self._threads,
            )
            if prev is not None and self.rng.random() > 0.12:  # some mailers omit these
                m.in_reply_to = prev.message_id
                m.references = [*prev.references, prev.message_id][-10:]
            out.append(m)
        self.messages.extend(out)
        return out

    def conversation(
        self, other: Contact, d: date, *, i_start: bool, replies: int, max_gap_h: float = 30.0
    ) -> None:
        first = ME if i_start else other
        second = other if i_start else ME
        senders = [first] + [second if i % 2 == 0 else first for i in range(replies)]
        when = self.work_time(d, first)
        self.thread(when, senders, [other], self.subject(), max_gap_h=max_gap_h)

    def meeting(
        self,
        d: date,
        hour: float,
        title: str,
        people: list[Contact],
        *,
        minutes: int = 45,
        organizer: Contact = ME,
        status: str = "CONFIRMED",
        partstat: str = "ACCEPTED",
    ) -> DemoEvent:
        start = self.at(d, hour)
        self._n += 1
        ev = DemoEvent(
            uid=f"{self.rng.getrandbits(48):012x}-{self._n}@{organizer.domain}",
            start=start,
            end=start + timedelta(minutes=minutes),
            title=title,
            organizer=organizer,
            attendees=[(ME, "ACCEPTED")] + [(p, partstat) for p in people],
            status=status,
        )
        self.events.append(ev)
        return ev

    def series(
        self, first: date, hour: float, title: str, people: list[Contact], minutes: int = 30
    ) -> None:
        """A weekly series until the demo day + 2 weeks, written as an RRULE."""
        ev = self.meeting(first, hour, title, people, minutes=minutes)
        d = first
        while d <= self.today + timedelta(days=14):
            ev.occurrences.append(self.at(d, hour))
            d += timedelta(days=7)
        ev.rrule = "FREQ=WEEKLY;COUNT=" + str(len(ev.occurrences))

    def every(self, mean_days: float, start: date, stop: date) -> Iterator[date]:
        """Workdays from ``start`` to ``stop`` about every ``mean_days``."""
        d = start + timedelta(days=self.rng.uniform(0, mean_days))
        while d < stop:
            yield self.workday(d)
            d += timedelta(days=max(1.0, self.rng.gauss(mean_days, mean_days / 3)))


def _relationships(g: _Gen) -> None:
    rng, today = g.rng, g.today
    for person, gap, start_share in ((INNER[1], 12, 0.5), (INNER[2], 6, 0.5), (INNER[3], 10, 0.5)):
        for d in g.every(gap, g.start, today):
            g.conversation(person, d, i_start=rng.random() < start_share, replies=rng.randint(1, 4))
    for d in g.every(3, g.start, today):  # Sam: co-founder, constant contact
        g.conversation(SAM, d, i_start=rng.random() < 0.5, replies=rng.randint(1, 5))
    for d in g.every(9, g.start, today):  # Daniel writes from either address
        who = DANIEL_A if rng.random() < 0.5 else DANIEL_B
        g.conversation(who, d, i_start=rng.random() < 0.5, replies=rng.randint(1, 3))
    for c in COLLEAGUES:
        for d in g.every(rng.uniform(8, 20), g.start, today):
            g.conversation(c, d, i_start=rng.random() < 0.5, replies=rng.randint(1, 3))
    for c in CLIENTS:
        for d in g.every(rng.uniform(14, 28), g.start, today):
            g.conversation(c, d, i_start=rng.random() < 0.5, replies=rng.randint(1, 5))
    _changing_ties(g)
    _job_change(g)


def _changing_ties(g: _Gen) -> None:
    """The fading ties, the one-sided ones and the new ones (after the steady ones: the random
    draws come in this order)."""
    rng, today = g.rng, g.today
    for c, stop in zip(FADING, FADING_STOP_DAYS, strict=True):
        for d in g.every(21, g.start, g.day(stop) - timedelta(days=1)):  # same-day threads
            g.conversation(c, d, i_start=rng.random() < 0.5, replies=rng.randint(1, 3), max_gap_h=3)
        last = g.workday(g.day(stop))
        g.conversation(c, last, i_start=False, replies=1)
    for d in g.every(16, g.start, today):  # Alex always initiates; Chris answers sometimes
        g.conversation(CHRIS, d, i_start=True, replies=1 if rng.random() < 0.55 else 0)
    for i, d in enumerate(g.every(12, g.start, today)):  # Nina reaches out; rarely answered
        g.conversation(NINA, d, i_start=False, replies=1 if i % 6 == 2 else 0)
    for c, days in zip(NEW, NEW_START_DAYS, strict=True):
        first = g.workday(g.day(days))
        g.conversation(c, first, i_start=False, replies=2)
        for d in g.every(9, first + timedelta(days=3), today):
            g.conversation(c, d, i_start=rng.random() < 0.5, replies=rng.randint(1, 3))


def _job_change(g: _Gen) -> None:
    switch = g.day(PRIYA_SWITCH_DAYS)
    for d in g.every(14, g.start, switch - timedelta(days=20)):
        g.conversation(PRIYA_OLD, d, i_start=g.rng.random() < 0.5, replies=g.rng.randint(1, 3))
    when = g.work_time(g.workday(switch), PRIYA_NEW)
    g.thread(when, [PRIYA_NEW, ME, PRIYA_NEW], [PRIYA_NEW], "Some personal news: I joined Globex")
    for d in g.every(18, switch + timedelta(days=10), g.today):
        g.conversation(PRIYA_NEW, d, i_start=g.rng.random() < 0.5, replies=g.rng.randint(1, 2))


def _replies_owed(g: _Gen) -> None:
    """Recent direct mail to Alex, still unanswered on the demo day."""
    for who, days, subject in (
        (INNER[2], 2, "Can you review the pilot scope by Friday?"),
        (CLIENTS[1], 4, "Question about the renewal terms"),
        (NEW[0], 3, "Next steps after our call?"),
    ):
        when = g.work_time(g.workday(g.day(days)), who)
        # the owed message is the last word: drop conversations with this person that go on
        # past it (whole conversations, so no older message loses its answer)
        later = {m.thread for m in g.messages if m.date >= when and who in (m.sender, *m.to, *m.cc)}
        g.messages = [m for m in g.messages if m.thread == 0 or m.thread not in later]
        g.thread(when, [who], [who], subject)
        g.replies_owed.append(who.email)


def _group_mail(g: _Gen) -> None:
    """Company-wide CC threads (>10 recipients) and a large client thread."""
    rng = g.rng
    for d in g.every(30, g.start, g.today):
        senders = [COLLEAGUES[0]] + [rng.choice(COLLEAGUES) for _ in range(rng.randint(0, 3))]
        g.thread(g.work_time(d), senders, COLLEAGUES, "All hands: " + g.subject(), cc=[SAM])
    project = [CLIENTS[0], *COLLEAGUES[:6], CLIENTS[6], *COLLEAGUES[6:10]]
    for d in g.every(45, g.start, g.today):
        g.thread(g.work_time(d), [CLIENTS[0], ME, COLLEAGUES[2]], project, "Harbor rollout status")


def _bulk(g: _Gen) -> None:
    rng = g.rng
    for sender, gap, prefix in NEWSLETTERS:
        for n, d in enumerate(_periodic(g, gap)):
            m = DemoMessage(
                g.at(d, 6.5 + rng.random()), sender, [ME], f"{prefix}{n + 1}", g.msgid(sender)
            )
            m.extra = [
                ("List-Id", f"{sender.name} <{sender.email.replace('@', '.')}>"),
                ("List-Unsubscribe", f"<https://{sender.domain}/unsubscribe?u=alex>"),
                ("Precedence", "bulk"),
            ]
            g.messages.append(m)
    for sender, gap, prefix in ROBOTS:
        for n, d in enumerate(_periodic(g, gap)):
            m = DemoMessage(g.work_time(d), sender, [ME], f"{prefix}{n + 101}", g.msgid(sender))
            m.extra = [("Auto-Submitted", "auto-generated")]
            g.messages.append(m)
    for d in g.every(60, g.start, g.today):
        m = DemoMessage(
            g.work_time(d), MAILER_DAEMON, [ME], "Undelivered Mail Returned to Sender", g.msgid(ME)
        )
        m.extra = [("Auto-Submitted", "auto-replied"), ("Return-Path", "<>")]
        g.messages.append(m)
    _mailing_list(g)
    for c in STRANGERS:  # cold outreach, never answered
        for _ in range(rng.randint(1, 2)):
            d = g.workday(g.day(rng.uniform(1, 360)))
            g.thread(g.work_time(d, c), [c], [c], rng.choice(["Quick question", "Intro?"]))


def _real_world(g: _Gen) -> None:
    """What real mailboxes hold that a tidy year does not: an assistant who answers for Alex
    (filed in Alex's Sent folder), broadcasts (the sender the only visible recipient,
    "undisclosed recipients"), marketing without list headers, FYI forwards and thank-you notes
    that ask for nothing, and a message an archive filed twice with its Date moved 9 hours."""
    rng = g.rng
    # the assistant: schedules for Alex and answers a client on Alex's behalf
    for d in g.every(14, g.start, g.today - timedelta(days=3)):
        g.messages.append(
            DemoMessage(g.work_time(d), ASSISTANT, [ME], "Your week ahead", g.msgid(ASSISTANT))
        )
    when = g.work_time(g.workday(g.day(6)), CLIENTS[2])
    ask = DemoMessage(
        when, CLIENTS[2], [ME], "Can Alex join the board call on Thursday?", g.msgid(CLIENTS[2])
    )
    answer = DemoMessage(
        when + timedelta(hours=3),
        ASSISTANT,
        [CLIENTS[2]],
        f"Re: {ask.subject}",
        g.msgid(ASSISTANT),
        in_reply_to=ask.message_id,
        references=[ask.message_id],
        folder="Sent",
    )
    g.messages += [ask, answer]
    # broadcasts
    for d in g.every(21, g.start, g.today):
        m = DemoMessage(g.work_time(d, VENDOR), VENDOR, [VENDOR], "Valeware product news",
                        g.msgid(VENDOR))  # fmt: skip
        g.messages.append(m)
    for d in g.every(40, g.start, g.today):
        m = DemoMessage(
            g.work_time(d), EVENTS, [], "Cloud Summit: your invitation", g.msgid(EVENTS)
        )
        m.to_header = "undisclosed-recipients:;"
        g.messages.append(m)
    # marketing without list headers
    for d in g.every(9, g.start, g.today):
        m = DemoMessage(g.work_time(d), PROMO, [ME], "Save up to 40% on flights to Lisbon",
                        g.msgid(PROMO))  # fmt: skip
        m.extra = [("Errors-To", f"bounces@{PROMO.domain}")]
        g.messages.append(m)
    for d in g.every(12, g.start, g.today):
        m = DemoMessage(g.work_time(d), GENERATED, [ME], "Picked for you", g.msgid(GENERATED))
        g.messages.append(m)
    # an FYI forward and a thank-you note: nothing to answer
    g.thread(g.work_time(g.workday(g.day(4)), COLLEAGUES[1]), [COLLEAGUES[1]], [COLLEAGUES[1]],
             "FW: market report, FYI")  # fmt: skip
    thanks = g.thread(g.work_time(g.workday(g.day(5))), [ME, CLIENTS[4]], [CLIENTS[4]],
                      "Pilot numbers", max_gap_h=4)  # fmt: skip
    if len(thanks) == 2:
        thanks[1].subject = "Thanks!"
    # a copy an archive filed again, 9 hours later, under another Message-ID
    original = next(
        (m for m in reversed(g.messages)
         if m.sender is CLIENTS[0] and m.date < g.end - timedelta(days=20)),
        None,
    )  # fmt: skip
    if original is not None:
        g.messages.append(
            DemoMessage(
                original.date + timedelta(hours=9),
                original.sender,
                list(original.to),
                original.subject,
                g.msgid(original.sender),
                cc=list(original.cc),
                folder="Archive",
            )
        )
    _ = rng


def _periodic(g: _Gen, gap: int) -> Iterator[date]:
    d = g.start + timedelta(days=g.rng.randrange(gap))
    while d <= g.today:
        yield d
        d += timedelta(days=gap)


def _mailing_list(g: _Gen) -> None:
    rng = g.rng
    for d in g.every(2.5, g.start, g.today):
        poster = rng.choice(LIST_MEMBERS)
        n = rng.randint(1, 5)
        senders = [poster] + [rng.choice([*LIST_MEMBERS, ME]) for _ in range(n - 1)]
        for m in g.thread(g.work_time(d, poster), senders, [LIST], "[dev] " + g.subject()):
            m.to = [LIST]
            if m.sender is not ME:
                m.extra = [
                    ("List-Id", LIST_ID),
                    ("List-Post", f"<mailto:{LIST.email}>"),
                    ("List-Unsubscribe", f"<mailto:{LIST.email.replace('@', '-leave@')}>"),
                    ("Precedence", "list"),
                ]


def _calendar(g: _Gen) -> tuple[list[str], list[str]]:
    rng, today = g.rng, g.today
    first_monday = g.start + timedelta(days=(7 - g.start.weekday()) % 7)
    g.series(first_monday, 10, "Sam / Alex weekly", [SAM])
    g.series(first_monday + timedelta(days=2), 9.5, "Product team sync", COLLEAGUES[:5], 45)
    for d in g.every(30, g.start, today):
        g.meeting(d, 16, "All hands", [SAM, *COLLEAGUES], minutes=60, organizer=COLLEAGUES[0])
    for who, gap, title in (
        (INNER[1], 30, "Coffee with Jordan"),
        (INNER[2], 14, "Brightside check-in"),
    ):
        for d in g.every(gap, g.start, today - timedelta(days=2)):
            g.meeting(d, rng.choice([11, 14, 15.5]), title, [who])
    for c in CLIENTS:
        for d in g.every(rng.uniform(25, 40), g.start, today - timedelta(days=2)):
            g.meeting(d, rng.choice([11, 14, 16]), f"{c.name.split()[0]} / Northwind", [c])
    for c, stop in zip(FADING, FADING_STOP_DAYS, strict=True):
        for d in g.every(45, g.start, g.day(stop) - timedelta(days=10)):
            g.meeting(d, 13, f"Catch-up with {c.name.split()[0]}", [c])
    g.meeting(g.day(40), 15, "Intro: Omar (QuantaFlow)", [NEW[0]])
    g.meeting(g.day(60), 11, "Offsite planning", COLLEAGUES[:4], status="CANCELLED")
    g.meeting(g.day(30), 17, "Vendor pitch", [NINA], partstat="DECLINED", organizer=NINA)
    yesterday = [
        g.meeting(g.day(1), 14, "Harbor Logistics quarterly review", [CLIENTS[0]], minutes=60),
        g.meeting(g.day(1), 16.5, "Call with Daniel", [DANIEL_B], minutes=30),
    ]
    todays = [
        g.meeting(today, 11, "QuantaFlow follow-up with Omar", [NEW[0]], minutes=45),
        g.meeting(today, 15, "Coffee with Jordan", [INNER[1]], minutes=45),
    ]
    bday = DemoEvent(
        uid="birthday-maya-patel@northwind-labs.com",
        start=datetime(1988, 11, 19, tzinfo=UTC),
        end=datetime(1988, 11, 20, tzinfo=UTC),
        title="Maya Patel's birthday",
        organizer=None,
        attendees=[],
        all_day=True,
        rrule="FREQ=YEARLY",
        birthday=True,
    )
    g.events.append(bday)
    return [e.title for e in yesterday], [e.title for e in todays]


# -- writing ----------------------------------------------------------------------------------------
def _addr_list(cs: list[Contact]) -> str:
    return ", ".join(c.header() for c in cs)


def render_message(m: DemoMessage, rng: random.Random) -> bytes:
    zone = ZoneInfo(m.sender.zone)
    lines = [
        ("Return-Path", f"<{m.sender.email}>"),
        ("From", m.sender.header()),
        ("To", m.to_header if m.to_header is not None else _addr_list(m.to)),
    ]
    if m.cc:
        lines.append(("Cc", _addr_list(m.cc)))
    lines += [
        ("Subject", m.subject),
        ("Date", format_datetime(m.date.astimezone(zone))),
        ("Message-ID", f"<{m.message_id}>"),
    ]
    if m.in_reply_to:
        lines.append(("In-Reply-To", f"<{m.in_reply_to}>"))
    if m.references:
        lines.append(("References", " ".join(f"<{r}>" for r in m.references)))
    for k, v in m.extra:
        lines = [(a, b) for a, b in lines if a != k] + [(k, v)]
    lines += [("MIME-Version", "1.0"), ("Content-Type", "text/plain; charset=utf-8")]
    body = rng.choice(
        ["Thanks, sounds good.", "See notes below.", "Let me check and get back to you.", "Done!"]
    )
    text = "".join(f"{k}: {v}\r\n" for k, v in lines) + "\r\n" + body + "\r\n"
    return text.encode("utf-8")


def write_maildir(messages: list[DemoMessage], root: Path, today_end: datetime, seed: int) -> None:
    rng = random.Random(seed + 1)
    for sub in ("cur", "new", "tmp"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for i, m in enumerate(messages):
        ts = int(m.date.timestamp())
        unread = m.sender is not ME and (today_end - m.date) < timedelta(days=2)
        name = f"{ts}.D{i:05d}.keepwarm-demo" + ("" if unread else ":2,S")
        folder = root / f".{m.folder}" if m.folder else root  # Maildir++ sub-folders
        for sub in ("cur", "new", "tmp"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        path = folder / ("new" if unread else "cur") / name
        path.write_bytes(render_message(m, rng))
        os.utime(path, (ts, ts))


def _ics_dt(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


VTIMEZONE = """BEGIN:VTIMEZONE
TZID:Europe/London
BEGIN:DAYLIGHT
TZOFFSETFROM:+0000
TZOFFSETTO:+0100
TZNAME:BST
DTSTART:19700329T010000
RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU
END:DAYLIGHT
BEGIN:STANDARD
TZOFFSETFROM:+0100
TZOFFSETTO:+0000
TZNAME:GMT
DTSTART:19701025T020000
RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU
END:STANDARD
END:VTIMEZONE"""


def _person_prop(prop: str, c: Contact, partstat: str | None = None) -> str:
    ps = f";PARTSTAT={partstat}" if partstat else ""
    role = ";ROLE=REQ-PARTICIPANT" if partstat else ""
    return f'{prop};CN="{c.name}"{role}{ps}:mailto:{c.email}'


def render_event(e: DemoEvent, stamp: str) -> list[str]:
    out = ["BEGIN:VEVENT", f"UID:{e.uid}", f"DTSTAMP:{stamp}", f"SUMMARY:{e.title}"]
    if e.all_day:
        out += [
            f"DTSTART;VALUE=DATE:{e.start:%Y%m%d}",
            f"DTEND;VALUE=DATE:{e.end:%Y%m%d}",
            "TRANSP:TRANSPARENT",
        ]
    elif e.rrule:
        local = e.start.astimezone(ZoneInfo(ZONE_NAME))
        end = e.end.astimezone(ZoneInfo(ZONE_NAME))
        out += [
            f"DTSTART;TZID={ZONE_NAME}:{local:%Y%m%dT%H%M%S}",
            f"DTEND;TZID={ZONE_NAME}:{end:%Y%m%dT%H%M%S}",
        ]
    else:
        out += [f"DTSTART:{_ics_dt(e.start)}", f"DTEND:{_ics_dt(e.end)}"]
    if e.rrule:
        out.append(f"RRULE:{e.rrule}")
    if e.birthday:
        out.append("CATEGORIES:BIRTHDAY")
        out.append("X-KEEPWARM-EVENT-TYPE:birthday")
    out.append(f"STATUS:{e.status}")
    if e.organizer:
        out.append(_person_prop("ORGANIZER", e.organizer))
    out += [_person_prop("ATTENDEE", c, ps) for c, ps in e.attendees]
    out.append("END:VEVENT")
    return out


# The demo's address book: the names mail already shows, Maya's personal address (one contact,
# two addresses), birthdays, an anniversary, organisations and titles, groups; one card without
# an address (skipped, as keepwarm needs an address).
ADDRESS_BOOK = (
    (
        INNER[2],
        ("maya@patel.family",),
        "1988-11-19",
        None,
        "Brightside",
        "Head of Product",
        "Friends",
    ),
    (INNER[1], (), "--03-08", None, "Reyes Ventures", "Partner", "Advisors"),
    (INNER[3], (), None, "2015-06-20", "Fischer & Partners", "Managing Director", "Advisors"),
    (SAM, (), None, None, "Northwind Labs", "CTO", "Team"),
    (CLIENTS[0], (), None, None, "Harbor Freight Logistics", "COO", "Clients"),
    (CLIENTS[1], (), "--09-02", None, "Alpine Bank", "CFO", "Clients"),
    (CLIENTS[6], (), None, None, "Oakmont", "Head of Operations", "Clients"),
)


def write_vcard(path: Path) -> None:
    """The demo address book as a vCard 3.0 export."""
    cards: list[str] = []
    for i, (c, more, bday, anniversary, org, title, group) in enumerate(ADDRESS_BOOK):
        last, first = c.name.split(" ", 1)[1], c.name.split(" ", 1)[0]
        lines = [
            "BEGIN:VCARD",
            "VERSION:3.0",
            f"UID:demo-contact-{i}",
            f"FN:{c.name}",
            f"N:{last};{first};;;",
            f"EMAIL;TYPE=INTERNET,pref:{c.email}",
            *(f"EMAIL;TYPE=INTERNET,HOME:{e}" for e in more),
            "TEL;TYPE=CELL:+44 7700 900" + f"{100 + i}",  # never read by keepwarm
            *([f"BDAY:{bday}"] if bday else []),
            *([f"X-ANNIVERSARY:{anniversary}"] if anniversary else []),
            f"ORG:{org}",
            f"TITLE:{title}",
            f"CATEGORIES:{group}",
            "END:VCARD",
        ]
        cards.append("\r\n".join(lines))
    cards.append("BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Mum\r\nTEL:+44 7700 900999\r\nEND:VCARD")
    path.write_text("\r\n".join(cards) + "\r\n", encoding="utf-8")


def write_ics(events: list[DemoEvent], path: Path, today: date) -> None:
    stamp = f"{today:%Y%m%d}T000000Z"
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//keepwarm//demo//EN",
        "CALSCALE:GREGORIAN",
        VTIMEZONE,
    ]
    for e in events:
        lines += render_event(e, stamp)
    lines.append("END:VCALENDAR")
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode("utf-8"))


CONFIG = """\
# keepwarm demo configuration (written by `keepwarm demo`)
[me]
name = "{name}"
addresses = ["{me}", "{other}"]
timezone = "{zone}"

[store]
path = "{dir}/keepwarm.db"

[delivery]
method = "file"
outbox = "{dir}/outbox"

[[accounts]]
name = "demo-mail"
kind = "maildir"
path = "{dir}/mail"

[[accounts]]
name = "demo-calendar"
kind = "ics"
path = "{dir}/calendar.ics"

[[accounts]]
name = "demo-contacts"
kind = "vcard"
path = "{dir}/contacts.vcf"
"""


@dataclass
class DemoData:
    messages: list[DemoMessage]
    events: list[DemoEvent]
    replies_owed: list[str]
    yesterday: list[str]
    today: list[str]


def build(seed: int = DEMO_SEED, today: date = DEMO_TODAY) -> DemoData:
    """The demo year in memory (no I/O)."""
    g = _Gen(seed, today)
    _relationships(g)
    _group_mail(g)
    _bulk(g)
    _real_world(g)
    _replies_owed(g)
    yesterday, todays = _calendar(g)
    msgs = sorted((m for m in g.messages if m.date <= g.end), key=lambda m: (m.date, m.message_id))
    return DemoData(msgs, g.events, g.replies_owed, yesterday, todays)


def meeting_count(events: list[DemoEvent]) -> int:
    return sum(
        len(e.occurrences) or 1 for e in events if not e.birthday and e.status != "CANCELLED"
    )


def generate(
    directory: str | Path, seed: int = DEMO_SEED, today: date = DEMO_TODAY
) -> DemoManifest:
    """Write the demo maildir, calendar and config under ``directory``; return the ground truth."""
    from keepwarm.core.files import write_private

    root = Path(directory).expanduser().resolve()
    root.mkdir(parents=True, exist_ok=True)
    data = build(seed, today)
    today_end = datetime.combine(today, time(23, 59), ZoneInfo(ZONE_NAME)).astimezone(UTC)
    write_maildir(data.messages, root / "mail", today_end, seed)
    write_ics(data.events, root / "calendar.ics", today)
    write_vcard(root / "contacts.vcf")
    config_path = root / "config.toml"
    text = CONFIG.format(name=ME.name, me=ME.email, other=ME_OTHER, zone=ZONE_NAME, dir=root)
    write_private(config_path, text.encode("utf-8"))  # `keepwarm run` refuses a readable config
    # The demo's action links are the same on every run (a real install makes a random key).
    key = hashlib.sha256(f"keepwarm demo action key {seed}".encode()).hexdigest()
    write_private(root / "keepwarm.action-key", (key + "\n").encode("ascii"))
    return _manifest(root, seed, today, data, config_path)


def _norm(*emails: str) -> tuple[str, ...]:
    """Addresses as the store keeps them (Gmail dots and plus tags removed)."""
    return tuple(normalize_address(e) or e for e in emails)


def _manifest(
    root: Path, seed: int, today: date, data: DemoData, config_path: Path
) -> DemoManifest:
    return DemoManifest(
        dir=root,
        today=today,
        zone=ZONE_NAME,
        seed=seed,
        me=_norm(ME.email, ME_OTHER),
        inner_circle=_norm(*(c.email for c in INNER), DANIEL_A.email),
        colleagues=tuple(c.email for c in COLLEAGUES),
        clients=tuple(c.email for c in CLIENTS),
        fading=tuple(c.email for c in FADING),
        lopsided_me_initiates=(CHRIS.email,),
        lopsided_they_reach_out=(NINA.email,),
        new_contacts=tuple(c.email for c in NEW),
        lists=(*tuple(c.email for c, _, _ in NEWSLETTERS), LIST.email),
        list_members=tuple(c.email for c in LIST_MEMBERS),
        robots=(*tuple(c.email for c, _, _ in ROBOTS), MAILER_DAEMON.email),
        job_changer=(PRIYA_OLD.email, PRIYA_NEW.email),
        two_addresses=(_norm(DANIEL_A.email)[0], DANIEL_B.email),
        replies_owed=tuple(data.replies_owed),
        delegates=(ASSISTANT.email,),
        broadcasters=(VENDOR.email, EVENTS.email),
        marketing=(PROMO.email, GENERATED.email),
        no_reply_needed=(CLIENTS[2].email, COLLEAGUES[1].email, CLIENTS[4].email),
        birthday=("maya.patel@brightside.io", "11-19"),
        meetings_yesterday=tuple(data.yesterday),
        meetings_today=tuple(data.today),
        messages=len(data.messages),
        events=meeting_count(data.events),
        mail_dir=root / "mail",
        ics_path=root / "calendar.ics",
        config_path=config_path,
        contacts_path=root / "contacts.vcf",
    )


def digest_of_files(directory: Path) -> str:
    """A hash of every file under ``directory`` (names and bytes): equal for equal demos."""
    h = hashlib.sha256()
    for p in sorted(directory.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(directory)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


# -- import without the local connectors ------------------------------------------------------------
# `keepwarm demo` imports through the real maildir and ics connectors. Benchmarks that need the demo
# in a store quickly use import_direct (a test checks that both give the same people).
def _partstat(value: str) -> ResponseStatus:
    return {"ACCEPTED": "accepted", "DECLINED": "declined", "TENTATIVE": "tentative"}.get(
        value, "needsAction"
    )  # type: ignore[return-value]


def event_records(data: DemoData, account: str, today: date) -> list[EventMeta]:
    """The calendar as EventMeta records (series and birthdays expanded around ``today``)."""
    out: list[EventMeta] = []
    lo, hi = today - timedelta(days=730), today + timedelta(days=14)
    for e in data.events:
        if e.birthday:
            starts = [
                datetime(y, e.start.month, e.start.day, tzinfo=UTC)
                for y in range(lo.year, hi.year + 1)
                if lo <= date(y, e.start.month, e.start.day) <= hi
            ]
        else:
            starts = e.occurrences or [e.start]
        length = e.end - e.start
        for s in starts:
            out.append(
                EventMeta(
                    account=account,
                    provider_id=f"{e.uid}/{_ics_dt(s)}",
                    start=s,
                    end=s + length,
                    all_day=e.all_day,
                    ical_uid=e.uid,
                    organizer=Address(e.organizer.email, e.organizer.name) if e.organizer else None,
                    attendees=tuple(
                        Attendee(
                            c.email,
                            c.name,
                            _partstat(ps),
                            organizer=e.organizer is not None and c.email == e.organizer.email,
                            is_self=c is ME,
                        )
                        for c, ps in e.attendees
                    ),
                    my_response="accepted" if e.attendees else "unknown",
                    status="cancelled" if e.status == "CANCELLED" else "confirmed",
                    recurring=bool(e.rrule),
                    event_type="birthday" if e.birthday else "default",
                    title=e.title,
                )
            )
    return out


def mail_records(mail_dir: Path, account: str) -> Iterator[MessageMeta | str]:
    """Parse the written maildir files (and Maildir++ sub-folders) with the shared parser."""
    for path in sorted([*mail_dir.glob("*/*"), *mail_dir.glob(".*/*/*")]):
        if path.parent.name == "tmp" or not path.is_file():
            continue
        sub = path.parent.parent.name.lstrip(".") if path.parent.parent != mail_dir else ""
        headers = parse_header_block(header_block(path.read_bytes()))
        mtime = datetime.fromtimestamp(path.stat().st_mtime, UTC)
        rel = f"{path.parent.name}/{path.name.split(':', 1)[0]}"
        yield message_from_headers(
            headers,
            account=account,
            provider_id=f".{sub}/{rel}" if sub else rel,
            fallback_date=mtime,
            folder=sub or "INBOX",
        )


def import_direct(
    store: Store,
    manifest: DemoManifest,
    *,
    mail: bool = True,
    events: bool = True,
    batch_size: int = 1000,
) -> tuple[int, int]:
    """Store the demo without the maildir/ics connectors; returns (messages, events) stored."""
    messages: list[MessageMeta] = []
    n_msgs = n_events = 0
    for rec in mail_records(manifest.mail_dir, "demo-mail") if mail else ():
        if isinstance(rec, MessageMeta):
            messages.append(rec)
        if len(messages) >= batch_size:
            n_msgs += store.apply_batch("demo-mail", "maildir", Batch(messages=messages)).added
            messages = []
    if messages:
        n_msgs += store.apply_batch("demo-mail", "maildir", Batch(messages=messages)).added
    if events:
        data = build(manifest.seed, manifest.today)
        records = event_records(data, "demo-calendar", manifest.today)
        n_events = store.apply_batch("demo-calendar", "ics", Batch(events=records)).added
    return n_msgs, n_events
