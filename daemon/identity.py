"""Identity: which addresses are me, which are the same person, and which are not people at all.

``resolve(store, config, as_of)`` turns the stored addresses into clusters (:class:`Person`) with a
classification and the facts behind it:

self
    my configured addresses (Gmail dot/plus rules applied by the config loader) and each
    account's own address where the config names one (IMAP ``username`` when it is an address).
excluded
    anything matched by ``[exclude]``: addresses, domains (and their subdomains), globs (fnmatch
    over the whole address), regexes (searched in the whole address, case-insensitive).
robot
    automated senders by local part (noreply, donotreply, mailer-daemon, bounce*, notifications,
    ``*-noreply`` ...), matched by token so that ``newsom@`` is not ``news@``, and senders whose
    mail is mostly auto-submitted or sent with a null Return-Path.
list
    addresses whose mail is mostly list or bulk mail (List-Id, List-Unsubscribe, Precedence
    bulk/list/junk, Gmail promotion/social/update/forum categories), and list addresses that
    mostly receive such mail - unless there is real two-way contact with them.
role
    role mailboxes by first token of the local part (info@, support@, billing@ ...) plus
    ``people.role_accounts``, minus ``people.not_roles``.
person
    everyone else. ``two_way`` says whether there is a real relationship: at least one direct
    message each way (not list/bulk/automatic, at most ``engine.max_recipients`` recipients) or a
    small meeting (at most ``engine.max_attendees``) they accepted or organised.

An address gets the first kind that applies, in the order self, excluded, list, robot, role,
person; a cluster of several addresses (aliases) is self or excluded if any address is, else a
person if any address is, else the kind of its main address.

Messages carrying the ``keepwarm-digest`` marker (our own digests) are never interactions.
People are clusters: ``people.aliases`` merge addresses for sure; :func:`merge_candidates` only
lists likely merges (one display name at two addresses, a likely second address of mine).

The heavy lifting is a handful of GROUP BY queries (:mod:`keepwarm.daemon.store.activity`, given
their meaning by :func:`load_activity`), so resolving a store of a million messages costs a few
table scans, not a Python loop per message.
"""

from __future__ import annotations

import fnmatch
import functools
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from keepwarm.connectors.headers import display_name, normalize_address, not_a_person
from keepwarm.core.specs import ENGINE_DEFAULTS
from keepwarm.core.vocabulary import BULK_MARKERS, DIGEST_MARKER, FREEMAIL, is_auto
from keepwarm.daemon import address_book
from keepwarm.daemon.config import Config
from keepwarm.daemon.store import Store, activity

if TYPE_CHECKING:  # numpy and the engine load only where they run
    from keepwarm.daemon.mail_counts import MailCounts, MarkerClasses
    from keepwarm.digests.cadence.touches import EveryMessage

PersonKind = Literal["person", "list", "robot", "role", "excluded", "self"]

# -- vocabularies (list and automation headers: RFC 2369, RFC 3834, Gmail categories) ------------
# Robot local parts, compared against tokens and joined runs of up to three tokens.
ROBOT_WORDS = frozenset(
    {
        "noreply",
        "donotreply",
        "dontreply",
        "mailerdaemon",
        "postmaster",
        "notifications",
        "notification",
        "notify",
        "alerts",
        "alert",
        "newsletter",
        "newsletters",
        "news",
        "updates",
        "daemon",
        "autoreply",
        "autoresponder",
        "calendarnotification",
        "automated",
        "bot",
        "announce",
        "announcement",
        "announcements",
        "offers",
        "promo",
        "promos",
        "promotions",
        "mailer",
        "mailings",
        "register",
        "registration",
        "reminder",
        "reminders",
        "digest",
        "rssfeeds",
        "feeds",
        "bulletin",
        "broadcast",
    }
)
# Words of a display name that belong to an organisation or a service, not to a person.
ORG_NAME_WORDS = frozenset(
    {
        "services",
        "service",
        "member",
        "members",
        "membership",
        "team",
        "support",
        "news",
        "newsletter",
        "announcements",
        "announcement",
        "airlines",
        "airways",
        "preferred",
        "rewards",
        "customer",
        "customers",
        "club",
        "online",
        "email",
        "alerts",
        "store",
        "shop",
        "inc",
        "corp",
        "llc",
        "ltd",
        "gmbh",
        "foundation",
        "program",
        "programs",
        "department",
        "office",
        "center",
        "centre",
        "desk",
        "system",
        "notification",
        "notifications",
        "mileage",
        "sportsline",
        "expertfinder",
    }
)
ROBOT_PREFIXES = ("bounce",)  # bounce, bounces, bounce-12345 ...
ROLE_WORDS = frozenset(
    {
        "info",
        "support",
        "billing",
        "sales",
        "hello",
        "contact",
        "team",
        "help",
        "helpdesk",
        "feedback",
        "service",
        "services",
        "invites",
        "invite",
        "welcome",
        "admin",
        "administrator",
        "office",
        "marketing",
        "abuse",
        "noc",
        "security",
        "hostmaster",
        "webmaster",
        "www",
        "usenet",
        "uucp",
        "ftp",
        "accounts",
        "accounting",
        "invoice",
        "invoices",
        "payables",
        "receivables",
        "travel",
        "reservations",
        "bookings",
        "tickets",
        "rewards",
        "deals",
        "orders",
        "jobs",
        "careers",
        "hr",
        "press",
        "media",
        "enquiries",
        "inquiries",
        "reception",
        "customerservice",
        "customercare",
        "care",
        "general",
    }
)
# Role words also recognised at the end of a local part ("ibuyit.payables", "acme-billing").
DEPARTMENT_WORDS = frozenset(
    {"payables", "receivables", "billing", "invoices", "support", "helpdesk", "reservations"}
)
_TOKEN_SPLIT = re.compile(r"[.\-_+=]+")
# A sender is a list / robot when more than this share of its mail carries the evidence.
MOSTLY = 0.5
KIND_ORDER: tuple[PersonKind, ...] = ("self", "excluded", "list", "robot", "role", "person")


