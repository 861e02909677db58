"""Signals: what deserves attention today, each with its facts and a plain-English "because"."""

from __future__ import annotations

import itertools
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime

from keepwarm.core.vocabulary import FREEMAIL
from keepwarm.digests.cadence import book
from keepwarm.digests.cadence.facts import (
    AwaitingReplyFacts,
    BalanceFacts,
    BirthdayFacts,
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
    other_of,
)
from keepwarm.digests.cadence.ledger import DAY, Owed
from keepwarm.digests.cadence.model import THEY_OWE, YOU_OWE, PersonReport, Signal, SignalKind
from keepwarm.digests.cadence.rhythm import every
from keepwarm.digests.cadence.state import Context, Person
from keepwarm.digests.cadence.subjects import bare, meaningful
from keepwarm.digests.cadence.touches import Meeting, Touches

BIRTHDAY_LEAD_DAYS = 2
GREETING_LEAD_DAYS = 3
INTRODUCE_MAX = 3
INTRODUCE_TIERS = 3  # the inner three tiers hold the "strong ties"
HISTORY_EDGE_DAYS = 30  # a first contact this close to the start of the data is not a known start
JOB_QUIET_DAYS = 30
RECONNECT_MAX_DAYS = 182  # a tie that went quiet this recently is still worth a reconnect
NEW_MIN_DAYS = 2  # days of contact before a new contact is worth nurturing
NURTURE_QUIET_DAYS = 3  # a new or growing tie is nurtured between exchanges, not in the middle
_SECOND_LEVEL = frozenset({"co", "com", "org", "net", "ac", "gov", "edu", "ne", "or", "go"})


@dataclass(frozen=True, slots=True)
class Occasion:
    kind: SignalKind
    urgency: float
    facts: Facts
    because: list[str]


def _days(n: int, unit: str = "day") -> str:
    return f"{n} {unit}{'s' if n != 1 else ''}"


def _iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


def local_date(ctx: Context, ts: int) -> date:
    return ctx.clock.local(ts).date()


def days_until(today: date, month_day: str) -> int:
    """Days from ``today`` to the next ``MM-DD`` (0 = today); Feb 29 falls on Feb 28 otherwise."""
    month, day = (int(x) for x in month_day.split("-"))
    for year in (today.year, today.year + 1):
        try:
            d = date(year, month, day)
        except ValueError:
            d = date(year, month, 28)
        if d >= today:
            return (d - today).days
    return 366


# -- occasions ------------------------------------------------------------------------------------
def occasions(p: Person, ctx: Context, birthdays: dict[str, str]) -> list[Occasion]:
    out: list[Occasion] = []
    today = ctx.local_today
    md = _birthday(p, ctx, birthdays)
    if md is not None:
        n = days_until(today, md)
        if n <= BIRTHDAY_LEAD_DAYS:
            when = "today" if n == 0 else ("tomorrow" if n == 1 else f"in {n} days")
            out.append(
                Occasion(
                    "occasion_birthday",
                    0.8 if n == 0 else 0.5,
                    BirthdayFacts(date=md, days_until=n),
                    [f"birthday {when} ({md})"],
                )
            )
    out.extend(_anniversary(p, ctx, today))
    from_book = (  # anniversary, job change: none without an address book's
        [Occasion(*o) for o in book.occasions(p, ctx)]
        if ctx.settings.anniversaries or ctx.settings.organisations
        else []
    )
    out.extend(from_book)
    if not any(o.kind == "occasion_job_change" for o in from_book):
        out.extend(_job_change(p, ctx))
    out.extend(_greetings(p, ctx, today))
    return out


def occasion_names(found: list[Occasion]) -> tuple[str, ...]:
    """Short names of a person's :func:`occasions` for their report."""
    return tuple(o.kind.removeprefix("occasion_") for o in found)


def _birthday(p: Person, ctx: Context, birthdays: dict[str, str]) -> str | None:
    if p.led.key in birthdays:
        return birthdays[p.led.key]
    if not ctx.settings.birthdays:
        return None
    info = ctx.directory.people.get(p.led.key)
    for a in (*(info.addresses if info else ()), p.led.key):
        if a in ctx.settings.birthdays:
            return ctx.settings.birthdays[a]
    return None


