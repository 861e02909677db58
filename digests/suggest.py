"""Signals from the cadence engine -> a short, ranked list of concrete, value-adding touches.

Each :class:`Suggestion` names the person, phrases ONE touch as an action that helps *them*
("Ask Tom how the Q3 launch went", "Reply to Maria's 'Budget review' (waiting 4 days)") and keeps
the engine's facts as reasons.

Ranking (``rank``): ``urgency x tier weight x strength factor``, then a greedy pick that

- keeps one suggestion per person (their most valuable one),
- skips snoozed people, and people shown within the cooldown unless a reply is owed (a meeting
  today is also allowed through: it is about today, not about the person's rhythm),
- spreads the day across kinds (no kind takes more than its share while others wait),
- gives the core of the network (the inner tiers / top 20% by strength) the cadence nudges, and
  the outer 80% only a light touch: owed replies, meetings and occasions,
- stops at the daily cap.

A suggestion resolves itself when the touch happens: the engine no longer emits the signal.
This module is pure: no SQL, no clock, no I/O.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo


class SignalLike(Protocol):
    """What the engine's ``Signal`` provides (read-only view)."""

    @property
    def kind(self) -> str: ...
    @property
    def person_key(self) -> str: ...
    @property
    def urgency(self) -> float: ...
    @property
    def facts(self) -> Mapping[str, Any]: ...
    @property
    def because(self) -> Sequence[str]: ...


class PersonLike(Protocol):
    """What the engine's ``PersonReport`` provides that ranking needs."""

    @property
    def key(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def tier(self) -> str | None: ...
    @property
    def strength(self) -> float: ...


# Sections group kinds for the subject line and the layout; order is the order shown.
SECTIONS: dict[str, tuple[str, ...]] = {
    "reply": ("reply_owed",),
    "meeting": ("meeting_today", "meeting_followup"),
    "reconnect": ("fading", "dormant", "awaiting_reply"),
    "nurture": ("new", "growing", "introduce"),
    "rebalance": ("lopsided_them", "lopsided_me"),
    "occasion": (
        "occasion_birthday",
        "occasion_anniversary",
        "occasion_job_change",
        "occasion_greeting",
    ),
}
SECTION_OF = {kind: section for section, kinds in SECTIONS.items() for kind in kinds}
LABELS = {
    "reply_owed": "Reply owed",
    "awaiting_reply": "Follow up",
    "fading": "Reconnect",
    "dormant": "Reconnect",
    "lopsided_me": "Rebalance",
    "lopsided_them": "Return the favour",
    "new": "New contact",
    "growing": "Growing",
    "meeting_followup": "After the meeting",
    "meeting_today": "Meeting today",
    "occasion_birthday": "Birthday",
    "occasion_anniversary": "Anniversary",
    "occasion_job_change": "New role",
    "occasion_greeting": "Greeting",
    "introduce": "Introduce",
}
# Kinds anyone in the network may get (the "light touch"); the rest only the core.
LIGHT_TOUCH = frozenset(
    {
        "reply_owed",
        "meeting_today",
        "meeting_followup",
        "occasion_birthday",
        "occasion_anniversary",
        "occasion_job_change",
        "occasion_greeting",
    }
)
# Kinds for young ties: by nature not yet among the strongest, so anyone in a tier may get them
# (the engine holds few at a time: "growing" is capped by [engine] max_growing).
YOUNG_TIE = frozenset({"new", "growing"})
# Kinds that may repeat a person inside the cooldown.
COOLDOWN_EXEMPT = frozenset({"reply_owed", "meeting_today"})
# Base value of a kind before urgency: what it is worth to the other person today.
KIND_WEIGHT = {
    "reply_owed": 1.4,
    "meeting_today": 1.3,
    "meeting_followup": 1.1,
    "occasion_birthday": 1.1,
    "occasion_job_change": 1.1,
    "fading": 1.0,
    "introduce": 0.9,
    "awaiting_reply": 0.8,
    "lopsided_them": 0.8,
    "growing": 0.75,
    "new": 0.75,
    "dormant": 0.7,
    "occasion_anniversary": 0.7,
    "lopsided_me": 0.5,
    "occasion_greeting": 0.5,
}
MAX_NAME = 60
MAX_SUBJECT = 70


@dataclass(frozen=True)
class Suggestion:
    kind: str
    person_key: str
    person_name: str
    person_address: str
    action: str
    reasons: tuple[str, ...]
    urgency: float
    score: float
    tier: str | None = None
    other_key: str | None = None
    other_name: str | None = None
    facts: Mapping[str, Any] = field(default_factory=dict)

    @property
    def section(self) -> str:
        return SECTION_OF.get(self.kind, "nurture")

    @property
    def label(self) -> str:
        return LABELS.get(self.kind, self.kind.replace("_", " ").capitalize())

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "section": self.section,
            "person": {
                "key": self.person_key,
                "name": self.person_name,
                "address": self.person_address,
            },
            "other": {"key": self.other_key, "name": self.other_name} if self.other_key else None,
            "tier": self.tier,
            "action": self.action,
            "reasons": list(self.reasons),
            "urgency": round(self.urgency, 3),
            "score": round(self.score, 4),
            "facts": {k: _jsonable(v) for k, v in self.facts.items()},
        }