@dataclass(frozen=True)
class Person:
    key: str  # canonical address of the cluster (its most used address)
    name: str  # best display name
    addresses: tuple[str, ...]
    kind: PersonKind
    reasons: tuple[str, ...]  # human-readable facts behind the classification
    two_way: bool  # real two-way contact (docs/how-it-works.md, "What counts as contact")


def _person(
    key: str,
    name: str,
    addresses: tuple[str, ...],
    kind: PersonKind,
    reasons: tuple[str, ...],
    two_way: bool,
) -> Person:
    """``Person(...)`` without the frozen dataclass's six ``object.__setattr__`` calls (identity
    makes one per address of the store): the same fields in the same instance dictionary."""
    p = object.__new__(Person)
    p.__dict__.update(
        key=key, name=name, addresses=addresses, kind=kind, reasons=reasons, two_way=two_way
    )
    return p


@dataclass(frozen=True)
class Identity:
    people: Mapping[str, Person]  # key -> Person, every cluster of every kind
    person_of: Mapping[str, str]  # every known normalized address -> person key
    self_addresses: frozenset[str]


# -- per-address activity -------------------------------------------------------------------------
@dataclass(slots=True)
class AddressActivity:
    """What one address did up to ``as_of``: the aggregates identity and the stats are built on.

    "direct" messages are the ones that can count as a touch: not list/bulk, not automatic, at most
    ``engine.max_recipients`` recipients. Dates are UTC epoch seconds.
    """

    id: int
    email: str
    name: str
    sent: int = 0  # messages from this address (not from me)
    sent_bulk: int = 0
    sent_auto: int = 0
    sent_direct: int = 0
    in_first: int | None = None
    in_last: int | None = None
    out: int = 0  # messages from me with this address as To/Cc/Bcc
    out_direct: int = 0
    out_first: int | None = None
    out_last: int | None = None
    out_direct_last: int | None = None
    recv_other: int = 0  # To/Cc of messages not from me
    recv_bulk: int = 0
    meetings: int = 0  # small meetings (<= max_attendees) they did not decline
    meetings_accepted: int = 0  # ... that they accepted or organised
    meet_first: int | None = None
    meet_last: int | None = None

    @property
    def total(self) -> int:
        return self.sent + self.out + self.meetings


@dataclass
class Activity:
    """Every address's activity, plus what the queries needed to know.

    ``filed_as_sent`` holds the addresses (not configured as mine) that sent mail filed in my Sent
    folders: mail there is mine whatever its From says, so they are my delegates (an assistant).
    """

    by_id: dict[int, AddressActivity]
    self_ids: frozenset[int]
    as_of: datetime | None
    bulk_markers: tuple[str, ...] = ()
    by_email: dict[str, AddressActivity] = field(default_factory=dict)
    filed_as_sent: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if not self.by_email:
            self.by_email = {a.email: a for a in self.by_id.values()}


def marker_classes(names: Iterable[str]) -> MarkerClasses:
    """Which of these stored ``markers`` strings mean bulk, automatic, and our own digest."""
    bulk: set[str] = set()
    auto: set[str] = set()
    digest: set[str] = set()
    for markers in names:
        words = set(markers.split())
        if words & BULK_MARKERS:
            bulk.add(markers)
        if any(is_auto(w) for w in words):
            auto.add(markers)
        if DIGEST_MARKER in words:
            digest.add(markers)
    from keepwarm.daemon.mail_counts import MarkerClasses

    return MarkerClasses(frozenset(bulk), frozenset(auto), frozenset(digest))


def self_addresses(config: Config) -> frozenset[str]:
    """My addresses: the configured ones, my delegates (``[me] delegates``) and each account's
    own address where the config has one."""
    found = set(config.addresses) | set(config.delegates)
    for account in config.accounts:
        value = getattr(account.options, "username", None)
        if isinstance(value, str) and "@" in value:
            norm = normalize_address(value)
            if norm:
                found.add(norm)
    return frozenset(found)


FAR_FUTURE = 2**62


