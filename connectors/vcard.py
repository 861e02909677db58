"""vCard (2.1, 3.0, 4.0) as keepwarm contacts: the pure parsing the vCard files and CardDAV share.

Only what keepwarm needs is read: the name (``FN``, else ``N``), the email addresses (the
preferred one first), the birthday (``BDAY``), the anniversary (``ANNIVERSARY``,
``X-ANNIVERSARY``, or an Apple ``X-ABDATE`` labelled as one), the organisation (``ORG``, its
first part) and title (``TITLE``), and the groups (``CATEGORIES``, plus Apple / vCard 4 group
cards listing their members). Phone numbers, postal addresses, photos and notes are never read
into a record.

The parser is forgiving, as phone exports need: folded lines, vCard 2.1 quoted-printable values
and charsets, grouped properties (``item1.EMAIL``), lower-case names, a missing ``END:VCARD``.
A card without an email address is useless to keepwarm and counted as skipped.
"""

from __future__ import annotations

import hashlib
import quopri
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from keepwarm.connectors.base import ContactMeta
from keepwarm.connectors.headers import clean_text, normalize_address

NO_EMAIL = "contact without an email address"
BAD_CARD = "unparseable contact"
MAX_CARD = 256 * 1024  # a card larger than this is a photo with a name; only its text is read


@dataclass
class Prop:
    name: str
    params: dict[str, list[str]]
    value: str
    group: str = ""


@dataclass
class Card:
    """The properties of one vCard, by upper-case name."""

    props: list[Prop] = field(default_factory=list)

    def all(self, name: str) -> list[Prop]:
        return [p for p in self.props if p.name == name]

    def first(self, name: str) -> str:
        for p in self.props:
            if p.name == name and p.value.strip():
                return p.value.strip()
        return ""


_UNFOLD = re.compile(r"\r?\n[ \t]")
_LINE = re.compile(r"^(?:([A-Za-z0-9-]+)\.)?([A-Za-z0-9-]+)((?:;[^:]*)?):(.*)$", re.S)


def _lines(text: str) -> list[str]:
    """Logical lines: folded lines joined, and vCard 2.1 quoted-printable soft breaks too."""
    text = _UNFOLD.sub("", text)
    out: list[str] = []
    for line in re.split(r"\r\n|\r|\n", text):
        if out and out[-1].endswith("=") and "QUOTED-PRINTABLE" in out[-1].upper().split(":", 1)[0]:
            out[-1] = out[-1][:-1] + line
        else:
            out.append(line)
    return out


