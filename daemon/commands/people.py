"""keepwarm CLI commands: people, person."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import click

from keepwarm.connectors.headers import normalize_address
from keepwarm.core import gc_paused
from keepwarm.core.specs import ENGINE_DEFAULTS as E
from keepwarm.daemon import completion, decisions, forked, freshness, jsonout
from keepwarm.daemon.commands.base import (
    Ctx,
    UserError,
    as_of_option,
    cli,
    now_utc,
    parse_as_of,
    pass_ctx,
)
from keepwarm.daemon.config import Config
from keepwarm.daemon.decisions import build_report
from keepwarm.daemon.identity import Identity, Person, merge_candidates, name_key
from keepwarm.daemon.network import engine_fields, identity_and_messages, signal_json, wanted
from keepwarm.daemon.people_stats import (
    HistoryMeeting,
    HistoryMessage,
    PeopleView,
    PersonStats,
    history,
    iso,
    load_view,
    person_record,
)
from keepwarm.daemon.store import Store
from keepwarm.daemon.words import kind_word, plural, table, tier_word
from keepwarm.digests.cadence import NetworkReport, PersonReport

__all__ = ["PeopleView", "cli", "load_view", "people_json", "people_records"]


def selected_people(
    view: PeopleView, all_kinds: bool, report: NetworkReport | None = None
) -> list[Person]:
    """Relationships (two-way persons) by default; with ``all_kinds`` every cluster with history.

    With the engine's ``report``: strongest first (people the engine has no data on last).
    """
    chosen = [
        p
        for p in view.identity.people.values()
        if (p.kind == "person" and p.two_way) or (all_kinds and view.stats[p.key].interactions > 0)
    ]
    if report is None:
        return sorted(chosen, key=lambda p: _order(p, view.stats[p.key], all_kinds))
    # The report's order, then the others by last touch: only those need their figures (the
    # table of the engine's view shows none of them).
    rank = {r.key: i for i, r in enumerate(report.people)}
    ranked = sorted((p for p in chosen if p.key in rank), key=lambda p: rank[p.key])
    rest = [p for p in chosen if p.key not in rank]
    rest.sort(key=lambda p: _order(p, view.stats[p.key], all_kinds))
    return ranked + rest


def _order(p: Person, s: PersonStats, all_kinds: bool) -> tuple[Any, ...]:
    last = -float(s.last_touch_at) if s.last_touch_at is not None else 0.0
    kind_rank = ("person", "self", "role", "list", "robot", "excluded").index(p.kind)
    return (kind_rank if all_kinds else 0, last, p.key)


def people_records(
    view: PeopleView,
    all_kinds: bool,
    report: NetworkReport | None = None,
    people: list[Person] | None = None,
) -> list[dict[str, Any]]:
    """The JSON array of ``keepwarm people --json``, with the engine's fields when ``report``."""
    chosen = people if people is not None else selected_people(view, all_kinds, report)
    out = []
    for p in chosen:
        record = person_record(p, view.stats[p.key])
        if report is not None:
            record.update(engine_fields(report.person(p.key)))
        out.append(record)
    return out


def people_json(
    view: PeopleView, all_kinds: bool, report: NetworkReport | None, people: list[Person]
) -> str:
    """The text of ``keepwarm people --json`` (``jsonout.dumps(people_records(...))``), made in
    two halves on two cores when there are many (:func:`keepwarm.daemon.forked.in_two`)."""
    if not people:
        return "[]"

    def make(part: Sequence[Person]) -> str:
        return jsonout.items(people_records(view, all_kinds, report, list(part)))

    return "[\n  " + forked.in_two(make, people, ",\n  ") + "\n]"


def _day(dt: datetime | None, zone: ZoneInfo) -> str:
    return dt.astimezone(zone).strftime("%Y-%m-%d") if dt else "-"