def _jsonable(v: Any) -> Any:
    if isinstance(v, datetime | date):
        return v.isoformat()
    if isinstance(v, list | tuple | set | frozenset):
        return [_jsonable(x) for x in v]
    if isinstance(v, Mapping):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if v is None or isinstance(v, str | int | float | bool):
        return v
    return str(v)


@dataclass(frozen=True)
class RankPolicy:
    """Knobs for :func:`rank`. ``tiers`` are the configured tier names, inner to outer."""

    max_items: int = 7
    tiers: tuple[str, ...] = ()
    core_share: float = 0.2  # the top share of the network (by strength) that gets most attention
    core_tiers: int = 2  # people in the first N tiers are core too
    light_share: float = 0.34  # at most this share of the day for the outer network


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


_REPLY_PREFIX = re.compile(r"^(?:\s*(?:re|fwd?|aw|wg|sv|vs|tr|antw)\s*(?:\[\d+\])?\s*:\s*)+", re.I)


def strip_prefixes(subject: str) -> str:
    """'Re: Fwd: Budget' -> 'Budget' (reply/forward markers in common languages)."""
    return _REPLY_PREFIX.sub("", subject).strip()


def _quote(subject: object) -> str | None:
    s = strip_prefixes(clean_text(subject, MAX_SUBJECT + 20))
    s = clean_text(s, MAX_SUBJECT)
    return f"'{s}'" if s else None


def _days(n: object) -> str | None:
    if isinstance(n, bool) or not isinstance(n, int | float):
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


def _fact(facts: Mapping[str, Any], *names: str) -> Any:
    for n in names:
        v = facts.get(n)
        if v not in (None, ""):
            return v
    return None


