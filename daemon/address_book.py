"""Your address book (vCard files, CardDAV, Google and Outlook contacts) as identity input.

What contacts do, applied like config (:func:`apply`, where your decisions are applied too, so
identity, the engine and every screen see them alike):

- all of a contact's addresses are one person (``[people] aliases``, from your address book);
- a contact's name is the person's name everywhere, preferred over mail display names
  (:func:`annotate`, called once by identity);
- birthdays feed occasions (``[people] birthdays``; the config's own entry wins), and so do
  anniversaries (:meth:`AddressBook.anniversaries`);
- organisation and title feed the job-change and introduction logic
  (:meth:`AddressBook.organisations`);
- contact groups pin tiers: ``members = ["group:Board"]`` is every address of the contacts in
  the group "Board".

A contact alone is not a relationship: it still needs contact both ways in mail or meetings.

Conflicts are resolved, and explained by ``keepwarm person --why``:

- two contacts with the same name that share an address are one contact (a duplicate);
- an address in two contacts with different names (a shared family or team address) links
  neither: it is its own person, named by the mail;
- a merge of yours (``people.aliases``, ``keepwarm merge``) that joins two contacts wins: they
  are one person, and the name is that of the contact of the person's main address.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, TypeVar, cast

from keepwarm.daemon.config import Config, Tier
from keepwarm.daemon.store import Store
from keepwarm.daemon.store import contacts as contact_rows

GROUP_PREFIX = "group:"


@dataclass(frozen=True)
class Contact:
    """One contact as keepwarm uses it (duplicates of one contact already joined)."""

    name: str
    emails: tuple[str, ...]
    birthday: str | None = None  # YYYY-MM-DD or --MM-DD
    anniversary: str | None = None
    organisation: str | None = None
    title: str | None = None
    groups: tuple[str, ...] = ()
    previous_organisation: str | None = None
    previous_title: str | None = None
    organisation_since: int | None = None  # UTC epoch seconds of the change
    sources: tuple[str, ...] = ()  # the accounts it came from


@dataclass(frozen=True)
class AddressBook:
    contacts: tuple[Contact, ...] = ()
    contact_of: Mapping[str, Contact] = field(default_factory=dict)  # address -> its contact
    shared: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # address -> names
    yours: Mapping[str, str] = field(default_factory=dict)  # the config's own birthdays

    def __bool__(self) -> bool:
        return bool(self.contacts)

    def links(self) -> list[tuple[str, ...]]:
        """The address groups the address book says are one person."""
        return [c.emails for c in self.contacts if len(c.emails) > 1]

    def birthdays(self) -> dict[str, str]:
        return _dates(self.contacts, "birthday")

    def anniversaries(self) -> dict[str, str]:
        return _dates(self.contacts, "anniversary")

    def organisations(self) -> dict[str, Contact]:
        """Address -> the contact, for contacts with an organisation or a title."""
        return {e: c for c in self.contacts if c.organisation or c.title for e in c.emails}

    def group(self, name: str) -> tuple[str, ...]:
        want = name.strip().casefold()
        return tuple(
            sorted(
                {
                    e
                    for c in self.contacts
                    if want in {g.casefold() for g in c.groups}
                    for e in c.emails
                }
            )
        )


def _dates(contacts: Iterable[Contact], attr: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for c in contacts:
        value = getattr(c, attr)
        if value:
            for e in c.emails:
                out[e] = value[-5:]  # MM-DD
    return out


# -- loading --------------------------------------------------------------------------------------
def load(store: Store) -> AddressBook:
    """Every stored contact, duplicates joined, shared addresses set apart."""
    rows = contact_rows.all_rows(store.conn)
    if not rows:
        return AddressBook()
    emails: dict[int, list[str]] = defaultdict(list)
    for cid, email in contact_rows.all_emails(store.conn):
        emails[cid].append(email)
    raw: list[dict[str, Any]] = [
        {
            "account": r[1],
            "name": r[2] or "",
            "birthday": r[3],
            "anniversary": r[4],
            "organisation": r[5],
            "title": r[6],
            "groups": tuple(json.loads(r[7])) if r[7] else (),
            "previous_organisation": r[8],
            "previous_title": r[9],
            "organisation_since": r[10],
            "emails": tuple(emails.get(int(r[0]), ())),
        }
        for r in rows
    ]
    return build(raw)


def _same_name(a: str, b: str) -> bool:
    return not a or not b or " ".join(a.casefold().split()) == " ".join(b.casefold().split())


def build(raw: list[dict[str, Any]]) -> AddressBook:
    """The address book from raw contacts (dicts of :class:`Contact` fields plus ``account``)."""
    groups, shared = _join_duplicates(raw)
    contacts: list[Contact] = []
    contact_of: dict[str, Contact] = {}
    for members in groups:
        parts = [raw[i] for i in members]
        emails = tuple(dict.fromkeys(e for p in parts for e in p["emails"] if e not in shared))
        if not emails:
            continue
        card = _card(parts, emails)
        contacts.append(card)
        for e in emails:
            contact_of[e] = card
    return AddressBook(tuple(contacts), contact_of, shared)


def _join_duplicates(
    raw: list[dict[str, Any]],
) -> tuple[list[list[int]], dict[str, tuple[str, ...]]]:
    """The raw contacts grouped (indexes): contacts sharing an address under one name (or none)
    are one; and the addresses shared by contacts of different names (address -> the names)."""
    by_address: dict[str, list[int]] = defaultdict(list)
    for i, c in enumerate(raw):
        for e in c["emails"]:
            by_address[e].append(i)
    parent = list(range(len(raw)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    shared: dict[str, tuple[str, ...]] = {}
    for email, idx in by_address.items():
        names = {raw[i]["name"] for i in idx if raw[i]["name"]}
        if len({" ".join(n.casefold().split()) for n in names}) > 1:
            shared[email] = tuple(sorted(names))
            continue
        for i in idx[1:]:  # duplicates of one contact (same name, or unnamed)
            a, b = find(idx[0]), find(i)
            if a != b:
                parent[max(a, b)] = min(a, b)
    groups: dict[int, list[int]] = defaultdict(list)
    for i in range(len(raw)):
        groups[find(i)].append(i)
    return list(groups.values()), shared


def _card(parts: list[dict[str, Any]], emails: tuple[str, ...]) -> Contact:
    """One contact from its duplicates: the first value of each field wins."""
    return Contact(
        name=next((p["name"] for p in parts if p["name"]), ""),
        emails=emails,
        birthday=_first(parts, "birthday"),
        anniversary=_first(parts, "anniversary"),
        organisation=_first(parts, "organisation"),
        title=_first(parts, "title"),
        groups=tuple(dict.fromkeys(g for p in parts for g in p["groups"])),
        previous_organisation=_first(parts, "previous_organisation"),
        previous_title=_first(parts, "previous_title"),
        organisation_since=_first(parts, "organisation_since"),
        sources=tuple(dict.fromkeys(p["account"] for p in parts)),
    )


def _first(parts: list[dict[str, Any]], key: str) -> Any:
    return next((p[key] for p in parts if p.get(key)), None)


# -- applying -------------------------------------------------------------------------------------
def apply(config: Config, book: AddressBook) -> Config:
    """The config with the address book in it: its links as aliases (after yours), its birthdays
    where the config has none, ``group:NAME`` tier members expanded; and the book itself."""
    if not book:
        return config
    people = dict(config.people)
    people["aliases"] = (*tuple(people.get("aliases") or ()), *(list(g) for g in book.links()))
    birthdays = dict(book.birthdays())
    birthdays.update(people.get("birthdays") or {})  # your config wins
    people["birthdays"] = birthdays
    tiers = tuple(
        replace(t, members=_expand(t.members, book)) if _has_groups(t) else t for t in config.tiers
    )
    mine = dict(config.people.get("birthdays") or {})
    return replace(config, people=people, tiers=tiers, address_book=replace(book, yours=mine))


def _has_groups(t: Tier) -> bool:
    return any(m.startswith(GROUP_PREFIX) for m in t.members)


def _expand(members: tuple[str, ...], book: AddressBook) -> tuple[str, ...]:
    out: list[str] = []
    for m in members:
        if m.startswith(GROUP_PREFIX):
            out.extend(book.group(m[len(GROUP_PREFIX) :]))
        else:
            out.append(m)
    return tuple(dict.fromkeys(out))


def engine_inputs(config: Config) -> dict[str, Any]:
    """The engine settings the address book fills: anniversaries and organisations by address."""
    from keepwarm.digests.cadence import Organisation

    book = of(config)
    return {
        "anniversaries": book.anniversaries(),
        "organisations": {
            e: Organisation(
                c.organisation or "", c.title, c.previous_organisation, c.organisation_since
            )
            for e, c in book.organisations().items()
        },
    }


def of(config: Config) -> AddressBook:
    book = config.address_book
    return book if isinstance(book, AddressBook) else AddressBook()


# -- identity -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Naming:
    """What the address book says of one identity cluster: the name, and the reasons."""

    name: str | None
    reasons: tuple[str, ...]


def explain(
    members: list[str],
    key: str,
    mail_name: str,
    config: Config,
) -> Naming:
    """The address book's name for a cluster (``members``, main address ``key``) and the lines
    ``person --why`` shows: which contact, which source won a conflict, and why."""
    book = of(config)
    if not book:
        return Naming(None, ())
    cards: list[Contact] = []
    for e in members:
        c = book.contact_of.get(e)
        if c is not None and all(c is not x for x in cards):
            cards.append(c)
    reasons = _shared_why(book, members)
    if not cards:
        return Naming(None, tuple(reasons))
    main = book.contact_of.get(key) or cards[0]
    reasons += _cards_why(book, members, cards)
    name = main.name or None
    if name and mail_name and name != mail_name:
        reasons.append(f'name "{name}" from your address book (mail says "{mail_name}")')
    elif name:
        reasons.append(f'name "{name}" from your address book')
    reasons.extend(_dates_why(main, members, config))
    if main.organisation or main.title:
        reasons.append(f"{work(main)} (your address book)")
    return Naming(name, tuple(reasons))


def _shared_why(book: AddressBook, members: list[str]) -> list[str]:
    """Why addresses of the cluster are linked to no contact (several contacts share them)."""
    reasons = []
    for e in members:
        if e in book.shared:
            names = ", ".join(f'"{n}"' for n in book.shared[e])
            reasons.append(
                f"{e} is in {len(book.shared[e])} contacts of your address book ({names}): "
                "it is linked to none of them"
            )
    return reasons


def _cards_why(book: AddressBook, members: list[str], cards: list[Contact]) -> list[str]:
    """Which addresses one contact joins, and whether the user's merges joined contacts."""
    reasons = []
    for c in cards:
        here = [e for e in members if book.contact_of.get(e) is c]
        if len(here) > 1:
            reasons.append(
                f"{', '.join(here)}: one contact in your address book"
                + (f' ("{c.name}")' if c.name else "")
            )
    if len(cards) > 1:
        names = ", ".join(f'"{c.name}"' if c.name else "an unnamed contact" for c in cards)
        reasons.append(
            f"your merges (people.aliases or keepwarm merge) join {len(cards)} contacts of your "
            f"address book ({names}): your merge wins, they are one person"
        )
    return reasons


