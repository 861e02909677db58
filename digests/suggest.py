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
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from keepwarm.core.specs import DIGEST_DEFAULTS
from keepwarm.digests.cadence.facts import Facts, other_of
from keepwarm.digests.kinds import (
    LABELS,
    MAX_NAME,
    SECTION_ORDER,
    SECTIONS,
    SPECS,
    clean_text,
    first_name,
    phrase,
    possessive,
    spec,
    strip_prefixes,
)

if TYPE_CHECKING:  # the engine's records (imported for their types only: it loads numpy)
    from keepwarm.digests.cadence.model import PersonReport, Signal

__all__ = [
    "LABELS",
    "SECTIONS",
    "RankPolicy",
    "Suggestion",
    "build",
    "clean_text",
    "first_name",
    "phrase",
    "possessive",
    "rank",
    "summary",
]


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
    facts: Facts = field(kw_only=True)  # the signal's, typed per kind

    @property
    def section(self) -> str:
        return spec(self.kind).section

    @property
    def label(self) -> str:
        return spec(self.kind).label

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
            "facts": {k: _jsonable(v) for k, v in self.facts.to_json().items()},
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

    max_items: int = DIGEST_DEFAULTS.max_items
    tiers: tuple[str, ...] = ()
    core_share: float = 0.2  # the top share of the network (by strength) that gets most attention
    core_tiers: int = 2  # people in the first N tiers are core too
    light_share: float = 0.34  # at most this share of the day for the outer network


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


def core_people(people: Mapping[str, PersonReport], policy: RankPolicy) -> set[str]:
    """The people who get most attention: the inner tiers and the top share by strength."""
    inner = set(policy.tiers[: policy.core_tiers])
    core = {k for k, p in people.items() if p.tier in inner}
    ranked = sorted(people.values(), key=lambda p: (-p.strength, p.key))
    n_top = math.ceil(len(ranked) * policy.core_share)
    core.update(p.key for p in ranked[:n_top] if p.strength > 0)
    return core


def build(
    signals: Iterable[Signal],
    people: Mapping[str, PersonReport],
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
        facts = sig.facts
        other_key = other_of(facts)
        other_name = None
        if other_key is not None:
            other = people.get(other_key)
            other_name = clean_text(other.name if other else other_key, MAX_NAME) or other_key
        tier = person.tier if person else None
        strength = person.strength if person else 0.0
        score = (
            max(0.0, float(sig.urgency))
            * spec(sig.kind).weight
            * tier_weight(tier, policy.tiers)
            * strength_factor(strength, top)
        )
        action = phrase(
            sig.kind,
            who,
            facts,
            zone,
            first_name(other_name or "", other_key) if other_key is not None else None,
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
                other_key=other_key,
                other_name=other_name,
                facts=facts,
            )
        )
    return out


def rank(
    suggestions: Iterable[Suggestion],
    people: Mapping[str, PersonReport],
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
            and not spec(s.kind).cooldown_exempt
        ):
            continue
        eligible.append(s)
    # Owed replies first (they are commitments), then by score.
    eligible.sort(key=lambda s: (s.kind != "reply_owed", -s.score, s.kind, s.person_key))
    return [_with_also(s, eligible) for s in _pick(eligible, core, policy)]


def _outer_may_get(s: Suggestion) -> bool:
    """Outside the core: the light touches, and nurturing a young tie that has a tier."""
    k = spec(s.kind)
    return k.light_touch or (k.tiered and s.tier is not None)


def _with_also(chosen: Suggestion, eligible: Sequence[Suggestion]) -> Suggestion:
    """Fold a same-person meeting today, birthday, new role or owed reply into the reasons."""
    for s in eligible:
        also = spec(s.kind).also
        if s.person_key == chosen.person_key and s.kind != chosen.kind and also is not None:
            return replace(chosen, reasons=(*chosen.reasons[:3], also(s.facts)))
    return chosen