def _anniversary(p: Person, ctx: Context, today: date) -> list[Occasion]:
    if p.tier is None or p.led.first_contact is None:
        return []
    start = ctx.history_start
    if start is None or p.led.first_contact - start < HISTORY_EDGE_DAYS * DAY:
        return []  # first seen where the data begins: they may have met long before
    first = local_date(ctx, p.led.first_contact)
    years = today.year - first.year
    if years < 1 or days_until(today, first.strftime("%m-%d")) != 0:
        return []
    return [
        Occasion(
            "occasion_anniversary",
            0.3,
            FirstContactAnniversaryFacts(first_contact=first.isoformat(), years=years),
            [f"you first talked {_days(years, 'year')} ago today ({first.isoformat()})"],
        )
    ]


def org_family(domain: str) -> str | None:
    """``mail.acme.co.uk`` -> ``acme``; free-mail domains have no organisation."""
    if domain in FREEMAIL:
        return None
    labels = domain.split(".")
    if len(labels) >= 3 and labels[-2] in _SECOND_LEVEL and len(labels[-1]) == 2:
        return labels[-3]
    return labels[-2] if len(labels) >= 2 else domain


def _job_change(p: Person, ctx: Context) -> list[Occasion]:
    if len(p.led.domains_in) < 2:
        return []  # one sender domain: no change
    doms = {d: v for d, v in p.led.domains_in.items() if org_family(d) is not None}
    if len(doms) < 2:
        return []
    newest = max(doms, key=lambda d: (doms[d][0], d))
    first_new = doms[newest][0]
    new_days = ctx.settings.new_window.total_seconds() / DAY
    if (ctx.clock.now - first_new) / DAY > new_days:
        return []
    old = [
        d
        for d, (_f, last, n) in doms.items()
        if d != newest
        and org_family(d) != org_family(newest)
        and last < first_new
        and n >= 2
        and (ctx.clock.now - last) / DAY >= JOB_QUIET_DAYS
    ]
    if not old:
        return []
    previous = max(old, key=lambda d: (doms[d][1], d))
    return [
        Occasion(
            "occasion_job_change",
            0.6,
            DomainChangeFacts(new_domain=newest, old_domain=previous, since=_iso(first_new)),
            [
                f"now writes from {newest} (since {local_date(ctx, first_new).isoformat()})",
                f"nothing from {previous} for {_days(int((ctx.clock.now - doms[previous][1]) / DAY))}",
            ],
        )
    ]


def _greetings(p: Person, ctx: Context, today: date) -> list[Occasion]:
    if p.tier is None or p.stage == "dormant":
        return []
    tier = ctx.settings.tiers[p.tier].name
    out: list[Occasion] = []
    for g in ctx.settings.greetings:
        if g.tiers and tier not in g.tiers:
            continue
        n = days_until(today, g.date)
        if n <= GREETING_LEAD_DAYS:
            out.append(
                Occasion(
                    "occasion_greeting",
                    0.25,
                    GreetingFacts(greeting=g.name, date=g.date, days_until=n, tier=tier),
                    [f"{g.name} on {g.date}", f"a light touch for your {tier} tier"],
                )
            )
    return out


# -- the builder ----------------------------------------------------------------------------------
def build(
    ctx: Context,
    people: dict[str, Person],
    reports: dict[str, PersonReport],
    touches: Touches,
    meetings: list[Meeting],
    today_meetings: list[Meeting],
    yesterday_meetings: list[Meeting],
    occasions: dict[str, list[Occasion]],
) -> list[Signal]:
    """Every signal, most urgent first; ``occasions``: each person's :func:`occasions`."""
    out: list[Signal] = []
    for key in sorted(people):
        p, rep = people[key], reports[key]
        out.extend(_loops(p, rep, ctx))
        out.extend(_rhythm_signals(p, rep, ctx))
        out.extend(_lopsided(p, rep, ctx))
        out.extend(_stage_signals(p, rep, ctx))
        for o in occasions[key]:
            out.append(Signal(o.kind, key, o.urgency, o.facts, o.because))
    out.extend(_meeting_today(today_meetings, people, reports, ctx))
    out.extend(_meeting_followup(yesterday_meetings, people, reports, ctx))
    out.extend(_introduce(people, reports, touches, meetings, ctx))
    out.sort(key=lambda s: (-s.urgency, s.kind, s.person_key, other_of(s.facts) or ""))
    return out