# -- phrasing -------------------------------------------------------------------------------------
def phrase(
    kind: str, who: str, facts: Mapping[str, Any], zone: ZoneInfo, other: str | None = None
) -> str:
    """One concrete touch, phrased as an action that adds value for the other person."""
    subj = _quote(_fact(facts, "subject", "last_subject", "thread_subject"))
    topic = _quote(_fact(facts, "last_subject", "subject", "topic"))
    if kind == "reply_owed":
        waited = _days(_fact(facts, "days_waiting", "waiting_days", "age_days"))
        what = f"{possessive(who)} {subj}" if subj else f"{possessive(who)} message"
        return f"Reply to {what}" + (f" (waiting {waited})" if waited else "")
    if kind == "awaiting_reply":
        waited = _days(_fact(facts, "days_waiting", "waiting_days", "age_days"))
        on = f" on {subj}" if subj else ""
        tail = f" (no answer in {waited})" if waited else ""
        return f"Follow up with {who}{on} and add one useful detail{tail}"
    if kind == "fading":
        if topic:
            return f"Ask {who} how {topic} went"
        return f"Check in with {who}: ask what they are working on this month"
    if kind == "dormant":
        since = _days(_fact(facts, "days_since_contact", "days_since"))
        ago = f" after {since}" if since and since != "today" else ""
        return f"Reconnect with {who}{ago}: ask what they are working on now" + (
            f" (last thread {topic})" if topic else ""
        )
    if kind == "lopsided_me":
        return f"Ask {who} for their view on something they know well, and let them lead"
    if kind == "lopsided_them":
        return f"Reach out to {who} first this time" + (f", picking up {topic}" if topic else "")
    if kind == "new":
        return f"Follow up with {who} while it is fresh" + (
            f": share something useful on {topic}" if topic else ": suggest a short call"
        )
    if kind == "growing":
        return f"Invest in {who}: suggest a short call" + (f" about {topic}" if topic else "")
    if kind == "meeting_followup":
        title = _quote(_fact(facts, "title", "meeting_title", "event_title"))
        return (
            f"Send {who} a short follow-up"
            + (f" on {title}" if title else " on your meeting")
            + " with the next step"
        )
    if kind == "meeting_today":
        title = _quote(_fact(facts, "title", "meeting_title", "event_title"))
        at = _local_time(_fact(facts, "start", "starts_at", "meeting_start"), zone) or (
            clean_text(facts.get("local_time"), 5) or None
        )
        head = f"Prepare for {title or 'your meeting'}" + (f" at {at}" if at else "")
        fresh = topic if topic and topic != title else None  # not the meeting itself again
        return f"{head} with {who}" + (f": last talked about {fresh}" if fresh else "")
    if kind == "occasion_birthday":
        n = facts.get("days_until")
        if isinstance(n, int) and n > 1:
            return f"Note {possessive(who)} birthday in {n} days, and send a wish on the day"
        return f"Wish {who} a happy birthday" + (" tomorrow" if n == 1 else " today")
    if kind == "occasion_anniversary" and _fact(facts, "source") == "address book":
        n = _fact(facts, "days_until")
        when = " today" if n == 0 else (" tomorrow" if n == 1 else "")
        return f"Wish {who} a happy anniversary{when}"
    if kind == "occasion_anniversary":
        years = _fact(facts, "years")
        span = f"{years} year{'s' if years != 1 else ''}" if isinstance(years, int) else "a year"
        return f"Send {who} a note: {span} since your first conversation"
    if kind == "occasion_job_change":
        org = clean_text(_fact(facts, "new_org", "new_domain", "organisation", "org"), 60)
        return f"Congratulate {who} on the new role" + (f" at {org}" if org else "")
    if kind == "occasion_greeting":
        g = clean_text(_fact(facts, "greeting", "name", "occasion"), 40)
        return f"Send {who} a {g} greeting" if g else f"Send {who} a seasonal greeting"
    if kind == "introduce":
        shared = clean_text(_fact(facts, "shared", "topic"), 60)
        org = clean_text(_fact(facts, "field", "domain"), 60)
        why = (
            f": both work on {shared}"
            if shared
            else f": both work in the {org} world"
            if org
            else ""
        )
        return f"Introduce {who} to {other or 'a contact'}{why}"
    return f"Get in touch with {who}"


def _local_time(value: object, zone: ZoneInfo) -> str | None:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        from datetime import UTC

        value = datetime.fromtimestamp(value, UTC)
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(zone).strftime("%H:%M")
    return None


# -- building and ranking -------------------------------------------------------------------------
def tier_weight(tier: str | None, tiers: Sequence[str]) -> float:
    """Inner tiers weigh most; acquaintances (no tier) least."""
    if tier is None or tier not in tiers:
        return 0.3
    i = list(tiers).index(tier)
    return 1.0 / (1.0 + 0.5 * i)


def strength_factor(strength: float, top: float) -> float:
    """0.5 .. 1.0: strength matters, but never zeroes a suggestion."""
    if top <= 0 or strength <= 0:
        return 0.5
    return 0.5 + 0.5 * min(1.0, math.sqrt(strength / top))


def core_people(people: Mapping[str, PersonLike], policy: RankPolicy) -> set[str]:
    """The people who get most attention: the inner tiers and the top share by strength."""
    inner = set(policy.tiers[: policy.core_tiers])
    core = {k for k, p in people.items() if p.tier in inner}
    ranked = sorted(people.values(), key=lambda p: (-p.strength, p.key))
    n_top = math.ceil(len(ranked) * policy.core_share)
    core.update(p.key for p in ranked[:n_top] if p.strength > 0)
    return core