def load_activity(
    store: Store,
    config: Config,
    as_of: datetime | None = None,
    every: EveryMessage | None = None,
    addresses: Mapping[int, tuple[str, str]] | None = None,
) -> Activity:
    """Aggregate every address's mail and meetings up to ``as_of`` (all of history if None).
    ``every``: the messages, when already read with the engine's (up to ``as_of`` at least);
    ``addresses``: the stored addresses (id -> (email, name)), when already read with them."""
    me = self_addresses(config)
    rows = _address_rows(store, addresses)
    id_of = {email: aid for aid, email, _ in rows}
    self_ids = frozenset(id_of[e] for e in me if e in id_of)
    until = int(as_of.timestamp()) if as_of else FAR_FUTURE
    if every is None:
        every = read_every(store, until, {aid: (email, name or "") for aid, email, name in rows})
    classes = marker_classes(every.markers)
    max_r = int(config.engine.get("max_recipients") or ENGINE_DEFAULTS.max_recipients)
    from keepwarm.daemon.mail_counts import count_mail

    counts = count_mail(every, classes, self_ids, until, max_r, [aid for aid, _, _ in rows])
    del every
    by_id = _with_counts(rows, counts, self_ids)
    by_email = {a.email: a for a in by_id.values()}
    params: dict[str, Any] = {
        "as_of": until,
        "max_a": int(config.engine.get("max_attendees") or ENGINE_DEFAULTS.max_attendees),
    }
    _load_meetings(store, params, by_id)
    filed = frozenset(by_id[aid].email for aid in counts.filed_as_sent if aid in by_id)
    return Activity(by_id, self_ids, as_of, tuple(sorted(classes.bulk)), by_email, filed)


def _address_rows(
    store: Store, addresses: Mapping[int, tuple[str, str]] | None
) -> list[tuple[int, str, str | None]]:
    """Every stored address as (id, email, name): from ``addresses`` when already read."""
    if addresses is None:
        return activity.addresses(store.conn)
    return [(aid, email, name) for aid, (email, name) in addresses.items()]


def read_every(
    store: Store, until: int, addresses: Mapping[int, tuple[str, str]] | None = None
) -> EveryMessage:
    """Every stored message up to ``until`` (epoch seconds), as identity counts them."""
    from keepwarm.daemon.store.history import MessageStream
    from keepwarm.digests.cadence.touches import read_every as read

    return read(MessageStream(store.conn, addresses=addresses), until)


def _with_counts(
    rows: list[tuple[int, str, str | None]], counts: MailCounts, me: frozenset[int]
) -> dict[int, AddressActivity]:
    """Each stored address (id, email, name) with what it sent me, received from me and, for an
    address that never wrote to me directly (only such can be a list address, see
    _list_reason), what it received from others and how much of that is list or bulk mail."""
    by_id: dict[int, AddressActivity] = {}
    c = counts
    figures = zip(
        rows,
        c.sent,
        c.sent_bulk,
        c.sent_auto,
        c.sent_direct,
        c.in_first,
        c.in_last,
        c.out,
        c.out_direct,
        c.out_first,
        c.out_last,
        c.out_direct_last,
        c.received_other,
        c.received_bulk,
        strict=True,
    )
    for (
        aid,
        email,
        name,
    ), sent, bulk, auto, direct, i0, i1, out, od, o0, o1, odl, ro, rb in figures:
        if not rb or direct or aid in me:
            ro = rb = 0
        by_id[aid] = AddressActivity(
            aid, email, name or "", sent, bulk, auto, direct, i0, i1, out, od, o0, o1, odl, ro, rb
        )
    return by_id


def _load_meetings(store: Store, params: dict[str, Any], by_id: dict[int, AddressActivity]) -> None:
    for aid, n, acc, first, last in activity.meetings(store.conn, params):
        a = by_id.get(aid)
        if a is not None:
            a.meetings, a.meetings_accepted, a.meet_first, a.meet_last = n, acc or 0, first, last


# -- classification of one address -----------------------------------------------------------------
def local_tokens(email: str) -> list[str]:
    """The local part split on . - _ + = (a VERP / plus tag is just more tokens)."""
    local = email.rsplit("@", 1)[0].lower()
    if local.isalnum():  # no separator in it: one token (most local parts)
        return [local]
    return [t for t in _TOKEN_SPLIT.split(local) if t]


def _runs(tokens: list[str], longest: int = 3) -> Iterable[str]:
    """Each token and each joined run of up to ``longest`` adjacent tokens (no-reply -> noreply)."""
    for i in range(len(tokens)):
        for j in range(i + 1, min(len(tokens), i + longest) + 1):
            yield "".join(tokens[i:j])


def robot_word(email: str) -> str | None:
    """The robot word in the local part (``noreply`` for ``drive-shares-dm-noreply@``), if any."""
    # Every word _robot_word_in finds is in the joined tokens (the local part without its
    # separators): most local parts contain none of them, and one search says so (identity
    # classifies every address of the store).
    local = email.rsplit("@", 1)[0].lower()
    if not _robot_hint().search(local if local.isalnum() else _TOKEN_SPLIT.sub("", local)):
        return None
    return _robot_word_in(local_tokens(email))


def _robot_word_in(tokens: list[str]) -> str | None:
    """The rules of :func:`robot_word`: a robot word as a token or a joined run of tokens, a
    robot prefix or suffix of one token."""
    for run in _runs(tokens):
        if run in ROBOT_WORDS:
            return run
    for t in tokens:
        if t.startswith(ROBOT_PREFIXES):
            return t
        for w in ROBOT_SUFFIXES:  # one-word local parts: "hotfarealert", "dailynewsletter"
            if len(t) > len(w) + 2 and t.endswith(w):
                return w
    return None


# Robot words also recognised at the end of a one-word local part.
ROBOT_SUFFIXES = ("alert", "alerts", "notify", "newsletter", "mailer")