def _loops(p: Person, rep: PersonReport, ctx: Context) -> list[Signal]:
    out: list[Signal] = []
    now = ctx.clock.now
    if p.led.owed_by_me:
        item = max(p.led.owed_by_me, key=lambda o: (_owed_evidence(o), -o.date, o.thread))
        waiting = int((now - item.date) / DAY)
        led = p.led
        rate = round(led.w_in_answered / led.w_in, 2) if led.w_in else None
        because = [f"{rep.name} wrote to you {_days(waiting)} ago and has no answer yet"]
        if item.waiting > 1:
            because.append(f"{item.waiting} messages from them in a row, none answered")
        if item.subject:
            because.append(f'about "{item.subject}"')
        if len(p.led.owed_by_me) > 1:
            because.append(f"{len(p.led.owed_by_me)} threads are waiting for you")
        # who is asking and how directly, not how long ago: a colleague's question of yesterday
        # before a stranger's note of last month (ranking also weighs tier and strength)
        urgency = (
            0.5
            + 0.2 * rep.two_way
            + 0.1 * (item.shared == 1)
            + 0.1 * (item.waiting > 1)
            + 0.1 * item.asks
        )
        out.append(
            Signal(
                "reply_owed",
                p.led.key,
                round(min(1.0, urgency), 3),
                ReplyOwedFacts(
                    count=len(p.led.owed_by_me),
                    oldest=_iso(item.date),
                    days_waiting=waiting,
                    subject=item.subject,
                    message=item.message,
                    asks=item.asks,
                    waiting_messages=item.waiting,
                    shared_with=item.shared - 1,
                    answer_rate=rate,
                    relationship=rep.two_way,
                    their_messages=led.msgs_in,
                    my_messages=led.msgs_out,
                    asked_me=led.asked_me,
                    i_answered=led.i_answered,
                ),
                because,
            )
        )
    if p.led.owed_to_me:
        oldest = min(p.led.owed_to_me, key=lambda o: (o.date, o.thread))
        waiting = int((now - oldest.date) / DAY)
        because = [f"you wrote {_days(waiting)} ago and have had no answer"]
        if oldest.subject:
            because.append(f'about "{oldest.subject}"')
        out.append(
            Signal(
                "awaiting_reply",
                p.led.key,
                round(min(0.7, 0.3 + 0.01 * waiting), 3),
                AwaitingReplyFacts(
                    count=len(p.led.owed_to_me),
                    oldest=_iso(oldest.date),
                    days_waiting=waiting,
                    subject=oldest.subject,
                    message=oldest.message,
                    i_asked=p.led.i_asked,
                    they_answered=p.led.they_answered,
                ),
                because,
            )
        )
    return out


def _owed_evidence(o: Owed) -> int:
    """How sure a waiting message needs my answer: it asks, they followed up, it was to me alone."""
    return 2 * o.asks + 2 * (o.waiting > 1) + (o.shared == 1)


TOPIC_FRESH_DAYS = 120  # an older subject is no longer something to ask about


def topic_of(p: Person, ctx: Context) -> str | None:
    """The latest subject worth talking about with ``p`` (one that means something, from the
    last few months), or None: advice is never built on a blank, a greeting or last spring."""
    fresh = ctx.clock.now - TOPIC_FRESH_DAYS * DAY
    for when, subject in sorted(p.led.subjects, reverse=True):
        if when < fresh:
            return None
        if meaningful(subject):
            return subject
    return None