def _params(raw: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for part in re.findall(r';((?:"[^"]*"|[^;])*)', raw):
        if "=" in part:
            key, _, value = part.partition("=")
            values = [v.strip().strip('"') for v in value.split(",")]
        else:  # vCard 2.1: ;PREF;INTERNET;QUOTED-PRINTABLE
            key, values = "TYPE", [part.strip()]
            if part.strip().upper() in ("QUOTED-PRINTABLE", "BASE64", "8BIT", "7BIT"):
                key = "ENCODING"
        out.setdefault(key.strip().upper(), []).extend(v for v in values if v)
    return out


def _decode(value: str, params: dict[str, list[str]]) -> str:
    encoding = {v.upper() for v in params.get("ENCODING", [])}
    if "QUOTED-PRINTABLE" in encoding:
        charset = (params.get("CHARSET") or ["utf-8"])[0]
        raw = quopri.decodestring(value.encode("latin-1", "replace"))
        try:
            return raw.decode(charset, "replace")
        except LookupError:
            return raw.decode("utf-8", "replace")
    if encoding & {"B", "BASE64"}:
        return ""  # a photo or a key: nothing keepwarm reads
    return value


def _unescape(value: str) -> str:
    return re.sub(r"\\([\\,;nN])", lambda m: "\n" if m.group(1) in "nN" else m.group(1), value)


def _split(value: str, sep: str) -> list[str]:
    """Split on unescaped separators, then unescape each part."""
    parts = re.split(rf"(?<!\\){re.escape(sep)}", value)
    return [_unescape(p) for p in parts]


def parse(text: str) -> Iterator[Card]:
    """Every vCard in ``text`` (a file may hold many)."""
    card: Card | None = None
    for line in _lines(text):
        if not line.strip():
            continue
        upper = line.strip().upper()
        if upper == "BEGIN:VCARD":
            if card is not None:  # a missing END:VCARD
                yield card
            card = Card()
            continue
        if upper == "END:VCARD":
            if card is not None:
                yield card
            card = None
            continue
        if card is None:
            continue
        m = _LINE.match(line)
        if not m:
            continue
        group, name, raw_params, value = m.groups()
        params = _params(raw_params or "")
        card.props.append(Prop(name.upper(), params, _decode(value, params), (group or "").lower()))
    if card is not None:
        yield card


# -- dates ----------------------------------------------------------------------------------------
_DATE = re.compile(
    r"^(?:(\d{4})-?(\d{2})-?(\d{2})|--(\d{2})-?(\d{2}))(?:T.*)?$"  # 1985-04-12, 19850412, --0412
)


def date_value(text: str) -> str | None:
    """``YYYY-MM-DD`` or ``--MM-DD`` from the date forms vCards and exports use; None if none."""
    t = text.strip()
    m = _DATE.match(t)
    if not m:
        return None
    if m.group(1):
        year, month, day = m.group(1), m.group(2), m.group(3)
        if year in ("1604", "0000", "1900") and t.startswith(year):  # Apple/Google: year unknown
            year = ""
    else:
        year, month, day = "", m.group(4), m.group(5)
    if not (1 <= int(month) <= 12 and 1 <= int(day) <= 31):
        return None
    return f"{year}-{month}-{day}" if year else f"--{month}-{day}"


def month_day(value: str | None) -> str | None:
    """``MM-DD`` of a stored ``YYYY-MM-DD`` / ``--MM-DD`` date."""
    if not value:
        return None
    return value[-5:]


# -- a card as a contact --------------------------------------------------------------------------
def _name(card: Card) -> str:
    fn = _unescape(card.first("FN"))
    if not fn:
        n = card.first("N")
        if n:
            parts = [*_split(n, ";"), "", "", "", "", ""]
            family, given, middle, prefix, suffix = (p.strip() for p in parts[:5])
            fn = " ".join(x for x in (prefix, given, middle, family, suffix) if x)
    return clean_text(fn)[:200].strip()


def _emails(card: Card) -> tuple[str, ...]:
    ranked: list[tuple[int, int, str]] = []
    for i, p in enumerate(card.all("EMAIL")):
        email = normalize_address(_unescape(p.value).strip().removeprefix("mailto:"))
        if email is None:
            continue
        types = {t.upper() for t in p.params.get("TYPE", [])}
        pref = p.params.get("PREF", [])
        rank = 0 if "PREF" in types else 1
        if pref:
            try:
                rank = min(rank, int(pref[0]) - 100)  # vCard 4: PREF=1 is the most preferred
            except ValueError:
                rank = 0
        ranked.append((rank, i, email))
    return tuple(dict.fromkeys(e for _r, _i, e in sorted(ranked)))


def _labels(card: Card) -> dict[str, str]:
    return {p.group: p.value.casefold() for p in card.all("X-ABLABEL") if p.group}


def _anniversary(card: Card) -> str | None:
    for name in ("ANNIVERSARY", "X-ANNIVERSARY", "X-MS-ANNIVERSARY", "X-EVOLUTION-ANNIVERSARY"):
        value = date_value(card.first(name))
        if value:
            return value
    labels = _labels(card)
    for p in card.all("X-ABDATE"):
        if "anniversary" in labels.get(p.group, ""):
            value = date_value(p.value)
            if value:
                return value
    return None


def _organisation(card: Card) -> tuple[str | None, str | None]:
    org = _split(card.first("ORG"), ";")[0] if card.first("ORG") else ""
    title = _unescape(card.first("TITLE"))
    org = clean_text(org)[:200].strip()
    title = clean_text(title)[:200].strip()
    return org or None, title or None


def _groups(card: Card) -> tuple[str, ...]:
    out: list[str] = []
    for p in card.all("CATEGORIES"):
        out += [clean_text(g).strip() for g in _split(p.value, ",")]
    return tuple(dict.fromkeys(g[:100] for g in out if g and g.lower() != "mycontacts"))


def uid_of(card: Card) -> str:
    uid = card.first("UID")
    return uid.removeprefix("urn:uuid:").strip()


def is_group(card: Card) -> bool:
    kind = (card.first("KIND") or card.first("X-ADDRESSBOOKSERVER-KIND")).lower()
    return kind == "group"


def group_members(card: Card) -> tuple[str, list[str]]:
    """A group card's name and its members' UIDs."""
    name = _name(card)
    members = [
        p.value.strip().removeprefix("urn:uuid:")
        for p in card.all("MEMBER") + card.all("X-ADDRESSBOOKSERVER-MEMBER")
    ]
    return name, [m for m in members if m]


def contact_of(
    card: Card, account: str, provider_id: str, extra_groups: tuple[str, ...] = ()
) -> ContactMeta | str:
    """The contact of one card, or the reason it is skipped."""
    emails = _emails(card)
    if not emails:
        return NO_EMAIL
    org, title = _organisation(card)
    return ContactMeta(
        account=account,
        provider_id=provider_id,
        name=_name(card),
        emails=emails,
        birthday=date_value(card.first("BDAY")),
        anniversary=_anniversary(card),
        organisation=org,
        title=title,
        groups=tuple(dict.fromkeys((*_groups(card), *extra_groups))),
    )


def card_key(card: Card, text_index: int) -> str:
    """A stable key for a card inside a file: its UID, else a hash of its name and addresses."""
    uid = uid_of(card)
    if uid:
        return uid[:200]
    basis = f"{_name(card)}|{','.join(_emails(card))}|{text_index}"
    return "nouid-" + hashlib.blake2b(basis.encode(), digest_size=8).hexdigest()


def contacts_of(text: str, account: str, prefix: str) -> tuple[list[ContactMeta], dict[str, int]]:
    """Every contact of a vCard file or resource (provider ids ``PREFIX#KEY``), and the skips.

    Group cards (Apple, vCard 4) give their name to their members' groups."""
    cards = list(parse(text[: 64 * 1024 * 1024]))
    membership: dict[str, list[str]] = {}
    for card in cards:
        if is_group(card):
            name, members = group_members(card)
            for uid in members:
                membership.setdefault(uid, []).append(name)
    out: list[ContactMeta] = []
    skips: dict[str, int] = {}
    seen: set[str] = set()
    for i, card in enumerate(cards):
        if is_group(card):
            continue
        key = card_key(card, i)
        pid = f"{prefix}#{key}"
        if pid in seen:
            continue
        seen.add(pid)
        c = contact_of(card, account, pid, tuple(membership.get(uid_of(card), ())))
        if isinstance(c, str):
            skips[c] = skips.get(c, 0) + 1
        else:
            out.append(c)
    return out, skips
