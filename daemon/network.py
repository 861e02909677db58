"""The daemon-side glue of the engine: config -> settings, identity -> directory, store -> report.

The digest and the people commands both call :func:`build_report`, so they always agree.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from keepwarm.daemon import address_book
from keepwarm.daemon.config import Config
from keepwarm.daemon.identity import (
    FAR_FUTURE,
    Activity,
    Identity,
    load_activity,
    resolve_activity,
)
from keepwarm.daemon.store import Store
from keepwarm.daemon.store.history import MessageStream, load_history
from keepwarm.digests.cadence import (
    Directory,
    EngineSettings,
    NetworkReport,
    PersonInfo,
    PersonReport,
    Signal,
)
from keepwarm.digests.queries import EventRecord, History

if TYPE_CHECKING:
    from keepwarm.digests.cadence.touches import Ahead

__all__ = [
    "ENGINE_FIELDS",
    "build_report",
    "directory",
    "end_of_local_day",
    "engine_fields",
    "engine_settings",
    "identity_and_messages",
    "signal_json",
    "wanted",
]


def engine_settings(config: Config) -> EngineSettings:
    """The ``[engine]``, ``[[tiers]]``, ``[[greetings]]`` and birthdays of the config."""
    e: dict[str, Any] = dict(config.engine)
    defaults = EngineSettings()

    def given(key: str, convert: Callable[[Any], Any] = lambda v: v) -> Any:
        """The config's value for ``key`` (converted), the engine's default when unset or empty."""
        value = e.get(key)
        return convert(value) if value else getattr(defaults, key)

    return EngineSettings(
        half_life=given("half_life"),
        max_attendees=given("max_attendees", int),
        max_recipients=given("max_recipients", int),
        fading_factor=given("fading_factor", float),
        dormant_factor=given("dormant_factor", float),
        reciprocity_window=given("reciprocity_window"),
        reply_grace=given("reply_grace"),
        reply_max_age=given("reply_max_age"),
        outreach_wait=given("outreach_wait"),
        max_growing=int(e.get("max_growing", defaults.max_growing)),  # 0 is a value here
        new_window=given("new_window"),
        lopsided_share=given("lopsided_share", float),
        lopsided_min_threads=given("lopsided_min_threads", int),
        tiers=config.tiers or defaults.tiers,
        greetings=config.greetings,
        birthdays=dict(config.people.get("birthdays") or {}),
        **address_book.engine_inputs(config),  # anniversaries and organisations
        timezone=config.timezone,
    )


def directory(identity: Identity) -> Directory:
    people = {
        k: PersonInfo(p.key, p.name, tuple(p.addresses), p.kind) for k, p in identity.people.items()
    }
    return Directory(people, dict(identity.person_of), frozenset(identity.self_addresses))


def end_of_local_day(now: datetime, config: Config) -> datetime:
    local = now.astimezone(config.zone)
    nxt = datetime.combine(local.date() + timedelta(days=1), time(0, 0), config.zone)
    return nxt.astimezone(UTC)


@dataclass(frozen=True, eq=False)
class ReadAhead:
    """The history as of a moment with its messages already read (:func:`identity_and_messages`);
    the moment is the messages' ``now``."""

    history: History
    messages: Ahead


def _history(store: Store, config: Config, now: datetime) -> History:
    """The stored history up to ``now``, and today's meetings (for preparation)."""
    return load_history(
        store.conn, until=now, events_until=end_of_local_day(now, config), stream=True
    )


def identity_and_messages(
    store: Store, config: Config, as_of: datetime | None, now: datetime
) -> tuple[Activity, ReadAhead]:
    """Identity's activity as of ``as_of`` (all of history when None) and the engine's messages
    up to ``now``, from one read of the messages: identity counts every message up to the later
    of the two, the engine keeps those up to ``now``."""
    from keepwarm.digests.cadence import read_ahead  # the engine loads numpy: only when it runs

    history = _history(store, config, now)
    until = max(int(as_of.timestamp()) if as_of else FAR_FUTURE, int(now.timestamp()))
    ahead = read_ahead(history, now, until)
    stream = history.messages  # a MessageStream (_history streams): its addresses, read once
    addresses = stream.addresses if isinstance(stream, MessageStream) else None
    activity = load_activity(store, config, as_of, ahead.take_every(), addresses)
    return activity, ReadAhead(history, ahead)