def rhythm_facts(p: Person, rep: PersonReport, ctx: Context) -> tuple[RhythmFacts, list[str]]:
    r = p.rhythm
    facts = RhythmFacts(
        days_since_contact=r.days_since,
        typical_gap_days=r.typical_gap,
        expected_gap_days=round(r.expected_gap, 1),
        overdue_ratio=r.overdue_ratio,
        contact_days=len(r.contact_days),
        paused_days=r.paused_days,
        tier=rep.tier,
        last_contact=rep.last_contact.isoformat() if rep.last_contact else None,
        topic=topic_of(p, ctx),
    )
    because = [f"last contact {_days(r.days_since or 0)} ago"]
    if r.typical_gap is not None:
        because.append(f"you usually talk {every(r.expected_gap)}")
    if r.overdue_ratio is not None:
        because.append(f"that is {r.overdue_ratio:.1f} times your usual gap")
    if r.paused_days:
        because.append(f"not counting {_days(r.paused_days)} you were out of office")
    return facts, because


def _rhythm_signals(p: Person, rep: PersonReport, ctx: Context) -> list[Signal]:
    r, s = p.rhythm, ctx.settings
    if r.overdue_ratio is None:
        return []
    if p.stage == "fading" and p.tier is not None:
        facts, because = rhythm_facts(p, rep, ctx)
        urgency = min(1.0, 0.45 + 0.08 * (r.overdue_ratio - s.fading_factor))
        return [Signal("fading", p.led.key, round(urgency, 3), facts, because)]
    if (
        p.stage == "dormant"
        and r.mature
        and (r.overdue_ratio < 2 * s.dormant_factor or (r.silence_days or 0) <= RECONNECT_MAX_DAYS)
    ):
        facts, because = rhythm_facts(p, rep, ctx)
        because.append(f"{len(r.contact_days)} days of contact before the silence")
        return [Signal("dormant", p.led.key, 0.2, facts, because)]
    return []


def _lopsided(p: Person, rep: PersonReport, ctx: Context) -> list[Signal]:
    s = ctx.settings
    mine = p.led.initiated_by_me
    total = mine + p.led.initiated_by_them
    if total < s.lopsided_min_threads or not rep.two_way:
        return []
    if not ctx.covered(ctx.clock.window_start, ctx.clock.now, received=True):
        return []  # mail both ways is not visible through the window: no balance can be judged
    share_me = mine / total
    window = int(s.reciprocity_window.total_seconds() / DAY)
    facts = BalanceFacts(
        initiated_by_me=mine,
        initiated_by_them=total - mine,
        window_days=window,
        answered_by_me=rep.answered_by_me,
        answered_by_them=rep.answered_by_them,
        balance=rep.balance,
    )
    if share_me >= s.lopsided_share:
        because = [f"{mine} of the last {total} threads and meetings were started by you"]
        if rep.answered_by_them is not None:
            because.append(f"they answered {round(100 * rep.answered_by_them)}% of your messages")
        return [Signal("lopsided_me", p.led.key, 0.3, facts, because)]
    if 1 - share_me >= s.lopsided_share:
        because = [f"{total - mine} of the last {total} threads and meetings were started by them"]
        if rep.answered_by_me is not None:
            because.append(f"you answered {round(100 * rep.answered_by_me)}% of their messages")
        return [Signal("lopsided_them", p.led.key, 0.45, facts, because)]
    return []