@functools.cache
def _robot_hint() -> re.Pattern[str]:
    """Any word :func:`_robot_word_in` looks for, anywhere (the cheap first test)."""
    words = sorted({*ROBOT_WORDS, *ROBOT_PREFIXES, *ROBOT_SUFFIXES}, key=lambda w: (-len(w), w))
    return re.compile("|".join(map(re.escape, words)))


# First labels of a sender's domain that mass-mailing services send from ("customermail.x.com",
# "e.x.com", "news.x.com", "x.m0.net"): with no two-way contact, such a sender is a robot.
BULK_SENDER_LABELS = frozenset(
    {
        "customermail",
        "email",
        "e",
        "em",
        "mail",
        "mailer",
        "mailings",
        "news",
        "newsletter",
        "newsletters",
        "offers",
        "promo",
        "promotions",
        "mkt",
        "marketing",
        "campaign",
        "campaigns",
        "bounce",
        "reply",
        "alerts",
        "updates",
        "info",
    }
)
BULK_SENDER_DOMAINS = frozenset({"m0.net", "mcsv.net", "rsgsv.net", "exacttarget.com", "bfi0.com"})


@functools.lru_cache(maxsize=1 << 14)  # many addresses share a domain
def _bulk_sender_domain(domain: str) -> str | None:
    """The mass-mailing part of a sender's domain (``customermail.expedia.com``), if any."""
    labels = domain.split(".")
    for i in range(len(labels) - 1):
        if ".".join(labels[i:]) in BULK_SENDER_DOMAINS:
            return ".".join(labels[i:])
    if len(labels) >= 3 and (
        labels[0] in BULK_SENDER_LABELS or re.fullmatch(r"e-?mail\w*", labels[0])
    ):
        return domain
    return None


# Domains that host mailing lists, and the first labels that name a list server.
LIST_HOST_DOMAINS = frozenset(
    {
        "yahoogroups.com",
        "egroups.com",
        "googlegroups.com",
        "groups.io",
        "onelist.com",
        "topica.com",
        "freelists.org",
        "listbox.com",
        "lists.sourceforge.net",
        "lists.debian.org",
        "lists.ubuntu.com",
        "lists.apache.org",
        "lists.fedoraproject.org",
    }
)
LIST_HOST_LABELS = frozenset({"lists", "list", "listserv", "listserver", "mailman", "majordomo"})


@functools.lru_cache(maxsize=1 << 14)  # many addresses share a domain
def _list_host(domain: str) -> str | None:
    """The list host in a domain (``yahoogroups.com``, ``lists.example.org``), if any."""
    labels = domain.split(".")
    for i in range(len(labels) - 1):
        suffix = ".".join(labels[i:])
        if suffix in LIST_HOST_DOMAINS:
            return suffix
    if len(labels) >= 3 and labels[0] in LIST_HOST_LABELS:
        return domain
    return None


_DIGITS = re.compile(r"\d")
_DOMAIN_IN_LOCAL = re.compile(r"\.(com|net|org)\d*$")
_DOMAIN_IN_NAME = re.compile(r"\.(com|net|org)\b")
_NAME_WORD_SPLIT = re.compile(r"[^a-z0-9]+")
_LABEL_SPLIT = re.compile(r"[.-]")
_NAME_AND_NUMBER = re.compile(r"[a-z][a-z._-]*\d+")  # a person's choice at a free-mail provider


def _first_last(name: str) -> tuple[str, str] | None:
    """("greg", "whalley") for "Greg Whalley" or "Whalley, Greg"; None for one word."""
    if name.count(",") == 1:
        last, first = name.split(",")
        name = f"{first} {last}"
    words = [re.sub(r"[^a-z]", "", w) for w in name.casefold().split()]
    words = [w for w in words if w]
    if len(words) < 2 or len(words[-1]) < 3:
        return None
    return words[0], words[-1]


def _my_alias(email: str, rules: Rules) -> bool:
    """``whalley@acme.com`` or ``gwhalley2@acme.com`` for Greg Whalley at acme.com: my surname,
    alone or with my initial or first name, at the domain of one of my addresses."""
    if not rules.my_words:
        return False
    local, _, domain = email.partition("@")
    if domain not in rules.my_domains:
        return False
    return _NOT_LETTER.sub("", local.lower()) in _alias_forms(rules.my_words)


_NOT_LETTER = re.compile(r"[^a-z]")


@functools.lru_cache(maxsize=8)
def _alias_forms(my_words: tuple[str, str]) -> frozenset[str]:
    """The local parts (letters only) that are my surname alone or with my initial or name."""
    first, last = my_words
    return frozenset({last, first[:1] + last, first + last, last + first[:1], last + first})