def _reasons(because: Sequence[str], action: str, extra: Sequence[str] = ()) -> tuple[str, ...]:
    """The engine's facts, minus lines that only repeat what the action already says."""
    lines = [line for line in (clean_text(b, 160) for b in because) if line]
    out = [line for line in lines if not _redundant(line, action)]
    out.extend(extra)
    if not out and lines:
        out.append(lines[0])
    return tuple(out)


def _extra_reasons(kind: str, who: str, person: PersonReport | None) -> list[str]:
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
    re.compile(r'(?:about|(?:last )?subject:|last talked about) "(?P<q>.*)"'),
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


@dataclass
class _Picker:
    """The daily cap with variety: at most ``per_kind`` of a kind (more for replies owed),
    ``per_section`` of a section and ``light_cap`` light touches (people outside the core), one
    suggestion per person, and none but the reply for someone who is owed one."""

    cap: int
    core: set[str]
    owed: set[str]
    per_kind: int
    per_kind_reply: int
    per_section: int
    light_cap: int
    chosen: list[Suggestion] = field(default_factory=list)
    people_used: set[str] = field(default_factory=set)
    kinds: Counter[str] = field(default_factory=Counter)
    sections: Counter[str] = field(default_factory=Counter)
    light: int = 0

    def blocked(self, s: Suggestion) -> bool:
        if s in self.chosen or s.person_key in self.people_used:
            return True
        if s.other_key and s.other_key in self.people_used:
            return True
        return s.person_key in self.owed and s.kind != "reply_owed"  # the reply is the touch

    def too_many(self, s: Suggestion) -> bool:
        outer = s.person_key not in self.core
        limit = self.per_kind_reply if s.kind == "reply_owed" else self.per_kind
        return self.kinds[s.kind] >= limit or (
            s.kind != "reply_owed"
            and (
                self.sections[s.section] >= self.per_section
                or (outer and self.light >= self.light_cap)
            )
        )

    def take(self, s: Suggestion) -> None:
        self.chosen.append(s)
        self.people_used.add(s.person_key)
        if s.other_key:
            self.people_used.add(s.other_key)
        self.kinds[s.kind] += 1
        self.sections[s.section] += 1
        self.light += s.person_key not in self.core


def _pick(ordered: list[Suggestion], core: set[str], policy: RankPolicy) -> list[Suggestion]:
    cap = policy.max_items
    per_kind = max(2, math.ceil(cap / 3))
    picker = _Picker(
        cap=cap,
        core=core,
        owed={s.person_key for s in ordered if s.kind == "reply_owed"},
        per_kind=per_kind,
        per_kind_reply=max(per_kind, math.ceil(cap / 2)),
        per_section=max(2, cap // 3),  # e.g. meetings today and follow-ups share one section
        light_cap=max(1, math.floor(cap * policy.light_share)),
    )
    # First pass honours variety; the second fills any free slot with what is left.
    for strict in (True, False):
        for s in ordered:
            if len(picker.chosen) >= cap:
                break
            if picker.blocked(s) or (strict and picker.too_many(s)):
                continue
            picker.take(s)
    chosen = picker.chosen
    chosen.sort(key=lambda s: (SECTION_ORDER.index(s.section), -s.score, s.person_key))
    return chosen


def summary(suggestions: Sequence[Suggestion]) -> list[tuple[str, int]]:
    """Counts for the subject line, in the digest's order, under the items' own headings:
    ``[("replies owed", 2), ("to reconnect", 1), ...]`` (kinds sharing a heading count
    together)."""
    counts: Counter[tuple[str, str]] = Counter()
    order: dict[tuple[str, str], tuple[int, int]] = {}
    for s in suggestions:
        k = spec(s.kind)
        words = k.counted or (k.label.lower(), k.label.lower())
        counts[words] += 1
        rank_ = (SECTION_ORDER.index(k.section), list(SPECS).index(s.kind))
        order[words] = min(order.get(words, rank_), rank_)
    return [
        (one if counts[(one, many)] == 1 else many, counts[(one, many)])
        for one, many in sorted(counts, key=lambda w: order[w])
    ]
