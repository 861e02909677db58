"""Suggestion kinds: one spec per kind, with everything the digest needs to know about it.

A :class:`KindSpec` holds a kind's section and label in the digest, its base weight in ranking,
whether anyone in the network may get it (a light touch) or only the core, whether it may repeat
a person inside the cooldown, how many a day at most, and how it is worded: one concrete touch
that adds value for the other person, built from the engine's facts (typed per kind: the phrase
of a kind takes the facts type(s) of ``cadence/facts.py`` that its signals carry). Adding a kind
is one entry in :data:`SPECS` (with its facts and its signal in the engine); tests fail when an
engine signal kind has no spec, or a phrase takes other facts than its kind carries.

Wording rules: say what to do and why, in a person's words; quote a subject only when it means
something (see ``cadence/subjects.py``) and is the thread the suggestion is about; never invent a
topic from another thread.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Generic, TypeVar
from zoneinfo import ZoneInfo

from keepwarm.digests.cadence.facts import (
    AwaitingReplyFacts,
    BalanceFacts,
    BirthdayFacts,
    BookAnniversaryFacts,
    BookJobChangeFacts,
    DomainChangeFacts,
    Facts,
    FirstContactAnniversaryFacts,
    GreetingFacts,
    IntroduceFacts,
    MeetingFollowupFacts,
    MeetingTodayFacts,
    NurtureFacts,
    ReplyOwedFacts,
    RhythmFacts,
)
from keepwarm.digests.cadence.model import SIGNAL_KINDS, SignalKind
from keepwarm.digests.cadence.subjects import bare, meaningful

MAX_NAME = 60
MAX_SUBJECT = 70

# -- text helpers ---------------------------------------------------------------------------------
_BIDI = {chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x061C)}


def clean_text(value: object, limit: int) -> str:
    """One line of display text: no control or bidi-override characters, bounded length.

    HTML escaping is the template's job (autoescape); this removes what escaping cannot:
    CR/LF (header injection), direction overrides (spoofed text) and absurd lengths.
    """
    s = "" if value is None else str(value)
    out = []
    for ch in s[: limit * 4]:
        if ch in _BIDI:
            continue
        cat = unicodedata.category(ch)
        if cat in ("Cc", "Cf", "Zl", "Zp"):
            out.append(" " if ch in "\r\n\t\u2028\u2029" else "")
            continue
        out.append(ch)
    text = " ".join("".join(out).split())
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text


def first_name(name: str, fallback: str) -> str:
    name = clean_text(name, MAX_NAME)
    if not name or "@" in name:
        local = fallback.split("@", 1)[0]
        part = local.replace(".", " ").replace("_", " ").replace("-", " ").split()
        return part[0].capitalize() if part and part[0].isalpha() else local
    if "," in name:  # "Lay, Kenneth"
        after = name.split(",", 1)[1].split()
        if after:
            return after[0]
    return name.split()[0]


def possessive(name: str) -> str:
    return f"{name}'" if name.endswith("s") else f"{name}'s"


def strip_prefixes(subject: str) -> str:
    """'Re: Fwd: Budget' -> 'Budget' (reply/forward markers in common languages, list tags)."""
    return bare(subject)


def quote(subject: str | None, *, topic: bool = True) -> str | None:
    """A subject in quotes. As a ``topic`` (something to talk about) only when it means
    something (not a greeting or a mail form); to name a thread, any subject with words."""
    if subject is None or not any(c.isalpha() for c in bare(subject)):
        return None
    if topic and not meaningful(subject):
        return None
    s = clean_text(strip_prefixes(clean_text(subject, MAX_SUBJECT + 20)), MAX_SUBJECT)
    return f"'{s}'" if s else None


def days(n: float | None) -> str | None:
    """``4 days``, ``3 months``; None for a missing value."""
    if n is None:
        return None
    d = round(n)
    if d <= 0:
        return "today"
    if d == 1:
        return "1 day"
    if d < 60:
        return f"{d} days"
    if d < 730:
        return f"{round(d / 30.4)} months"
    return f"{round(d / 365.25)} years"


def local_time(value: str, zone: ZoneInfo) -> str | None:
    """``14:00`` in ``zone`` for an ISO timestamp with its offset."""
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    return when.astimezone(zone).strftime("%H:%M") if when.tzinfo is not None else None


def day_of(value: str, zone: ZoneInfo) -> str | None:
    """``Tue 4 Jun`` for an ISO timestamp."""
    try:
        d = datetime.fromisoformat(value)
    except ValueError:
        return None
    local: date = d.astimezone(zone).date() if d.tzinfo else d.date()
    return f"{local:%a} {local.day} {local:%b}"


# -- phrasing -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Words:
    """What a phrase may use besides the kind's facts: the person's first name, the user's zone,
    the other person of an introduction."""

    who: str
    zone: ZoneInfo
    other: str | None = None


def _reply_owed(w: Words, f: ReplyOwedFacts) -> str:
    subject, waited = quote(f.subject, topic=False), days(f.days_waiting)
    chased = f.waiting_messages or 1
    if chased > 1:
        on = f" on {subject}" if subject else ""
        return f"Answer {w.who}{on}: {chased} messages waiting, the first {waited} ago"
    what = f"{possessive(w.who)} {subject}" if subject else f"{possessive(w.who)} message"
    return f"Reply to {what}" + (f" (waiting {waited})" if waited else "")


def _awaiting(w: Words, f: AwaitingReplyFacts) -> str:
    subject, waited = quote(f.subject, topic=False), days(f.days_waiting)
    about = f" about {subject}" if subject else ""
    return f"Nudge {w.who}{about}" + (f": no answer in {waited}" if waited else "")


def _fading(w: Words, f: RhythmFacts) -> str:
    topic = quote(f.topic)
    last = f" (you last talked about {topic})" if topic else ""
    return f"Check in with {w.who}: ask what they are working on now{last}"


def _dormant(w: Words, f: RhythmFacts) -> str:
    topic = quote(f.topic)
    since = days(f.days_since_contact)
    quiet = f" after {since}" if since and since != "today" else ""
    last = f", picking up {topic}" if topic else ": ask what they are working on now"
    return f"Reconnect with {w.who}{quiet}{last}"


def _lopsided_me(w: Words, f: BalanceFacts) -> str:
    return f"Let {w.who} lead: ask for their view on something they know well"


def _lopsided_them(w: Words, f: BalanceFacts) -> str:
    return f"Reach out to {w.who} first this time"


def _new(w: Words, f: NurtureFacts) -> str:
    topic = quote(f.topic)
    first = day_of(f.first_contact, w.zone)
    since = f" (you first talked on {first})" if first else ""
    what = f": share something useful on {topic}" if topic else ": suggest a short call"
    return f"Follow up with {w.who} while it is fresh{what}{since}"


def _growing(w: Words, f: NurtureFacts) -> str:
    topic = quote(f.topic)
    return f"Invest in {w.who}: suggest a short call" + (f" about {topic}" if topic else "")


def _meeting_followup(w: Words, f: MeetingFollowupFacts) -> str:
    title = quote(f.title, topic=False)
    on = f" after {title}" if title else " after your meeting"
    return f"Send {w.who} a short note{on} with the next step"


def _meeting_today(w: Words, f: MeetingTodayFacts) -> str:
    title = quote(f.title, topic=False)
    at = local_time(f.start, w.zone) or (clean_text(f.local_time, 5) or None)
    head = f"Prepare for {title or 'your meeting'}" + (f" at {at}" if at else "")
    topic = quote(f.topic)
    fresh = topic if topic and topic != title else None  # not the meeting itself again
    return f"{head} with {w.who}" + (f": last talked about {fresh}" if fresh else "")


def _birthday(w: Words, f: BirthdayFacts) -> str:
    n = f.days_until
    if n > 1:
        return f"Note {possessive(w.who)} birthday in {n} days, and send a wish on the day"
    return f"Wish {w.who} a happy birthday" + (" tomorrow" if n == 1 else " today")


def _anniversary(w: Words, f: FirstContactAnniversaryFacts | BookAnniversaryFacts) -> str:
    if isinstance(f, BookAnniversaryFacts):  # their anniversary (a wedding, a founding)
        n = f.days_until
        when = " today" if n == 0 else (" tomorrow" if n == 1 else "")
        return f"Wish {w.who} a happy anniversary{when}"
    years = f.years
    span = f"{years} year{'s' if years != 1 else ''}" if years else "a year"
    return f"Send {w.who} a note: {span} since your first conversation"


def _new_organisation(f: DomainChangeFacts | BookJobChangeFacts) -> str:
    """Where they are now: the new mail domain, or the organisation the address book names."""
    return clean_text(f.new_domain if isinstance(f, DomainChangeFacts) else f.new_org, 60)


def _job_change(w: Words, f: DomainChangeFacts | BookJobChangeFacts) -> str:
    org = _new_organisation(f)
    return f"Congratulate {w.who} on the new role" + (f" at {org}" if org else "")


def _greeting(w: Words, f: GreetingFacts) -> str:
    g = clean_text(f.greeting, 40)
    return f"Send {w.who} a {g} greeting" if g else f"Send {w.who} a seasonal greeting"


def _introduce(w: Words, f: IntroduceFacts) -> str:
    topic = clean_text(f.topic, 60)
    why = f": you have talked about '{topic}' with both" if topic else ""
    return f"Introduce {w.who} to {w.other or 'a contact'}{why}"


# -- "also" notes (a second reason to contact the same person today) -----------------------------
def _also_reply(f: ReplyOwedFacts) -> str:
    subject = quote(f.subject, topic=False)
    return "also: you owe a reply" + (f" on {subject}" if subject else "")


def _also_meeting(f: MeetingTodayFacts) -> str:
    title = quote(f.title, topic=False)
    at = clean_text(f.local_time, 5)
    return "also: you meet today" + (f" at {at}" if at else "") + (f" ({title})" if title else "")


def _also_birthday(f: BirthdayFacts) -> str:
    n = f.days_until
    when = "today" if n == 0 else "tomorrow" if n == 1 else f"in {n} days"
    return f"also: birthday {when}"


def _also_job(f: DomainChangeFacts | BookJobChangeFacts) -> str:
    org = _new_organisation(f)
    return "also: a new role" + (f" at {org}" if org else "")


# -- the specs ------------------------------------------------------------------------------------
F = TypeVar("F", bound=Facts)
SECTION_ORDER = ("reply", "meeting", "reconnect", "nurture", "rebalance", "occasion")


@dataclass(frozen=True)
class KindSpec(Generic[F]):
    """Everything about one suggestion kind (see the module docstring). ``F``: the facts the
    engine gives its signals (``cadence/facts.py``), which ``phrase`` and ``also`` read."""

    kind: SignalKind
    section: str
    label: str
    weight: float  # base value before urgency: what it is worth to the other person today
    phrase: Callable[[Words, F], str]
    light_touch: bool = False  # anyone in the network may get it, not only the core
    tiered: bool = False  # for anyone in a tier, even outside the core (young ties)
    cooldown_exempt: bool = False  # may repeat a person inside the cooldown
    also: Callable[[F], str] | None = None  # as a second reason, folded in
    daily_max: int | None = None  # at most this many a day
    counted: tuple[str, str] | None = None  # in the subject line: (one, many); else the label
    done: str = "in touch with {who}"  # what the next digest says once the user marked it done

    def count_words(self, n: int) -> str:
        """``2 replies owed``: the subject line counts items under their own heading."""
        one, many = self.counted or (self.label.lower(), self.label.lower())
        return f"{n} {one if n == 1 else many}"


_SPECS: tuple[KindSpec[Any], ...] = (
    KindSpec("reply_owed", "reply", "Reply owed", 1.4, _reply_owed, light_touch=True,
             cooldown_exempt=True, also=_also_reply, counted=("reply owed", "replies owed"),
             done="reply to {who}"),
    KindSpec("meeting_today", "meeting", "Meeting today", 1.3, _meeting_today, light_touch=True,
             cooldown_exempt=True, also=_also_meeting,
             counted=("meeting today", "meetings today"),
             done="prepare for the meeting with {who}"),
    KindSpec("meeting_followup", "meeting", "After the meeting", 1.1, _meeting_followup,
             light_touch=True, counted=("meeting to follow up", "meetings to follow up"),
             done="follow up with {who} after the meeting"),
    KindSpec("fading", "reconnect", "Reconnect", 1.0, _fading,
             counted=("to reconnect", "to reconnect"),
             done="reconnect with {who}"),
    KindSpec("dormant", "reconnect", "Reconnect", 0.7, _dormant,
             counted=("to reconnect", "to reconnect"),
             done="reconnect with {who}"),
    KindSpec("awaiting_reply", "reconnect", "Follow up", 0.8, _awaiting,
             counted=("to follow up", "to follow up"),
             done="follow up with {who}"),
    KindSpec("new", "nurture", "New contact", 0.75, _new, tiered=True,
             counted=("new contact", "new contacts"),
             done="follow up with {who}"),
    KindSpec("growing", "nurture", "Growing", 0.75, _growing, tiered=True,
             counted=("growing tie", "growing ties"),
             done="invest in {who}"),
    KindSpec("introduce", "nurture", "Introduce", 0.9, _introduce,
             counted=("introduction", "introductions"),
             done="introduce {who}"),
    KindSpec("lopsided_them", "rebalance", "Return the favour", 0.8, _lopsided_them,
             counted=("favour to return", "favours to return"),
             done="reach out to {who} first"),
    KindSpec("lopsided_me", "rebalance", "Rebalance", 0.5, _lopsided_me,
             counted=("to rebalance", "to rebalance"),
             done="let {who} lead"),
    KindSpec("occasion_birthday", "occasion", "Birthday", 1.1, _birthday, light_touch=True,
             also=_also_birthday, counted=("birthday", "birthdays"),
             done="wish {who} a happy birthday"),
    KindSpec("occasion_anniversary", "occasion", "Anniversary", 0.7, _anniversary,
             light_touch=True, counted=("anniversary", "anniversaries"),
             done="send {who} a note"),
    KindSpec("occasion_job_change", "occasion", "New role", 1.1, _job_change, light_touch=True,
             also=_also_job, counted=("new role", "new roles"),
             done="congratulate {who}"),
    KindSpec("occasion_greeting", "occasion", "Greeting", 0.5, _greeting, light_touch=True,
             counted=("greeting", "greetings"),
             done="send {who} a greeting"),
)  # fmt: skip
SPECS: dict[str, KindSpec[Any]] = {s.kind: s for s in _SPECS}
SECTIONS: dict[str, tuple[str, ...]] = {
    section: tuple(s.kind for s in _SPECS if s.section == section) for section in SECTION_ORDER
}
LABELS: dict[str, str] = {s.kind: s.label for s in _SPECS}
# What the next digest says of a whole section marked done (``keepwarm done PERSON reconnect``).
SECTION_DONE = {
    "reply": "reply to {who}",
    "reconnect": "reconnect with {who}",
    "rebalance": "rebalance with {who}",
    "nurture": "invest in {who}",
    "meeting": "the meeting with {who}",
    "occasion": "the occasion with {who}",
}


def done_phrase(kind: str | None) -> str:
    """``reply to {who}``: a kind or section marked done, as the next digest says it."""
    if kind in SPECS:
        return SPECS[kind].done
    return SECTION_DONE.get(kind or "", "in touch with {who}")


def spec(kind: str) -> KindSpec[Any]:
    """The spec of ``kind``; a kind without one is a programming error (a test guards it)."""
    try:
        return SPECS[kind]
    except KeyError:
        raise KeyError(
            f"no suggestion spec for the signal kind {kind!r} (digests/kinds.py)"
        ) from None


def phrase(kind: str, who: str, facts: Facts, zone: ZoneInfo, other: str | None = None) -> str:
    """One concrete touch, phrased as an action that adds value for the other person."""
    return spec(kind).phrase(Words(who, zone, other), facts)


def missing_specs() -> set[str]:
    """Engine signal kinds with no spec (must be empty)."""
    return {str(k) for k in SIGNAL_KINDS} - set(SPECS)