def print_people(
    view: PeopleView,
    zone: ZoneInfo,
    all_kinds: bool,
    report: NetworkReport | None = None,
    people: list[Person] | None = None,
    explain: bool = False,
    plain: bool = False,
) -> None:
    people = people if people is not None else selected_people(view, all_kinds, report)
    if report is not None and not all_kinds:
        print_network(people, report, explain, zone, plain)
        return
    if not people:
        what = "addresses with mail or meetings" if all_kinds else "relationships (two-way) yet"
        click.echo(f"no {what}; run 'keepwarm sync' or 'keepwarm import' first")
        return
    headers = ["name", "address", "last touch", "in", "out", "meetings"]
    rows = [_people_row(view, p, zone, all_kinds) for p in people]
    lines = table([*headers, *(["kind"] if all_kinds else [])], rows, (3, 4, 5), plain)
    if not plain:
        n_rel = sum(1 for p in people if p.kind == "person" and p.two_way)
        summary = plural(n_rel, "relationship")
        if all_kinds:
            summary += f" among {plural(len(people), 'address cluster')}"
        lines.append(summary)
    click.echo("\n".join(lines))  # in one piece: a line at a time, each flushed, took longer


def _people_row(view: PeopleView, p: Person, zone: ZoneInfo, all_kinds: bool) -> list[str]:
    """One line of the table of ``keepwarm people`` (without the engine's report)."""
    s = view.stats[p.key]
    extra = f" (+{len(p.addresses) - 1})" if len(p.addresses) > 1 else ""
    row = [
        p.name,
        p.key + extra,
        _day(s.last_touch, zone),
        f"{s.messages_in:,}",
        f"{s.messages_out:,}",
        f"{s.meetings:,}",
    ]
    if all_kinds:
        row.append(kind_word(p.kind, p.two_way))
    return row


def _silence(rep: PersonReport) -> tuple[str, str]:
    if rep.days_since_contact is None:
        return "-", "-"
    return plural(rep.days_since_contact, "day"), plural(round(rep.expected_gap_days), "day")


def print_network(
    people: list[Person],
    report: NetworkReport,
    explain: bool,
    zone: ZoneInfo | None = None,
    plain: bool = False,
) -> None:
    """Relationships with the engine's view: tier, stage, strength, silence against rhythm."""
    if not people:
        if explain:
            click.echo("nobody matches these filters; 'keepwarm people' lists every relationship")
        else:
            click.echo(
                "no relationships (two-way) yet; 'keepwarm people --all' lists every address"
            )
        return
    headers = ["name", "address", "tier", "stage", "strength", "silent", "usual gap", "owed"]
    rows: list[list[str]] = []
    notes: dict[int, list[str]] = {}
    for p in people:
        rep = report.person(p.key)
        if rep is None:
            rows.append([p.name, p.key, "-", "-", "-", "-", "-", "-"])
            notes[len(rows) - 1] = ["no conversation the engine counts yet"]
            continue
        silent, usual = _silence(rep)
        rows.append(
            [
                p.name,
                p.key,
                tier_word(rep.tier),
                rep.stage,
                f"{rep.strength:.2f}",
                silent,
                usual,
                f"{rep.replies_owed_by_me}/{rep.replies_owed_to_me}",
            ]
        )
        if explain:
            notes[len(rows) - 1] = [
                f"{sig.kind}: {'; '.join(sig.because)}" for sig in report.signals_for(p.key)
            ]
    lines = table(headers, rows, (4, 5, 6, 7), plain)
    out = [lines[0]]
    for i, line in enumerate(lines[1:]):
        out.append(line)
        if not plain:
            out.extend(f"    {note}" for note in notes.get(i, ()))
    if not plain:
        out.append(
            f"{plural(len(people), 'person', 'people')} "
            "(owed: replies you owe / replies owed to you)"
        )
    click.echo("\n".join(out))  # in one piece, as print_people does


