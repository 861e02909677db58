"""Your decisions about people and suggestions, and how they reach the engine and the digest.

One table, ``decisions``, holds every decision, made on the command line (``keepwarm done``,
``snooze``, ``dismiss``, ``ignore``, ``merge``, ``note``) or by sending an action mail from the
digest (:mod:`keepwarm.daemon.actions`). A decision is never deleted: undoing it marks its row
``undone``, and an action mail that failed its check is kept as ``rejected`` so it can be shown.

Decisions are applied when they are read, never by changing stored mail, and they are keyed by
address, so they survive forgetting and re-importing an account:

``ignore`` / ``merge``
    the config's ``[exclude] addresses`` and ``[people] aliases``, extended
    (:func:`effective_config`): identity, the engine and every screen see them alike.
``done``
    a touch the engine counts: a short one-to-one meeting at the moment of the decision, with
    no title and neither side's initiative (:func:`touch_events`), so the rhythm's clock
    restarts; the suggestion it answers, and replies owed from before it, leave the digest.
``snooze`` / ``dismiss``
    ranking inputs of the digest (:func:`adjust`): a snoozed person is left out until the
    date; a dismissed kind (or section) is never suggested for that person again, and each
    dismissal of a kind weighs that kind down a little for everyone.
``note``
    shown by ``keepwarm person`` and in the digest's meeting preparation.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, get_args

from keepwarm.core.records import Attendee
from keepwarm.daemon import address_book
from keepwarm.daemon.address_book import AddressBook
from keepwarm.daemon.config import Config
from keepwarm.daemon.errors import UndoError as UndoError
from keepwarm.daemon.identity import Identity
from keepwarm.daemon.store import Store
from keepwarm.daemon.store import decisions as rows
from keepwarm.digests.cadence import SIGNAL_KINDS, NetworkReport, PersonReport, Signal
from keepwarm.digests.cadence.facts import Facts, MeetingFacts, MeetingTodayFacts, OwedFacts
from keepwarm.digests.cadence.model import THEY_OWE, YOU_OWE
from keepwarm.digests.kinds import done_phrase
from keepwarm.digests.queries import EventRecord

if TYPE_CHECKING:
    from keepwarm.daemon.network import ReadAhead
from keepwarm.digests.suggest import LABELS, SECTIONS, Suggestion

Verb = Literal["done", "snooze", "dismiss", "ignore", "merge", "note"]
VERBS: tuple[Verb, ...] = get_args(Verb)
# A decision in force, taken back by `keepwarm undo`, or refused (an action mail that failed its
# checks, kept so that the next digest can say why).
State = Literal["active", "undone", "rejected"]
# What the digest's actions are called (the same words on every screen).
VERB_LABELS: dict[str, str] = {
    "done": "done",
    "snooze": "not now",
    "dismiss": "not useful",
    "ignore": "not a person",
    "merge": "same person",
    "note": "note",
}
KINDS: tuple[str, ...] = (*SIGNAL_KINDS, *SECTIONS)  # a kind, or a whole section of them
DONE_TOUCH_MINUTES = 30
DISMISS_DAMPING = 0.15  # each dismissal of a kind weighs it down by about this much ...
DISMISS_FLOOR = 0.5  # ... but never below half


@dataclass(frozen=True)
class Decision:
    id: int
    verb: str
    person: str
    other: str | None
    kind: str | None
    until: int | None
    note: str | None
    at: int
    source: str
    state: State
    created_at: int
    undone_at: int | None = None
    reason: str | None = None

    @property
    def when(self) -> datetime:
        return datetime.fromtimestamp(self.at, UTC)

    @property
    def active(self) -> bool:
        return self.state == "active"

    def to_json(self) -> dict[str, Any]:
        def iso(ts: int | None) -> str | None:
            return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()

        return {
            "id": self.id,
            "verb": self.verb,
            "label": VERB_LABELS.get(self.verb, self.verb),
            "person": self.person,
            "other": self.other,
            "kind": self.kind,
            "until": iso(self.until),
            "note": self.note,
            "at": iso(self.at),
            "source": self.source,
            "state": self.state,
            "reason": self.reason,
            "undone_at": iso(self.undone_at),
        }


def _row(r: Sequence[Any]) -> Decision:
    return Decision(*r)


# -- reading and writing ---------------------------------------------------------------------------
def record(
    store: Store,
    verb: str,
    person: str,
    *,
    at: datetime,
    other: str | None = None,
    kind: str | None = None,
    until: datetime | None = None,
    note: str | None = None,
    source: str = "cli",
    mail_key: str | None = None,
    state: State = "active",
    reason: str | None = None,
) -> Decision | None:
    """Store one decision; None when an action mail with this ``mail_key`` was seen before."""
    stamp = int(until.timestamp()) if until else None
    values = (verb, person, other, kind, stamp, note, int(at.timestamp()), source, mail_key)
    new = rows.insert(store, (*values, state, reason))
    return None if new is None else get(store, new)


def get(store: Store, decision_id: int) -> Decision | None:
    row = rows.get(store, decision_id)
    return _row(row) if row else None


def load(
    store: Store, *, verbs: Iterable[str] = VERBS, states: Iterable[State] = ("active",)
) -> list[Decision]:
    """Decisions with these verbs and states, oldest first."""
    return [_row(r) for r in rows.load(store, list(verbs), list(states))]


def since(store: Store, created_after: int) -> list[Decision]:
    """Decisions recorded after ``created_after`` that are still in force, or were rejected."""
    return [_row(r) for r in rows.since(store, created_after)]


def undo(store: Store, decision_id: int, now: datetime) -> Decision:
    d = get(store, decision_id)
    if d is None:
        raise UndoError(f"there is no decision #{decision_id}; `keepwarm decisions` lists them")
    if d.state == "undone":
        raise UndoError(f"decision #{decision_id} was already undone")
    if d.state == "rejected":
        raise UndoError(f"decision #{decision_id} was never applied (its action mail was rejected)")
    rows.mark_undone(store, decision_id, int(now.timestamp()))
    got = get(store, decision_id)
    assert got is not None
    return got


def undo_all(store: Store, verb: str, persons: Iterable[str], now: datetime) -> int:
    """Undo every active ``verb`` decision about these addresses (``snooze --clear``)."""
    return rows.undo_all(store, verb, persons, int(now.timestamp()))


# -- what they change ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Inputs:
    """The active decisions, sorted by what they feed."""

    aliases: tuple[tuple[str, str], ...] = ()
    ignored: frozenset[str] = frozenset()
    snoozed: Mapping[str, int] = field(default_factory=dict)  # address -> until
    dismissed: tuple[Decision, ...] = ()
    done: tuple[Decision, ...] = ()
    notes: tuple[Decision, ...] = ()
    book: AddressBook = field(default_factory=AddressBook)  # applied first, like config


def load_inputs(store: Store, now: datetime) -> Inputs:
    active = load(store)
    ts = int(now.timestamp())
    return Inputs(
        aliases=tuple((d.person, d.other) for d in active if d.verb == "merge" and d.other),
        ignored=frozenset(d.person for d in active if d.verb == "ignore"),
        snoozed=_snoozed(active, ts),
        dismissed=tuple(d for d in active if d.verb == "dismiss"),
        done=tuple(d for d in active if d.verb == "done" and d.at <= ts),
        notes=tuple(d for d in active if d.verb == "note"),
        book=address_book.load(store),
    )


def _snoozed(active: Iterable[Decision], ts: int) -> dict[str, int]:
    """Person -> the end of their latest snooze still running at ``ts``."""
    snoozed: dict[str, int] = {}
    for d in active:
        if d.verb == "snooze" and d.until is not None and d.until > ts:
            snoozed[d.person] = max(snoozed.get(d.person, 0), d.until)
    return snoozed


def effective_config(config: Config, inputs: Inputs) -> Config:
    """The config with your address book (daemon/address_book.py), then your merges in
    ``[people] aliases`` and ignores in ``[exclude] addresses``."""
    config = address_book.apply(config, inputs.book)
    if not inputs.aliases and not inputs.ignored:
        return config
    people = dict(config.people)
    people["aliases"] = (*tuple(people.get("aliases") or ()), *(list(a) for a in inputs.aliases))
    exclude = dict(config.exclude)
    exclude["addresses"] = (
        *tuple(exclude.get("addresses") or ()),
        *sorted(inputs.ignored - set(exclude.get("addresses") or ())),
    )
    return replace(config, people=people, exclude=exclude)


def decided_config(config: Config, store: Store, now: datetime) -> Config:
    return effective_config(config, load_inputs(store, now))


def touch_events(inputs: Inputs, config: Config, now: datetime) -> tuple[EventRecord, ...]:
    """Each ``done`` as a touch the engine counts: a 30-minute one-to-one meeting at the moment
    of the decision, accepted by both, untitled (it adds no topic) and recurring (it is nobody's
    initiative, so give and take stays as it was). Its id is minus the decision's."""
    me = config.addresses[0]
    out = []
    for d in inputs.done:
        if d.at > int(now.timestamp()):
            continue
        out.append(
            EventRecord(
                id=-d.id,
                start=d.at,
                end=d.at + DONE_TOUCH_MINUTES * 60,
                organizer=me,
                my_response="accepted",
                recurring=True,
                attendees=(
                    Attendee(me, response="accepted", organizer=True, is_self=True),
                    Attendee(d.person, response="accepted"),
                ),
            )
        )
    return tuple(out)