def _dates_why(c: Contact, members: list[str], config: Config) -> list[str]:
    out: list[str] = []
    if c.birthday:
        md = c.birthday[-5:]
        mine = next((of(config).yours[e] for e in members if e in of(config).yours), None)
        if mine and mine != md:
            out.append(
                f"birthday {mine} from your config (your address book says {md}): your config wins"
            )
        else:
            out.append(f"birthday {md} from your address book")
    if c.anniversary:
        out.append(f"anniversary {c.anniversary[-5:]} from your address book")
    return out


def work(c: Contact) -> str:
    """``works at Acme as CTO`` / ``works at Acme`` / ``CTO``."""
    if c.organisation and c.title:
        return f"works at {c.organisation} as {c.title}"
    if c.organisation:
        return f"works at {c.organisation}"
    return str(c.title or "")


def merged_reason(n: int, members: list[str], config: Config) -> str:
    """Identity's line for a cluster of several addresses: who merged them."""
    book = of(config)
    by_book = set(map(tuple, book.links())) if book else set()
    yours = [
        g
        for g in (config.people.get("aliases") or ())
        if tuple(g) not in by_book and len(set(g) & set(members)) > 1
    ]
    if book and not yours:
        return f"{n} addresses merged by your address book"
    if yours and not any(book.contact_of.get(e) for e in members):
        return f"{n} addresses merged by people.aliases"
    return f"{n} addresses merged by people.aliases and your address book"


class _Person(Protocol):
    """identity's ``Person`` (identity imports this module, so it is named by its shape here)."""

    @property
    def key(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def addresses(self) -> tuple[str, ...]: ...
    @property
    def kind(self) -> str: ...
    @property
    def reasons(self) -> tuple[str, ...]: ...


P = TypeVar("P", bound=_Person)


def annotate(person: P, config: Config) -> P:
    """Identity's hook: the person with the address book's name and reasons (what
    ``person --why`` shows); the user's own cluster is left as it is."""
    book = of(config)
    if not book or person.kind == "self":
        return person
    members = list(person.addresses)
    naming = explain(members, person.key, person.name, config)
    if naming.name is None and not naming.reasons:
        return person
    generic = f"{len(members)} addresses merged by people.aliases"
    reasons = [
        merged_reason(len(members), members, config) if r == generic else r for r in person.reasons
    ]
    at = next((i for i, r in enumerate(reasons) if "two-way contact" in r), len(reasons))
    reasons[at:at] = naming.reasons
    return cast(
        P, replace(cast(Any, person), name=naming.name or person.name, reasons=tuple(reasons))
    )
