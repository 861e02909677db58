"""What the user's address book adds to the engine (``EngineSettings.anniversaries`` and
``organisations``, by address; the daemon fills them from contacts): an anniversary occasion, a
job change seen in the address book ("now at Northwind"), and organisations for introductions
beyond what mail domains say. Kept apart from the signal builders, which call in here."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from keepwarm.digests.cadence.facts import BookAnniversaryFacts, BookJobChangeFacts, Facts
from keepwarm.digests.cadence.ledger import DAY
from keepwarm.digests.cadence.model import Organisation, SignalKind

if TYPE_CHECKING:
    from keepwarm.digests.cadence.state import Context, Person

ANNIVERSARY_LEAD_DAYS = 2
SOURCE = "address book"
_SUFFIXES = re.compile(
    r"[,.]?\s+(inc|incorporated|llc|ltd|limited|gmbh|ag|sa|sas|bv|nv|plc|corp|corporation|co)\.?$"
)

OccasionParts = tuple[SignalKind, float, Facts, list[str]]


def _addresses(p: Person, ctx: Context) -> tuple[str, ...]:
    info = ctx.directory.people.get(p.led.key)
    return (p.led.key, *(info.addresses if info else ()))


def organisation_of(ctx: Context, p: Person) -> Organisation | None:
    orgs = ctx.settings.organisations
    if not orgs:
        return None
    return next((orgs[a] for a in _addresses(p, ctx) if a in orgs), None)


def occasions(p: Person, ctx: Context) -> list[OccasionParts]:
    """The address book's occasions for one person: an anniversary within two days, a job
    change it recorded within ``new_window``."""
    from keepwarm.digests.cadence.signals import days_until

    out: list[OccasionParts] = []
    today = ctx.local_today
    book = ctx.settings.anniversaries
    md = next((book[a] for a in _addresses(p, ctx) if a in book), None) if book else None
    if md is not None:
        n = days_until(today, md)
        if n <= ANNIVERSARY_LEAD_DAYS:
            when = "today" if n == 0 else ("tomorrow" if n == 1 else f"in {n} days")
            out.append(
                (
                    "occasion_anniversary",
                    0.5 if n == 0 else 0.3,
                    BookAnniversaryFacts(date=md, days_until=n, source=SOURCE),
                    [f"anniversary {when} ({md}), from your address book"],
                )
            )
    job = job_change(p, ctx)
    if job is not None:
        out.append(job)
    return out


def job_change(p: Person, ctx: Context) -> OccasionParts | None:
    """The organisation the address book now names, when it changed within ``new_window``."""
    from keepwarm.digests.cadence.signals import local_date

    org = organisation_of(ctx, p)
    if org is None or not org.previous or org.since is None or not org.name:
        return None
    age = (ctx.clock.now - org.since) / DAY
    if age < 0 or age > ctx.settings.new_window.total_seconds() / DAY:
        return None
    since = local_date(ctx, org.since).isoformat()
    now_at = f"now at {org.name}" + (f" as {org.title}" if org.title else "")
    return (
        "occasion_job_change",
        0.6,
        BookJobChangeFacts(
            new_org=org.name,
            old_org=org.previous,
            title=org.title,
            since=since,
            source=SOURCE,
        ),
        [f"{now_at} (your address book, changed {since})", f"was at {org.previous}"],
    )


def family(name: str) -> str:
    """A comparable organisation name: ``Acme, Inc.`` and ``ACME`` are both ``acme``."""
    n = " ".join(name.casefold().replace("&", " and ").split())
    return _SUFFIXES.sub("", n).strip(" ,.")


def families(ctx: Context, addresses: tuple[str, ...]) -> set[str]:
    """The organisation families the address book gives these addresses."""
    orgs = ctx.settings.organisations
    return {family(orgs[a].name) for a in addresses if a in orgs and orgs[a].name}