def is_touch_event(facts: Facts) -> bool:
    """Is the signal with these facts about a touch recorded with ``done`` (not a meeting)?"""
    return isinstance(facts, MeetingFacts) and facts.event_id < 0


def without_touch_meetings(report: NetworkReport) -> NetworkReport:
    """A ``done`` is not a meeting to prepare or follow up: drop what the engine says of it."""
    return replace(
        report,
        signals=tuple(s for s in report.signals if not is_touch_event(s.facts)),
        meetings_today=tuple(m for m in report.meetings_today if m.event_id >= 0),
        meetings_yesterday=tuple(m for m in report.meetings_yesterday if m.event_id >= 0),
    )


def build_report(
    config: Config,
    store: Store,
    now: datetime,
    *,
    identity: Identity | None = None,
    ahead: ReadAhead | None = None,
) -> NetworkReport:
    """The engine's report with every decision applied (what the digest and `people` show).

    ``identity``, when given, must come from the decided config (:func:`decided_config`);
    ``ahead``, the history read with it (:func:`keepwarm.daemon.network.identity_and_messages`)."""
    from keepwarm.daemon.network import build_report as engine_report

    inputs = load_inputs(store, now)
    decided = effective_config(config, inputs)
    report = engine_report(
        decided,
        store,
        now,
        identity=identity,
        extra_events=touch_events(inputs, decided, now),
        ahead=ahead,
    )
    return without_answered_replies(without_touch_meetings(report), inputs)