def machine_sender(email: str, name: str) -> str | None:
    """Why an address looks like a mass mailer's rather than a person's, or None: a generated
    local part (many digits, a domain inside it), or an organisation's display name ("Delta Air
    Lines", "TheStreet.com", "Yahoo! Member Services")."""
    local, _, domain = email.rpartition("@")
    numbered = len(_DIGITS.findall(local)) >= 4 and not (
        domain in FREEMAIL and _NAME_AND_NUMBER.fullmatch(local)  # jhess75671@aol.com: Jim Hess
    )
    if numbered or _DOMAIN_IN_LOCAL.search(local):
        return "automated sender: a generated address"
    name = display_name(name)  # "scott.josey@enron.com" as a name is no service's name
    if not name:
        return None
    folded = name.casefold()
    if "!" in name or _DOMAIN_IN_NAME.search(folded):
        return f'automated sender: "{name}" is the name of a service'
    hit = ORG_NAME_WORDS.intersection(_NAME_WORD_SPLIT.split(folded))
    if hit:
        return f'automated sender: "{name}" names an organisation ("{min(hit)}")'
    org = _domain_name(email, name)
    if org:
        return f'automated sender: "{name}" is the name of its domain ("{org}")'
    return None


_GENERIC_LABELS = frozenset({"com", "net", "org", "edu", "gov", "mail", "email", "www", "corp"})


def _domain_name(email: str, name: str) -> str | None:
    """The domain label that ``name`` spells, or None: "TD Waterhouse" sending from
    tdwaterhouse.com is the organisation, not a person, unless the local part is one of the
    name's words (john@johnsmith.com is John Smith at his own domain)."""
    words = [w for w in _NAME_WORD_SPLIT.split(name.casefold()) if w]
    if not words or "," in name:  # "Last, First" is how archives write people
        return None
    domain = email.rpartition("@")[2]
    compact = "".join(words)
    if compact not in domain:  # nor in its labels (most names)
        return None
    labels = {lab for lab in _LABEL_SPLIT.split(domain) if len(lab) >= 4} - _GENERIC_LABELS
    if compact in labels and not set(local_tokens(email)) & set(words):
        return compact
    return None


def role_word(email: str, extra: frozenset[str] = frozenset()) -> str | None:
    """The role word when the local part is a role mailbox (info@, support-team@, sales.emea@)."""
    tokens = local_tokens(email)
    if not tokens:
        return None
    words = _role_words(extra)
    joined = "".join(tokens)
    if joined in words:
        return joined
    if tokens[0] in words:
        return tokens[0]
    return tokens[-1] if len(tokens) > 1 and tokens[-1] in DEPARTMENT_WORDS else None


@functools.lru_cache(maxsize=8)
def _role_words(extra: frozenset[str]) -> frozenset[str]:
    return ROLE_WORDS | extra


class Exclusions:
    """The ``[exclude]`` table as a matcher that says which rule matched."""

    def __init__(self, exclude: Mapping[str, Any]) -> None:
        self.addresses = frozenset(exclude.get("addresses") or ())
        self.domains = tuple(
            str(d).lower().lstrip("@").strip(".") for d in exclude.get("domains") or ()
        )
        self.globs = tuple(str(g).lower() for g in exclude.get("globs") or ())
        self.regexes = tuple(re.compile(r, re.IGNORECASE) for r in exclude.get("regexes") or ())
        self._any = bool(self.addresses or self.domains or self.globs or self.regexes)

    def __bool__(self) -> bool:
        """Is there any rule? (none: nothing is excluded)"""
        return self._any

    def match(self, email: str) -> str | None:
        if email in self.addresses:
            return "listed in exclude.addresses"
        domain = email.rsplit("@", 1)[-1]
        for d in self.domains:
            if domain == d or domain.endswith("." + d):
                return f'domain matches exclude.domains "{d}"'
        for g in self.globs:
            if fnmatch.fnmatchcase(email, g):
                return f'matches exclude.globs "{g}"'
        for r in self.regexes:
            if r.search(email):
                return f'matches exclude.regexes "{r.pattern}"'
        return None


@dataclass(frozen=True)
class Rules:
    """Everything from the config that classification needs."""

    me: frozenset[str]
    exclusions: Exclusions
    roles: frozenset[str]
    not_roles: frozenset[str]
    delegates: frozenset[str] = frozenset()  # configured, or found in my Sent folders
    my_name: str | None = None  # name_key of [me] name
    not_me: frozenset[str] = frozenset()  # in a people.distinct group with one of my addresses
    my_words: tuple[str, str] | None = None  # my first name and surname, lower-case letters only
    my_domains: frozenset[str] = frozenset()  # the domains of my configured addresses

    @classmethod
    def from_config(cls, config: Config, filed_as_sent: frozenset[str] = frozenset()) -> Rules:
        people = config.people
        return cls(
            me=self_addresses(config),
            exclusions=Exclusions(config.exclude),
            roles=frozenset(str(r).lower() for r in people.get("role_accounts") or ()),
            not_roles=frozenset(people.get("not_roles") or ()),
            delegates=frozenset(config.delegates) | filed_as_sent,
            my_name=name_key(config.name),
            not_me=frozenset(
                e
                for group in people.get("distinct") or ()
                if set(group) & set(config.addresses)
                for e in group
                if e not in config.addresses
            ),
            my_words=_first_last(config.name),
            my_domains=frozenset(a.rpartition("@")[2] for a in config.addresses),
        )


def is_two_way(acts: Iterable[AddressActivity]) -> bool:
    """One direct message each way, or a small meeting they accepted, over all the addresses."""
    out = inbound = meet = False
    for a in acts:
        out = out or a.out_direct > 0
        inbound = inbound or a.sent_direct > 0
        meet = meet or a.meetings_accepted > 0
    return (out and inbound) or meet


def _share(part: int, whole: int) -> str:
    return f"{part} of {whole}"