def print_candidates(cands: list[tuple[Person, Person, str]], as_json: bool) -> None:
    if as_json:
        rows = [
            {
                "a": a.key,
                "b": b.key,
                "a_addresses": list(a.addresses),
                "b_addresses": list(b.addresses),
                "reason": why,
            }
            for a, b, why in cands
        ]
        click.echo(jsonout.dumps(rows))
        return
    if not cands:
        click.echo("no likely merges found")
        return
    for a, b, why in cands:
        click.echo(f"{a.key}  <->  {b.key}: {why}")
    click.echo(
        f"\nTo merge two, run for example:\nkeepwarm merge {cands[0][0].key} {cands[0][1].key}"
    )


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of people.")
@click.option("--all", "all_kinds", is_flag=True, help="Every address cluster with its kind.")
@click.option(
    "--merge-candidates",
    "merges",
    is_flag=True,
    help="List addresses that are likely the same person (confirm with people.aliases).",
)
@click.option("--tier", "tier", metavar="NAME", help="Only people in this tier.")
@click.option("--fading", is_flag=True, help="Only ties silent well past their own usual rhythm.")
@click.option(
    "--lopsided", is_flag=True, help="Only ties where one side does nearly all the reaching out."
)
@click.option("--owed", is_flag=True, help="Only people with a reply owed, by you or to you.")
@click.option("--plain", is_flag=True, help="Tab-separated columns and no summary (for scripts).")
@as_of_option
@pass_ctx
@gc_paused()
def people(
    obj: Ctx,
    as_json: bool,
    all_kinds: bool,
    merges: bool,
    tier: str | None,
    fading: bool,
    lopsided: bool,
    owed: bool,
    plain: bool,
    as_of: str | None,
) -> None:
    """List your relationships, strongest first, with tier, stage and rhythm.

    --all lists every address cluster with its kind (person, list, robot, role, excluded, self);
    --fading, --lopsided, --owed and --tier filter (and explain why each person is listed);
    `keepwarm person ADDRESS --why` explains one person.
    """
    config = obj.config
    when = parse_as_of(as_of, config.zone)
    _check_tier(config, tier)
    report: NetworkReport | None = None
    with obj.store() as store:
        decided = decisions.decided_config(config, store, now_utc(when))
        if merges:
            view = load_view(store, decided, when)
        else:
            activity, ahead = identity_and_messages(store, decided, when, now_utc(when))
            view = load_view(store, decided, when, activity)
            report = build_report(config, store, now_utc(when), identity=view.identity, ahead=ahead)
        problem = freshness.data_problem(store, now_utc(when), config)
    if merges or report is None:
        print_candidates(merge_candidates(view.identity), as_json)
        return
    chosen = _filtered(
        selected_people(view, all_kinds, report),
        report,
        tier=tier,
        fading=fading,
        lopsided=lopsided,
        owed=owed,
    )
    if as_json:
        click.echo(people_json(view, all_kinds, report, chosen))
    else:
        explain = bool(tier or fading or lopsided or owed)
        print_people(view, config.zone, all_kinds, report, chosen, explain, plain)
    if problem and not plain and not as_json:
        click.echo(f"note: {problem}", err=True)


def _filtered(
    people: list[Person],
    report: NetworkReport,
    *,
    tier: str | None,
    fading: bool,
    lopsided: bool,
    owed: bool,
) -> list[Person]:
    """The people the filters want (all of them without a filter: no look-up then)."""
    if not (tier or fading or lopsided or owed):
        return people
    return [
        p
        for p in people
        if wanted(report, p.key, tier=tier, fading=fading, lopsided=lopsided, owed=owed)
    ]


def _check_tier(config: Config, tier: str | None) -> None:
    if tier is not None and tier not in {t.name for t in config.tiers}:
        names = ", ".join(t.name for t in config.tiers)
        raise UserError(f'--tier: no tier named "{tier}"; your tiers are {names}')


# -- person -----------------------------------------------------------------------------------------
def find_person(identity: Identity, query: str) -> Person:
    """The cluster of an address, or of the one name that matches: exactly, then as a name in
    another order ("Lopez, Maria"), then as a part of a name. Anything else is an error."""
    norm = normalize_address(query)
    if norm:
        key = identity.person_of.get(norm)
        if key is None:
            raise UserError(
                f"{query} is not in your mail or calendar; "
                "'keepwarm people --all' lists every known address"
            )
        return identity.people[key]
    needle = " ".join(query.casefold().split())
    if not needle:
        raise UserError("give a person: an email address or a name that 'keepwarm people' prints")
    people = sorted(identity.people.values(), key=lambda p: p.key)
    wanted = name_key(query)

    def exact(p: Person) -> bool:
        return " ".join(p.name.casefold().split()) == needle

    def reordered(p: Person) -> bool:
        return wanted is not None and name_key(p.name) == wanted

    def part(p: Person) -> bool:
        return needle in p.name.casefold()

    for test in (exact, reordered, part):
        hits = [p for p in people if test(p)]
        if len(hits) == 1:
            return hits[0]
        if hits:
            shown = ", ".join(f"{p.name} <{p.key}>" for p in hits[:10])
            more = f" and {len(hits) - 10} more" if len(hits) > 10 else ""
            raise UserError(
                f'"{query}" matches several people: {shown}{more}; pass an email address'
            )
    raise UserError(
        f'nobody named "{query}" in your mail or calendar; pass an email address '
        "('keepwarm people --all' lists every name)"
    )