def without_answered_replies(report: NetworkReport, inputs: Inputs) -> NetworkReport:
    """A ``done`` answers the replies owed either way that were waiting before it, on every
    screen: the owed signals go, and so do the person's owed counts (``people --owed``)."""
    if not inputs.done:
        return report
    keys = key_of_address(report.people)
    done: dict[str, list[Decision]] = {}
    for d in inputs.done:
        done.setdefault(keys.get(d.person, d.person), []).append(d)
    answered_kinds: dict[str, set[str]] = {}
    signals = []
    for s in report.signals:
        if any(_answers_owed(s.facts, d) for d in done.get(s.person_key, ())):
            answered_kinds.setdefault(s.person_key, set()).add(s.kind)
            continue
        signals.append(s)
    if not answered_kinds:
        return report
    return replace(
        report,
        people=tuple(_owed_cleared(p, answered_kinds.get(p.key, set())) for p in report.people),
        signals=tuple(
            _owed_cleared_signal(s, answered_kinds.get(s.person_key, set())) for s in signals
        ),
    )


_OWED_LINES = {"reply_owed": YOU_OWE, "awaiting_reply": THEY_OWE}


def _owed_cleared(p: PersonReport, gone: set[str]) -> PersonReport:
    if not gone & _OWED_LINES.keys():
        return p
    return replace(
        p,
        replies_owed_by_me=0 if "reply_owed" in gone else p.replies_owed_by_me,
        replies_owed_to_me=0 if "awaiting_reply" in gone else p.replies_owed_to_me,
    )