Verdict = tuple[PersonKind, list[str]]


def classify(email: str, act: AddressActivity | None, rules: Rules) -> Verdict:
    """The kind of one address and the reasons, before clustering."""
    a = act or AddressActivity(0, email, "")
    mine = _yours_or_excluded(email, a, rules)
    if mine:
        return mine
    domain = email.rpartition("@")[2]
    two_way = (a.out_direct > 0 and a.sent_direct > 0) or a.meetings_accepted > 0  # is_two_way
    vouched = email in rules.not_roles  # the user says this role-looking address is a person
    list_reason = _list_reason(a) if a.sent_bulk or a.recv_bulk else None  # none without bulk
    found = _list_kind(email, domain, a, list_reason, two_way) or _robot_kind(
        email, domain, a, vouched, two_way
    )
    if found:
        return found
    role = None if vouched else role_word(email, rules.roles)
    if role:
        return "role", [f'role mailbox: "{role}" is a role, not a person']
    reasons = [list_reason + ", but you also write to each other directly"] if list_reason else []
    return "person", reasons


def _yours_or_excluded(email: str, a: AddressActivity, rules: Rules) -> Verdict | None:
    """One of my addresses (said so, or likely: my name, or my name at my domain), or excluded."""
    if email in rules.delegates:
        return "self", [
            "your delegate: sends mail filed in your Sent folders, or listed in me.delegates"
        ]
    if email in rules.me:
        return "self", ["one of your addresses (me.addresses or an account's own address)"]
    why = rules.exclusions.match(email) if rules.exclusions else None
    if why:
        return "excluded", [why]
    if email in rules.not_me:
        return None
    # each word of my name is in a name that has my name_key (name_key's words are runs of the
    # casefolded name): one look for my longest word spares name_key on every other address
    if (
        rules.my_name
        and _my_longest_word(rules.my_name) in a.name.casefold()
        and (name_key(a.name) == rules.my_name)
    ):
        return "self", [f'likely one of your addresses: its display name is yours ("{a.name}")']
    if a.sent == 0 and a.recv_other == 0 and _my_alias(email, rules):
        return "self", ["likely one of your addresses: your name at your domain"]
    return None


def _list_kind(
    email: str, domain: str, a: AddressActivity, list_reason: str | None, two_way: bool
) -> Verdict | None:
    """A mailing list (its host, a distribution list's address, or its mail's headers when we
    do not write to each other)."""
    host = _list_host(domain)
    if host:
        return "list", [f'a mailing list address ("{host}" hosts lists)']
    if not_a_person(email, a.name):
        return "list", ["a distribution list, room or calendar, not a person"]
    if list_reason and not two_way:  # header evidence first: updates@ximian.com is a list
        return "list", [list_reason]
    return None


def _robot_kind(
    email: str, domain: str, a: AddressActivity, vouched: bool, two_way: bool
) -> Verdict | None:
    """An automated sender: a robot's word in the address, a generated address or a mass
    mailer's (unless we write to each other), or mostly automatic mail."""
    if not vouched:
        word = robot_word(email)
        if word:
            return "robot", [f'automated sender: local part contains "{word}"']
        if not two_way:
            machine = machine_sender(email, a.name)
            if machine:
                return "robot", [machine]
            bulk_domain = _bulk_sender_domain(domain)
            if bulk_domain:
                return "robot", [f'automated sender: "{bulk_domain}" sends mass mail']
    if a.sent and a.sent_auto / a.sent > MOSTLY:
        return "robot", [
            f"{_share(a.sent_auto, a.sent)} messages from this address are automatic "
            "(Auto-Submitted or an empty Return-Path)"
        ]
    return None


@functools.cache
def _my_longest_word(key: str) -> str:
    """The longest word of a :func:`name_key`."""
    return max(key.split(), key=len)


def _list_reason(a: AddressActivity) -> str | None:
    if a.sent and a.sent_bulk / a.sent > MOSTLY:
        return f"{_share(a.sent_bulk, a.sent)} messages from this address are list or bulk mail"
    if a.recv_other and a.recv_bulk / a.recv_other > MOSTLY:  # only computed for non-writers
        return (
            f"a list address: {_share(a.recv_bulk, a.recv_other)} messages it received "
            "are list or bulk mail"
        )
    return None


# -- clusters -------------------------------------------------------------------------------------
class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, x: str) -> str:
        root = self.parent.setdefault(x, x)
        while root != self.parent[root]:
            root = self.parent[root]
        while x != root:
            self.parent[x], x = root, self.parent[x]
        return root

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def _clusters(
    emails: Iterable[str], config: Config, me: frozenset[str]
) -> tuple[list[str], list[list[str]]]:
    """The addresses alone (most), and the clusters of several that aliases or mine join."""
    uf = _UnionFind()  # only the addresses that aliases or mine join: the rest are alone
    for group in config.people.get("aliases") or ():
        group = [g for g in group if g]
        for other in group[1:]:
            uf.union(group[0], other)
    mine = sorted(me)
    for other in mine[1:]:
        uf.union(mine[0], other)
    joined = uf.parent
    groups: dict[str, list[str]] = {}
    for e in list(joined):
        groups.setdefault(uf.find(e), []).append(e)
    return [e for e in emails if e not in joined], list(groups.values())