@cli.command()
@click.argument("address", shell_complete=completion.people)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--limit", default=20, show_default=True, help="How many recent messages to show.")
@click.option(
    "--why", is_flag=True, help="Also show the engine's view: tier, rhythm, give-and-take, signals."
)
@as_of_option
@pass_ctx
@gc_paused()
def person(obj: Ctx, address: str, as_json: bool, limit: int, why: bool, as_of: str | None) -> None:
    """One person's history (recent mail and meetings) and why they are classified as they are."""
    config = obj.config
    when = parse_as_of(as_of, config.zone)
    with obj.store() as store:
        decided = decisions.decided_config(config, store, now_utc(when))
        ahead = None
        if why:  # the engine runs: read its messages while identity's queries run
            activity, ahead = identity_and_messages(store, decided, when, now_utc(when))
            view = load_view(store, decided, when, activity)
        else:
            view = load_view(store, decided, when)
        p = find_person(view.identity, address)
        mine = _decisions_about(store, p)
        msgs, meets = history(
            store,
            p,
            view.activity,
            max_recipients=int(config.engine.get("max_recipients") or E.max_recipients),
            max_attendees=int(config.engine.get("max_attendees") or E.max_attendees),
            limit=limit,
        )
        report = (
            build_report(config, store, now_utc(when), identity=view.identity, ahead=ahead)
            if why
            else None
        )
    record = person_record(p, view.stats[p.key])
    record["notes"] = [
        {"id": d.id, "at": iso(d.when), "text": d.note} for d in mine if d.verb == "note"
    ]
    record["decisions"] = [d.to_json() for d in mine if d.verb != "note"]
    if report is not None:
        record.update(engine_fields(report.person(p.key)))
        record["signals"] = [signal_json(s) for s in report.signals_for(p.key)]
    if as_json:
        click.echo(jsonout.dumps(_with_history(record, msgs, meets)))
        return
    _print_person(record, msgs, meets, config.zone, config.store_subjects)
    _print_decisions(mine, dict.fromkeys(p.addresses, p.name), config)
    if report is not None:
        _print_why(report, p.key)


def _decisions_about(store: Store, p: Person) -> list[decisions.Decision]:
    """The user's decisions and notes about this person (or linking them to someone)."""
    return [
        d
        for d in decisions.load(store)
        if d.person in p.addresses or (d.other is not None and d.other in p.addresses)
    ]


def _with_history(
    record: dict[str, Any], msgs: list[HistoryMessage], meets: list[HistoryMeeting]
) -> dict[str, Any]:
    """``keepwarm person --json``: the record with the recent messages and meetings."""
    record["messages"] = [
        {
            "date": iso(m.date),
            "direction": m.direction,
            "subject": m.subject,
            "recipients": m.recipients,
            "mass": m.mass,
        }
        for m in msgs
    ]
    record["recent_meetings"] = [
        {
            "start": iso(m.start),
            "title": m.title,
            "attendees": m.attendees,
            "response": m.response,
            "small": m.small,
        }
        for m in meets
    ]
    return record


def _print_decisions(mine: list[decisions.Decision], names: dict[str, str], config: Any) -> None:
    notes = [d for d in mine if d.verb == "note"]
    rest = [d for d in mine if d.verb != "note"]
    zone = config.zone
    if notes:
        click.echo("your notes:")
        for d in sorted(notes, key=lambda d: -d.at):
            click.echo(f"  {d.when.astimezone(zone):%Y-%m-%d} {d.note} (#{d.id})")
    if rest:
        today = datetime.now(zone).date()
        click.echo("your decisions:")
        for d in rest:
            click.echo(f"  {decisions.describe(d, names, zone, today)} (#{d.id})")