def build(
    signals: Iterable[SignalLike],
    people: Mapping[str, PersonLike],
    policy: RankPolicy,
    zone: ZoneInfo,
    addresses: Mapping[str, str] | None = None,
) -> list[Suggestion]:
    """Every signal as a scored suggestion (unfiltered, unsorted)."""
    addresses = addresses or {}
    top = max((p.strength for p in people.values()), default=0.0)
    out: list[Suggestion] = []
    for sig in signals:
        person = people.get(sig.person_key)
        name = clean_text(person.name if person else "", MAX_NAME)
        address = addresses.get(sig.person_key, sig.person_key)
        display = name or address
        who = first_name(name, address)
        facts = dict(sig.facts)
        subjects = getattr(person, "last_subjects", ()) if person else ()
        if subjects and not facts.get("last_subject"):
            facts["last_subject"] = subjects[0]
        other_key = _fact(facts, "other", "other_key") if sig.kind == "introduce" else None
        other_name = None
        if isinstance(other_key, str):
            other = people.get(other_key)
            other_name = clean_text(other.name if other else other_key, MAX_NAME) or other_key
        tier = person.tier if person else None
        strength = person.strength if person else 0.0
        score = (
            max(0.0, float(sig.urgency))
            * KIND_WEIGHT.get(sig.kind, 0.6)
            * tier_weight(tier, policy.tiers)
            * strength_factor(strength, top)
        )
        action = phrase(
            sig.kind,
            who,
            facts,
            zone,
            first_name(other_name or "", other_key) if isinstance(other_key, str) else None,
        )
        out.append(
            Suggestion(
                kind=sig.kind,
                person_key=sig.person_key,
                person_name=display,
                person_address=clean_text(address, 254),
                action=action,
                reasons=_reasons(sig.because, action, _extra_reasons(sig.kind, who, person)),
                urgency=float(sig.urgency),
                score=score,
                tier=tier,
                other_key=other_key if isinstance(other_key, str) else None,
                other_name=other_name,
                facts=facts,
            )
        )
    return out


def rank(
    suggestions: Iterable[Suggestion],
    people: Mapping[str, PersonLike],
    policy: RankPolicy,
    *,
    today: date,
    shown: Mapping[str, date] | None = None,
    cooldown_days: int = 14,
    snoozed: Iterable[str] = (),
) -> list[Suggestion]:
    """The day's list: at most ``policy.max_items``, most valuable first, varied across kinds."""
    shown = shown or {}
    blocked = set(snoozed)
    core = core_people(people, policy)
    eligible: list[Suggestion] = []
    for s in suggestions:
        involved = {s.person_key} | ({s.other_key} if s.other_key else set())
        if involved & blocked:
            continue
        if s.person_key not in core and not _outer_may_get(s):
            continue
        last = shown.get(s.person_key)
        if (
            last is not None
            and last < today
            and (today - last).days < cooldown_days
            and s.kind not in COOLDOWN_EXEMPT
        ):
            continue
        eligible.append(s)
    # Owed replies first (they are commitments), then by score.
    eligible.sort(key=lambda s: (s.kind != "reply_owed", -s.score, s.kind, s.person_key))
    return [_with_also(s, eligible) for s in _pick(eligible, core, policy)]


def _outer_may_get(s: Suggestion) -> bool:
    """Outside the core: the light touches, and nurturing a young tie that has a tier."""
    return s.kind in LIGHT_TOUCH or (s.kind in YOUNG_TIE and s.tier is not None)


ALSO_KINDS = frozenset({"meeting_today", "occasion_birthday", "occasion_job_change", "reply_owed"})


def _with_also(chosen: Suggestion, eligible: Sequence[Suggestion]) -> Suggestion:
    """Fold a same-person meeting today, birthday, new role or owed reply into the reasons."""
    from dataclasses import replace

    for s in eligible:
        if s.person_key == chosen.person_key and s.kind != chosen.kind and s.kind in ALSO_KINDS:
            return replace(chosen, reasons=(*chosen.reasons[:3], also_note(s)))
    return chosen


def also_note(s: Suggestion) -> str:
    """A short clause about a second reason to contact the same person today."""
    f = s.facts
    if s.kind == "meeting_today":
        title = _quote(_fact(f, "title", "meeting_title"))
        at = clean_text(f.get("local_time"), 5)
        return (
            "also: you meet today" + (f" at {at}" if at else "") + (f" ({title})" if title else "")
        )
    if s.kind == "occasion_birthday":
        n = f.get("days_until")
        when = "today" if n == 0 else "tomorrow" if n == 1 else f"in {n} days"
        return f"also: birthday {when}"
    if s.kind == "occasion_job_change":
        org = clean_text(_fact(f, "new_org", "new_domain"), 60)
        return "also: a new role" + (f" at {org}" if org else "")
    subj = _quote(_fact(f, "subject"))
    return "also: you owe a reply" + (f" on {subj}" if subj else "")