def _cluster_kind(kinds: Mapping[str, PersonKind]) -> PersonKind:
    """Self and exclusions win; aliases assert a person, so any person address makes a person."""
    values = set(kinds.values())
    for k in ("self", "excluded", "person"):
        if k in values:
            return k  # type: ignore[return-value]
    return min(values, key=KIND_ORDER.index)


def _best_name(members: list[str], key: str, acts: Mapping[str, AddressActivity]) -> str:
    main = acts.get(key)
    if main is not None and main.name and "@" not in main.name:
        return main.name
    names = Counter(
        acts[e].name for e in members if e in acts and acts[e].name and "@" not in acts[e].name
    )
    if names:
        return names.most_common(1)[0][0]
    return key.split("@", 1)[0]


def _make_person(
    members: list[str], acts: Mapping[str, AddressActivity], rules: Rules, my_name: str
) -> Person:
    if len(members) == 1:  # most clusters (20,000 of them on a big store)
        return _one_address_person(members[0], acts, rules, my_name)
    members.sort(key=lambda e: (-(acts[e].total if e in acts else 0), e))
    key = members[0]
    kinds: dict[str, PersonKind] = {}
    reasons: list[str] = []
    for e in members:
        kind, why = classify(e, acts.get(e), rules)
        kinds[e] = kind
        reasons.extend(f"{e}: {w}" for w in why)
    kind = _cluster_kind(kinds)
    if kind != "self":
        reasons.append(f"{len(members)} addresses merged by people.aliases")
    cluster_acts = [acts[e] for e in members if e in acts]
    two_way = is_two_way(cluster_acts)
    reasons.append(_two_way_reason(cluster_acts, two_way))
    return Person(
        key=key,
        name=my_name if kind == "self" else _best_name(members, key, acts),
        addresses=tuple(members),
        kind=kind,
        reasons=tuple(reasons),
        two_way=two_way,
    )


def _one_address_person(
    key: str, acts: Mapping[str, AddressActivity], rules: Rules, my_name: str
) -> Person:
    """A cluster of one address: its own kind and reasons, and its own figures (what
    :func:`_make_person` works out for any cluster, without the sums and lists of several)."""
    a = acts.get(key)
    kind, why = classify(key, a, rules)
    if a is None:  # one of my addresses that is in no mail
        two_way, out, inbound, meet, name = False, 0, 0, 0, ""
    else:
        out, inbound, meet, name = a.out_direct, a.sent_direct, a.meetings_accepted, a.name
        two_way = (out > 0 and inbound > 0) or meet > 0  # is_two_way of one address
    if kind == "self":
        name = my_name
    elif not name or "@" in name:  # _best_name of one address
        name = key.split("@", 1)[0]
    return _person(
        key, name, (key,), kind, (*why, _contact_reason(out, inbound, meet, two_way)), two_way
    )


def _two_way_reason(acts: list[AddressActivity], two_way: bool) -> str:
    out = sum(a.out_direct for a in acts)
    inbound = sum(a.sent_direct for a in acts)
    meet = sum(a.meetings_accepted for a in acts)
    return _contact_reason(out, inbound, meet, two_way)


def _contact_reason(out: int, inbound: int, meet: int, two_way: bool) -> str:
    """The reason every person has: the direct messages each way and the meetings."""
    return (
        f"{'two-way contact' if two_way else 'no two-way contact yet'}: {out} direct messages"
        f" from you, {inbound} to you, {meet} small meetings they accepted"
    )


def resolve_activity(activity: Activity, config: Config) -> Identity:
    """Build the identity from already loaded activity (lets the CLI reuse one load for stats)."""
    rules = Rules.from_config(config, activity.filed_as_sent)
    # in the order the addresses were loaded (the same objects one after the other in memory)
    emails = [*activity.by_email, *(e for e in sorted(rules.me) if e not in activity.by_email)]
    alone, joined = _clusters(emails, config, rules.me)
    acts, my_name = activity.by_email, config.name
    made = [_one_address_person(e, acts, rules, my_name) for e in alone]
    made += [_make_person(m, acts, rules, my_name) for m in joined]
    made = _merge_same_names(made, acts, rules, config)
    if address_book.of(config):  # names and reasons from your address book
        made = [address_book.annotate(p, config) for p in made]
    return Identity(
        people={p.key: p for p in made},
        person_of={e: p.key for p in made for e in p.addresses},
        self_addresses=frozenset(e for p in made if p.kind == "self" for e in p.addresses),
    )


SAME_NAME_MAX = 3  # more addresses than this sharing a full name are likely different people


def _merge_same_names(
    made: list[Person], acts: Mapping[str, AddressActivity], rules: Rules, config: Config
) -> list[Person]:
    """People at several addresses under one full display name ("Maria Lopez" at work and at
    home) are one person, unless ``people.distinct`` says otherwise: then an answer from the
    other address closes the loop, and the history is one."""
    distinct = [set(g) for g in config.people.get("distinct") or ()]
    groups: dict[str, list[Person]] = defaultdict(list)
    out: list[Person] = []
    for p in made:
        k = name_key(p.name) if p.kind == "person" else None
        if k:
            groups[k].append(p)
        else:
            out.append(p)
    for _k, group in sorted(groups.items()):  # one order whatever the hash seed
        if len(group) == 1:  # most names: nothing to merge
            out.append(group[0])
            continue
        group.sort(key=lambda p: p.key)
        out.extend(_merge_group(group, distinct, acts, rules, config))
    return out