def _stage_signals(p: Person, rep: PersonReport, ctx: Context) -> list[Signal]:
    if not rep.two_way or rep.first_contact is None:
        return []
    if p.stage == "new" and rep.contact_days < NEW_MIN_DAYS:
        return []  # one exchange is not yet a relationship
    if rep.days_since_contact is not None and rep.days_since_contact < NURTURE_QUIET_DAYS:
        return []  # you are in touch right now: nothing to nurture yet
    if p.stage not in ("new", "growing"):
        return []  # only new and growing ties are nurtured
    fam = _families(rep.addresses)
    if ctx.my_surname and ctx.my_surname in _name_words(rep.name):
        return []  # family
    if not fam or fam <= ctx.my_domains:
        return []  # only professional ties beyond my organisation: colleagues meet anyway,
        # friends and family (free-mail addresses) are not what keepwarm nurtures
    facts = NurtureFacts(
        first_contact=rep.first_contact.isoformat(),
        contact_days=rep.contact_days,
        strength=rep.strength,
        topic=topic_of(p, ctx),
    )
    if p.stage == "new":
        return [
            Signal(
                "new",
                p.led.key,
                0.3,
                facts,
                [
                    f"first two-way contact on {rep.first_contact.date().isoformat()}",
                    f"{_days(rep.contact_days)} of contact so far",
                ],
            )
        ]
    if p.stage == "growing":
        return [
            Signal(
                "growing",
                p.led.key,
                0.35,
                facts,
                [
                    "you have been in touch more often lately",
                    f"{_days(rep.contact_days)} of contact since {rep.first_contact.date().isoformat()}",
                ],
            )
        ]
    return []


def _meeting_today(
    meetings: list[Meeting],
    people: dict[str, Person],
    reports: dict[str, PersonReport],
    ctx: Context,
) -> list[Signal]:
    out: list[Signal] = []
    for m in meetings:
        if not m.small:
            continue
        local = ctx.clock.local(m.start).strftime("%H:%M")
        for key in sorted(m.people):
            rep = reports.get(key)
            p = people.get(key)
            if rep is None or p is None:
                continue
            last = [d for d in p.rhythm.contact_days if d < ctx.today]
            facts = MeetingTodayFacts(
                event_id=m.event_id,
                title=m.title,
                start=_iso(m.start),
                local_time=local,
                people=tuple(sorted(m.people)),
                days_since_contact=(ctx.today - last[-1]) if last else None,
                replies_owed_by_me=rep.replies_owed_by_me,
                replies_owed_to_me=rep.replies_owed_to_me,
                topic=topic_of(p, ctx),
            )
            because = [f'meeting "{m.title or "untitled"}" today at {local}']
            because.append(
                f"last contact {_days(ctx.today - last[-1])} ago" if last else "no contact before"
            )
            if rep.replies_owed_by_me:
                because.append(f"{YOU_OWE} {_days(rep.replies_owed_by_me, 'reply')}")
            if rep.replies_owed_to_me:
                because.append(f"{THEY_OWE} {_days(rep.replies_owed_to_me, 'reply')}")
            topic = topic_of(p, ctx)
            if topic:
                because.append(f'last talked about "{bare(topic)}"')
            out.append(Signal("meeting_today", key, 0.55, facts, because))
    return out


def _meeting_followup(
    meetings: list[Meeting],
    people: dict[str, Person],
    reports: dict[str, PersonReport],
    ctx: Context,
) -> list[Signal]:
    out: list[Signal] = []
    for m in meetings:
        if not m.small or m.start > ctx.clock.now:
            continue
        for key in sorted(m.people):
            p = people.get(key)
            if p is None or (p.led.last_mail is not None and p.led.last_mail >= m.start):
                continue
            facts = MeetingFollowupFacts(
                event_id=m.event_id,
                title=m.title,
                start=_iso(m.start),
                people=tuple(sorted(m.people)),
            )
            because = [
                f'you met yesterday ("{m.title or "untitled"}")',
                "no mail between you since",
            ]
            out.append(Signal("meeting_followup", key, 0.5, facts, because))
    return out