def _owed_cleared_signal(s: Signal, gone: set[str]) -> Signal:
    """Another signal about the person (a meeting's preparation) no longer says the answered
    replies are owed."""
    lines = [line for kind, line in _OWED_LINES.items() if kind in gone]
    f = s.facts
    if not lines or not isinstance(f, MeetingTodayFacts):
        return s
    facts = replace(
        f,
        replies_owed_by_me=0 if "reply_owed" in gone else f.replies_owed_by_me,
        replies_owed_to_me=0 if "awaiting_reply" in gone else f.replies_owed_to_me,
    )
    because = [b for b in s.because if not any(b.startswith(line) for line in lines)]
    return replace(s, facts=facts, because=because)


# -- the digest's ranking inputs -------------------------------------------------------------------
def key_of_address(people: Iterable[PersonReport]) -> dict[str, str]:
    out: dict[str, str] = {}
    for p in people:
        out[p.key] = p.key
        for a in p.addresses:
            out.setdefault(a, p.key)
    return out


def snoozed_keys(people: Iterable[PersonReport], inputs: Inputs) -> set[str]:
    keys = key_of_address(people)
    return {keys.get(a, a) for a in inputs.snoozed}


def _matches(kind: str | None, s: Suggestion) -> bool:
    return kind is not None and kind in (s.kind, s.section)