def _merge_group(
    group: list[Person],
    distinct: list[set[str]],
    acts: Mapping[str, AddressActivity],
    rules: Rules,
    config: Config,
) -> list[Person]:
    """People of one display name as one person, or as they were: when alone, too many, or
    two of their addresses are ``people.distinct``."""
    if len(group) == 1 or len(group) > SAME_NAME_MAX:
        return group
    members = sorted(e for p in group for e in p.addresses)
    if any(len(d & set(members)) > 1 for d in distinct):
        return group
    merged = _make_person(list(members), acts, rules, config.name)
    note = f'{len(group)} addresses merged: same display name "{merged.name}"'
    return [
        Person(
            merged.key,
            merged.name,
            merged.addresses,
            merged.kind,
            (*merged.reasons, note),
            merged.two_way,
        )
    ]


def resolve(store: Store, config: Config, as_of: datetime | None = None) -> Identity:
    """Every address cluster with its classification, from history up to ``as_of``."""
    return resolve_activity(load_activity(store, config, as_of), config)


# -- likely merges ------------------------------------------------------------------------------
_PAREN = re.compile(r"\([^)]*\)|\[[^\]]*\]")
_NONWORD = re.compile(r"[^\w\s]+")


def name_key(name: str) -> str | None:
    """A comparable form of a display name, or None when it is too weak to match on.

    ``"Lopez, Maria (OldCorp)"``, ``"Lopez  Maria"`` and ``"maria lopez"`` give the same key (the
    words in sorted order: exports write names first-last, last-first or "last, first"); one-word
    names (``"Support"``, ``"John"``) and names that are addresses give None.
    """
    if not name or "@" in name:
        return None
    folded = (_PAREN.sub(" ", name) if "(" in name or "[" in name else name).casefold()
    words = folded.split()
    # only letters and digits between the spaces (str.isalnum is re's \w but "_", and split's
    # spaces are re's \s): nothing for _NONWORD to replace
    if not "".join(words).isalnum():
        words = _NONWORD.sub(" ", folded).split()
    if len(words) < 2:
        return None
    return " ".join(sorted(words))


def merge_candidates(identity: Identity) -> list[tuple[Person, Person, str]]:
    """Likely merges for the user to confirm (``people.aliases``), each with the reason.

    People with the same full display name are merged already (see :func:`_merge_same_names`);
    these are the weaker matches: the same surname with a compatible first name ("Jeff Shankman"
    and "Jeffrey A. Shankman"), a very common full name, and addresses that look like mine (the
    local part of one of my addresses), paired with my own cluster.
    """
    out: list[tuple[Person, Person, str]] = []
    people = sorted(identity.people.values(), key=lambda p: p.key)
    mine = [p for p in people if p.kind == "self"]
    by_word: dict[str, list[Person]] = defaultdict(list)
    for p in people:
        k = name_key(p.name)
        if k and p.kind == "person":
            for w in set(k.split()):
                if len(w) >= 3:
                    by_word[w].append(p)
    pairs: set[tuple[str, str]] = set()
    for group in by_word.values():
        if not 2 <= len(group) <= 6:
            continue
        for i, a in enumerate(group):
            for b in group[i + 1 :]:
                pair = (min(a.key, b.key), max(a.key, b.key))
                if pair not in pairs and _similar_names(a.name, b.name):
                    pairs.add(pair)
                    out.append((a, b, _same_name_reason(a, b)))
    if mine:
        out.extend(_likely_self(mine[0], people))
    return out


def _similar_names(a: str, b: str) -> bool:
    """One shared word, and the others compatible: "Jeff Shankman" ~ "Jeffrey A. Shankman"."""
    wa = {w for w in (name_key(a) or "").split() if len(w) > 1}
    wb = {w for w in (name_key(b) or "").split() if len(w) > 1}
    shared = wa & wb
    ra, rb = wa - shared, wb - shared
    if not shared or not ra or not rb:
        return bool(shared) and wa == wb
    return any(
        min(len(x), len(y)) >= 3 and (x.startswith(y) or y.startswith(x)) for x in ra for y in rb
    )


def _same_name_reason(a: Person, b: Person) -> str:
    da, db = a.key.rsplit("@", 1)[-1], b.key.rsplit("@", 1)[-1]
    where = f"at {da} and {db}" if da != db else f"at two addresses on {da}"
    if name_key(a.name) == name_key(b.name):
        return f'same display name "{a.name}" {where}'
    return f'similar names "{a.name}" and "{b.name}" {where}'


def _likely_self(me: Person, people: list[Person]) -> list[tuple[Person, Person, str]]:
    my_names = {k for k in (name_key(me.name),) if k}
    my_locals = {e.split("@", 1)[0] for e in me.addresses if len(e.split("@", 1)[0]) >= 4}
    out: list[tuple[Person, Person, str]] = []
    for p in people:
        if p.kind in ("self", "list", "robot", "excluded"):
            continue
        if name_key(p.name) in my_names:
            out.append((me, p, f'likely one of your addresses: display name "{p.name}"'))
        elif any(e.split("@", 1)[0] in my_locals for e in p.addresses):
            out.append((me, p, "likely one of your addresses: same local part as yours"))
    return out