def _reasons(because: Sequence[str], action: str, extra: Sequence[str] = ()) -> tuple[str, ...]:
    """The engine's facts, minus lines that only repeat what the action already says."""
    lines = [line for line in (clean_text(b, 160) for b in because) if line]
    out = [line for line in lines if not _redundant(line, action)]
    out.extend(extra)
    if not out and lines:
        out.append(lines[0])
    return tuple(out)


def _extra_reasons(kind: str, who: str, person: PersonLike | None) -> list[str]:
    """Facts from the person report that make a reply owed concrete."""
    if kind != "reply_owed" or person is None:
        return []
    hours = getattr(person, "my_reply_hours", None)
    if not isinstance(hours, int | float) or isinstance(hours, bool) or hours <= 0:
        return []
    if hours < 1.5:
        usual = "within the hour"
    elif hours < 36:
        usual = f"within {round(hours)} hours"
    else:
        usual = f"within {round(hours / 24)} days"
    return [f"you usually answer {who} {usual}"]


# Engine reasons that only restate the action (the quoted part must be in the action).
_RESTATES = (
    re.compile(r'(?:about|(?:last )?subject:) "(?P<q>.*)"'),
    re.compile(r'meeting "(?P<q>.*)" today at \d{1,2}:\d{2}'),
    re.compile(r".+ wrote to you .+ ago and has no answer yet"),
)


def _redundant(line: str, action: str) -> bool:
    for pattern in _RESTATES:
        m = pattern.fullmatch(line)
        if m is None:
            continue
        quoted = m.groupdict().get("q")
        if quoted is None:
            return "waiting" in action
        if strip_prefixes(quoted) in action:
            return True
    return False


def _pick(ordered: list[Suggestion], core: set[str], policy: RankPolicy) -> list[Suggestion]:
    cap = policy.max_items
    per_kind = max(2, math.ceil(cap / 3))
    per_kind_reply = max(per_kind, math.ceil(cap / 2))
    per_section = max(2, cap // 3)  # e.g. meetings today and follow-ups share one section
    light_cap = max(1, math.floor(cap * policy.light_share))
    owed = {s.person_key for s in ordered if s.kind == "reply_owed"}
    chosen: list[Suggestion] = []
    people_used: set[str] = set()
    kinds: Counter[str] = Counter()
    sections: Counter[str] = Counter()
    light = 0
    # First pass honours variety; the second fills any free slot with what is left.
    for strict in (True, False):
        for s in ordered:
            if len(chosen) >= cap:
                break
            if s in chosen or s.person_key in people_used:
                continue
            if s.other_key and s.other_key in people_used:
                continue
            if s.person_key in owed and s.kind != "reply_owed":
                continue  # with a reply owed, the reply is the touch
            outer = s.person_key not in core
            if strict:
                limit = per_kind_reply if s.kind == "reply_owed" else per_kind
                if kinds[s.kind] >= limit or (
                    s.kind != "reply_owed"
                    and (sections[s.section] >= per_section or (outer and light >= light_cap))
                ):
                    continue
            chosen.append(s)
            people_used.add(s.person_key)
            if s.other_key:
                people_used.add(s.other_key)
            kinds[s.kind] += 1
            sections[s.section] += 1
            light += outer
    chosen.sort(key=lambda s: (list(SECTIONS).index(s.section), -s.score, s.person_key))
    return chosen


def summary(suggestions: Sequence[Suggestion]) -> list[tuple[str, int]]:
    """Counts for the subject line, most pressing first: [("replies owed", 3), ...]."""
    n: Counter[str] = Counter(s.section for s in suggestions)
    words = {
        "reply": ("reply owed", "replies owed"),
        "meeting": ("meeting", "meetings"),
        "reconnect": ("to reconnect", "to reconnect"),
        "nurture": ("to nurture", "to nurture"),
        "rebalance": ("to rebalance", "to rebalance"),
        "occasion": ("occasion", "occasions"),
    }
    out: list[tuple[str, int]] = []
    for section in SECTIONS:
        if n[section]:
            one, many = words[section]
            out.append((one if n[section] == 1 else many, n[section]))
    return out