def _introduce(
    people: dict[str, Person],
    reports: dict[str, PersonReport],
    touches: Touches,
    meetings: list[Meeting],
    ctx: Context,
) -> list[Signal]:
    """Two strong ties of different organisations, neither of mine, who have never been on a
    mail or in a meeting with me together, and whom I have talked to about the same thing (a
    word the recent subjects of both share): that topic is the reason, never a shared domain."""
    strong, families = _strong_ties(people, reports, ctx)
    if len(strong) < 2:
        return []
    apart = _strangers(strong, families, _together(touches, meetings, strong), reports, ctx)
    words: dict[str, tuple[str, frozenset[str]]] = {}  # people share their threads' subjects
    topics = {k: _recurring_topics(p, words) for k, p in strong.items()}
    # the words a pair could be introduced on: only their spread over everyone matters
    candidates = {w for a, b in apart for w in topics[a] & topics[b] if len(w) >= 5}
    spread = _spread(people, candidates, topics, words)
    pairs: list[tuple[float, str, str, str]] = []
    for a, b in apart:
        topic = _shared_topic(topics[a], topics[b], spread)
        if topic is not None:
            pairs.append((min(strong[a].strength, strong[b].strength), a, b, topic))
    pairs.sort(key=lambda x: (-x[0], x[1], x[2]))
    return [
        _introduction(a, b, topic, strong, reports) for _s, a, b, topic in pairs[:INTRODUCE_MAX]
    ]


def _strong_ties(
    people: dict[str, Person], reports: dict[str, PersonReport], ctx: Context
) -> tuple[dict[str, Person], dict[str, set[str]]]:
    """The strong, live ties outside my organisation, and the organisations (domain families)
    of each."""
    strong = {
        k: p
        for k, p in people.items()
        if p.tier is not None
        and p.tier < INTRODUCE_TIERS
        and p.stage not in ("dormant", "fading")
        and p.rhythm.episodes >= INTRODUCE_MIN_STARTS
    }
    families = {
        k: _families(reports[k].addresses) | book.families(ctx, reports[k].addresses)
        for k in strong
    }
    strong = {k: p for k, p in strong.items() if families[k] and not families[k] & ctx.my_domains}
    return strong, families


def _together(
    touches: Touches, meetings: list[Meeting], strong: dict[str, Person]
) -> set[tuple[str, str]]:
    """The pairs of ``strong`` (in key order) that were on a mail or in a meeting with me."""
    together = touches.together(strong)  # on a mail with me
    for group in (tuple(m.people) for m in meetings):
        members = sorted({k for k in group if k in strong})
        if len(members) > 1:
            together.update(itertools.combinations(members, 2))
    return together


def _my_name_words(ctx: Context) -> set[str]:
    """The words of my own display names (someone who shares them is family)."""
    return {
        w
        for info in ctx.directory.people.values()
        if info.kind == "self"
        for w in _name_words(info.name)
    }


def _strangers(
    strong: dict[str, Person],
    families: dict[str, set[str]],
    together: set[tuple[str, str]],
    reports: dict[str, PersonReport],
    ctx: Context,
) -> list[tuple[str, str]]:
    """The pairs of ``strong`` (in key order) who may not know each other: never on a mail or
    in a meeting with me together, of different organisations, not one family."""
    names = {k: _name_words(reports[k].name) for k in strong}
    mine = _my_name_words(ctx)
    return [
        (a, b)
        for a, b in itertools.combinations(sorted(strong), 2)
        if (a, b) not in together
        and not families[a] & families[b]
        and not names[a] & names[b]  # one family: they know each other
        and not (names[a] | names[b]) & mine
    ]


def _spread(
    people: dict[str, Person],
    candidates: set[str],
    known: dict[str, set[str]],
    words: dict[str, tuple[str, frozenset[str]]],
) -> Counter[str]:
    """How many people each of ``candidates`` is a recurring topic with, counted up to one more
    than :data:`TOPIC_MAX_PEOPLE` (more is too many either way, and once every candidate is
    there the others' subjects need not be read). ``known``: recurring topics worked out."""
    spread: Counter[str] = Counter()
    counting = set(candidates)
    for k, p in people.items():
        if not counting:
            break
        found = known.get(k)
        for w in (found if found is not None else _recurring_topics(p, words)) & counting:
            spread[w] += 1
            if spread[w] > TOPIC_MAX_PEOPLE:
                counting.discard(w)
    return spread


def _shared_topic(a: set[str], b: set[str], spread: Counter[str]) -> str | None:
    """The first (alphabetically) topic word of both that is long enough and not everyone's."""
    shared = sorted(w for w in a & b if len(w) >= 5 and spread[w] <= TOPIC_MAX_PEOPLE)
    return shared[0] if shared else None