def _print_why(report: NetworkReport, key: str) -> None:
    """The engine's view in the words of every other screen (no raw ratios: --json has them)."""
    rep = report.person(key)
    if rep is None:
        click.echo(
            "in your network: not yet (no conversation the engine counts: mass mail, automatic "
            "mail or one-way only)"
        )
        return
    click.echo(
        f"in your network: tier {tier_word(rep.tier)}, stage {rep.stage}, "
        f"strength {rep.strength:.2f}"
    )
    click.echo(
        f"  conversations: {plural(rep.contact_days, 'day')} on which you both wrote in one "
        "thread, or met"
    )
    if rep.days_since_contact is not None:
        line = f"  rhythm: last conversation {plural(rep.days_since_contact, 'day')} ago"
        if rep.typical_gap_days is not None:
            line += f"; you usually talk every {plural(round(rep.typical_gap_days), 'day')}"
        if rep.overdue_ratio is not None and rep.overdue_ratio >= 1.05:
            line += f", so that is {rep.overdue_ratio:.1f} times your usual gap"
        click.echo(line)
    click.echo(
        f"  give and take: you started {plural(rep.initiated_by_me, 'thread or meeting', 'threads or meetings')}, "
        f"they started {rep.initiated_by_them:,}; you owe {plural(rep.replies_owed_by_me, 'reply', 'replies')}, "
        f"they owe you {plural(rep.replies_owed_to_me, 'reply', 'replies')}"
    )
    sigs = report.signals_for(key)
    if not sigs:
        click.echo("  suggestions: none today")
    for sig in sigs:
        click.echo(f"  suggestion: {sig.kind.replace('_', ' ')}")
        for line in sig.because:
            click.echo(f"    - {line}")


def _day_of(iso_ts: str | None, zone: ZoneInfo) -> str:
    if not iso_ts:
        return "-"
    return (
        datetime.fromisoformat(iso_ts.replace("Z", "+00:00")).astimezone(zone).strftime("%Y-%m-%d")
    )


def _print_person(
    record: dict[str, Any], msgs: list[Any], meets: list[Any], zone: ZoneInfo, subjects: bool
) -> None:
    click.echo(f"{record['name']} <{record['key']}>")
    for extra in record["addresses"][1:]:
        click.echo(f"  also {extra}")
    kind = record["kind"]
    if kind == "person":
        how = (
            "two-way: you have written to each other"
            if record["two_way"]
            else "one-way so far: not yet a relationship"
        )
        click.echo(f"kind: person, {how}")
    else:
        click.echo(f"kind: {kind_word(kind)} (not a relationship)")
    for why in record["reasons"]:
        click.echo(f"  - {why}")
    click.echo(
        f"messages: {record['messages_in']:,} from them ({record['direct_in']:,} direct), "
        f"{record['messages_out']:,} from you ({record['direct_out']:,} direct); "
        f"{plural(record['meetings'], 'small meeting')}"
    )
    click.echo(
        f"first touch {_day_of(record['first_touch'], zone)}, "
        f"last touch {_day_of(record['last_touch'], zone)}"
    )
    if msgs:
        click.echo("recent messages:")
        for m in msgs:
            arrow = "<-" if m.direction == "in" else "->"
            note = "  (mass mail, not a touch)" if m.mass else ""
            if m.subject is not None:
                subject = m.subject
            else:
                subject = "(no subject)" if subjects else "(subject not stored)"
            click.echo(f"  {m.date.astimezone(zone):%Y-%m-%d %H:%M} {arrow} {subject}{note}")
    if meets:
        click.echo("recent meetings:")
        for mt in meets:
            size = plural(mt.attendees, "attendee") + ("" if mt.small else ", large: not a touch")
            click.echo(
                f"  {mt.start.astimezone(zone):%Y-%m-%d %H:%M} {mt.title or '(untitled)'} "
                f"({size}; they {mt.response})"
            )