def _epoch(iso: str) -> int | None:
    try:
        dt = datetime.fromisoformat(iso)
    except ValueError:
        return None
    return int((dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp())


def answered(s: Suggestion, d: Decision, now: datetime, cooldown: timedelta) -> bool:
    """Does ``done`` decision ``d`` (about the same person) answer suggestion ``s``?

    A touch answers the replies owed either way that were waiting before it; the kind it was
    made for stays out of the digest for the cooldown.
    """
    if _answers_owed(s.facts, d):
        return True
    return _matches(d.kind, s) and now.timestamp() - d.at < cooldown.total_seconds()


def _answers_owed(facts: Facts, d: Decision) -> bool:
    """Was the reply owed (by me or to me) that ``facts`` describe waiting before ``done`` ``d``?"""
    if not isinstance(facts, OwedFacts):
        return False
    oldest = _epoch(facts.oldest)
    return oldest is not None and oldest <= d.at


def adjust(
    candidates: Sequence[Suggestion],
    people: Iterable[PersonReport],
    inputs: Inputs,
    now: datetime,
    cooldown: timedelta,
) -> list[Suggestion]:
    """The suggestions the decisions leave, with dismissed kinds weighed down."""
    keys = key_of_address(people)
    dismissed: dict[str, list[Decision]] = {}
    for d in inputs.dismissed:
        dismissed.setdefault(keys.get(d.person, d.person), []).append(d)
    done: dict[str, list[Decision]] = {}
    for d in inputs.done:
        done.setdefault(keys.get(d.person, d.person), []).append(d)
    per_kind = Counter(d.kind for d in inputs.dismissed if d.kind)
    out: list[Suggestion] = []
    for s in candidates:
        if any(_matches(d.kind, s) for d in dismissed.get(s.person_key, ())):
            continue
        if any(answered(s, d, now, cooldown) for d in done.get(s.person_key, ())):
            continue
        n = per_kind[s.kind] + per_kind[s.section]
        if n:
            s = replace(s, score=s.score * max(DISMISS_FLOOR, 1.0 / (1.0 + DISMISS_DAMPING * n)))
        out.append(s)
    return out


def with_notes(
    suggestions: Sequence[Suggestion],
    people: Iterable[PersonReport],
    inputs: Inputs,
    meeting_today: Iterable[str] = (),
) -> list[Suggestion]:
    """Meeting preparation carries your notes about the person (newest first): a meeting
    today, whether it is the item or folded into another one for the same person."""
    if not inputs.notes:
        return list(suggestions)
    keys = key_of_address(people)
    meeting = set(meeting_today)
    notes: dict[str, list[Decision]] = {}
    for d in inputs.notes:
        notes.setdefault(keys.get(d.person, d.person), []).append(d)
    out = []
    for s in suggestions:
        mine = sorted(notes.get(s.person_key, ()), key=lambda d: -d.at)
        if mine and (s.kind == "meeting_today" or s.person_key in meeting):
            s = replace(s, reasons=(*s.reasons, *(f"your note: {d.note}" for d in mine[:2])))
        out.append(s)
    return out


def kind_label(kind: str | None) -> str:
    """'reply owed', 'reconnect' ...: a kind or section as the digest calls it."""
    if kind is None:
        return "any suggestion"
    if kind in LABELS:
        return LABELS[kind].lower()
    return kind.replace("_", " ")


# -- what the next digest says ---------------------------------------------------------------------
MAX_APPLIED_LINES = 8


def describe(d: Decision, names: Mapping[str, str], zone: Any, today: Any) -> str:
    """One line about a decision, as the digest and `keepwarm decisions` say it:
    'done: reply to Maya, yesterday'."""
    from keepwarm.digests.render import day_label
    from keepwarm.digests.suggest import clean_text, first_name

    def name(address: str | None) -> str:
        if address is None:
            return "?"
        return clean_text(names.get(address) or address, 60)

    def day(ts: int) -> str:
        local = datetime.fromtimestamp(ts, UTC).astimezone(zone).date()
        delta = (today - local).days
        return "today" if delta == 0 else "yesterday" if delta == 1 else day_label(local)

    if d.state == "rejected":
        return f"not applied: an action mail of {day(d.at)}: {d.reason or 'rejected'}"
    if d.verb == "done":
        who = first_name(names.get(d.person) or "", d.person)
        phrase = done_phrase(d.kind).format(who=who)
        return f"done: {phrase}, {day(d.at)}"
    if d.verb == "snooze":
        return f"not now: {name(d.person)} until {day(d.until or d.at)}"
    if d.verb == "dismiss":
        return f"not useful: {kind_label(d.kind)} for {name(d.person)}"
    if d.verb == "ignore":
        return f"not a person: {d.person}"
    if d.verb == "merge":
        return f"same person: {name(d.person)} <{d.person}> and <{d.other}>"
    if d.verb == "note":
        return f"note on {name(d.person)}: {clean_text(d.note, 80)}"
    return f"{d.verb}: {name(d.person)}"  # pragma: no cover - every verb is handled above


def applied_lines(store: Store, names: Mapping[str, str], zone: Any, today: Any) -> list[str]:
    """What was decided since the last digest went out (or the last day), numbered for undo."""
    # sent_at and created_at are both wall-clock times, whatever ``now`` (--as-of) is
    start = rows.last_digest_sent_before(store, today.isoformat()) or int(time.time()) - 86400
    found = since(store, start)
    lines = [f"{describe(d, names, zone, today)} (#{d.id})" for d in found[:MAX_APPLIED_LINES]]
    if len(found) > MAX_APPLIED_LINES:
        lines.append(f"and {len(found) - MAX_APPLIED_LINES} more: keepwarm decisions")
    return lines