def build_report(
    config: Config,
    store: Store,
    now: datetime,
    *,
    identity: Identity | None = None,
    extra_events: Sequence[EventRecord] = (),
    ahead: ReadAhead | None = None,
) -> NetworkReport:
    """The engine's report as of ``now``: history after ``now`` is not read (``--as-of``),
    except today's meetings, which are needed for preparation. ``extra_events`` join the stored
    ones (the touches of your ``done`` decisions, daemon/decisions.py). ``ahead``: the history
    as :func:`identity_and_messages` read it with ``identity``'s activity."""
    from keepwarm.digests.cadence import analyze  # the engine loads numpy: only when it runs

    if ahead is not None and ahead.messages.now != int(now.timestamp()):
        ahead = None
    if identity is None:
        activity, ahead = identity_and_messages(store, config, now, now)
        identity = resolve_activity(activity, config)
    if ahead is None:
        history = _history(store, config, now)
        messages = None
    else:
        history, messages = ahead.history, ahead.messages
    if extra_events:
        history = replace(history, events=(*history.events, *extra_events))
    return analyze(history, directory(identity), engine_settings(config), now, messages)


# -- helpers for the people commands ------------------------------------------------------------
def engine_fields(rep: PersonReport | None) -> dict[str, Any]:
    """The engine's view of one person for ``keepwarm people --json`` (nulls when unknown)."""
    if rep is None:
        return dict.fromkeys(ENGINE_FIELDS)
    return {
        "tier": rep.tier,
        "strength": round(rep.strength, 3),
        "stage": rep.stage,
        "typical_gap_days": rep.typical_gap_days,
        "expected_gap_days": rep.expected_gap_days,
        "days_since_contact": rep.days_since_contact,
        "overdue_ratio": rep.overdue_ratio,
        "contact_days": rep.contact_days,
        "initiated_by_me": rep.initiated_by_me,
        "initiated_by_them": rep.initiated_by_them,
        "answered_by_me": rep.answered_by_me,
        "answered_by_them": rep.answered_by_them,
        "replies_owed_by_me": rep.replies_owed_by_me,
        "replies_owed_to_me": rep.replies_owed_to_me,
        "balance": rep.balance,
        "occasions": list(rep.occasions),
    }


ENGINE_FIELDS = (
    "tier",
    "strength",
    "stage",
    "typical_gap_days",
    "expected_gap_days",
    "days_since_contact",
    "overdue_ratio",
    "contact_days",
    "initiated_by_me",
    "initiated_by_them",
    "answered_by_me",
    "answered_by_them",
    "replies_owed_by_me",
    "replies_owed_to_me",
    "balance",
    "occasions",
)


def wanted(
    report: NetworkReport,
    key: str,
    *,
    tier: str | None = None,
    fading: bool = False,
    lopsided: bool = False,
    owed: bool = False,
) -> bool:
    """Does the person pass the ``people`` filters? (all given filters must hold)"""
    rep = report.person(key)
    if rep is None:
        return not (tier or fading or lopsided or owed)
    kinds = {s.kind for s in report.signals_for(key) if s.person_key == key}
    if tier is not None and rep.tier != tier:
        return False
    if fading and not kinds & {"fading", "dormant"}:
        return False
    if lopsided and not kinds & {"lopsided_me", "lopsided_them"}:
        return False
    return not (owed and not (rep.replies_owed_by_me or rep.replies_owed_to_me))


def signal_json(s: Signal) -> dict[str, Any]:
    return {
        "kind": s.kind,
        "person": s.person_key,
        "urgency": s.urgency,
        "facts": s.facts.to_json(),
        "because": list(s.because),
    }