def _introduction(
    a: str, b: str, topic: str, strong: dict[str, Person], reports: dict[str, PersonReport]
) -> Signal:
    """The introduce signal of a pair, for the stronger of the two."""
    first, second = sorted((a, b), key=lambda k: (-strong[k].strength, k))
    ra, rb = reports[first], reports[second]
    return Signal(
        "introduce",
        first,
        0.2,
        IntroduceFacts(other=second, topic=topic, tiers=(ra.tier, rb.tier)),
        [
            f"{ra.name} ({ra.tier}) and {rb.name} ({rb.tier}) are both strong ties, "
            "at different organisations",
            f'you have talked about "{topic}" with both',
            "they have never been on a thread or in a meeting with you together",
        ],
    )


_STOPWORDS = frozenset(
    [
        "about",
        "above",
        "after",
        "again",
        "against",
        "also",
        "among",
        "another",
        "around",
        "because",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "call",
        "calls",
        "could",
        "does",
        "doing",
        "down",
        "during",
        "each",
        "from",
        "further",
        "have",
        "having",
        "here",
        "into",
        "itself",
        "just",
        "meeting",
        "meetings",
        "more",
        "most",
        "much",
        "need",
        "next",
        "note",
        "notes",
        "only",
        "other",
        "over",
        "please",
        "question",
        "questions",
        "same",
        "should",
        "some",
        "such",
        "than",
        "thank",
        "thanks",
        "that",
        "their",
        "them",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "today",
        "tomorrow",
        "under",
        "until",
        "update",
        "updates",
        "very",
        "week",
        "weekly",
        "what",
        "when",
        "where",
        "which",
        "while",
        "will",
        "with",
        "would",
        "your",
        "yours",
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
        "january",
        "february",
        "march",
        "april",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
        "info",
        "information",
        "hello",
        "lunch",
        "dinner",
        "draft",
        "final",
        "follow",
        "check",
        "quick",
        "request",
        "review",
        "report",
        "reports",
        "attached",
        "document",
        "documents",
        "list",
        "new",
        "re",
        "fw",
        "fwd",
    ]
)


TOPIC_MAX_PEOPLE = 2  # a topic word shared with more people than this names no common field
INTRODUCE_MIN_STARTS = 4  # separate conversations with each of the two: a tie, not a contact


def _recurring_topics(p: Person, words: dict[str, tuple[str, frozenset[str]]]) -> set[str]:
    """Topic words that come back in at least two different subjects with this person.
    ``words``: each subject's bare casefolded form and its topic words, filled as they come."""
    if len(p.led.subjects) < 2:
        return set()  # one subject: no word comes back
    different: dict[str, frozenset[str]] = {}  # bare casefolded subject -> its topic words
    for _d, s in p.led.subjects:
        got = words.get(s)
        if got is None:
            subject = bare(s).casefold()
            got = words[s] = (subject, frozenset(topic_words([subject])))
        different[got[0]] = got[1]
    seen: set[str] = set()
    again: set[str] = set()
    for found in different.values():
        again |= seen & found
        seen |= found
    return again


def _name_words(name: str) -> set[str]:
    """The words of a display name (none for an address shown as a name)."""
    if "@" in name:
        return set()
    return {w for w in re.split(r"[^a-z]+", name.casefold()) if len(w) >= 3}


_TOPIC_WORD = re.compile(r"[a-z][a-z0-9-]{3,}")


def topic_words(subjects: Iterable[str]) -> set[str]:
    """The words that name a topic in these subjects (4+ letters, not the small talk of mail)."""
    out: set[str] = set()
    for s in subjects:
        for w in _TOPIC_WORD.findall(s.casefold()):
            if w not in _STOPWORDS:
                out.add(w)
    return out


def _families(addresses: tuple[str, ...]) -> set[str]:
    out: set[str] = set()
    for a in addresses:
        fam = org_family(a.rpartition("@")[2])
        if fam:
            out.add(fam)
    return out


__all__ = ["Occasion", "build", "days_until", "occasion_names", "occasions", "org_family"]
