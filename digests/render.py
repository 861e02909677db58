"""The digest as an HTML email (Gmail, Outlook, Apple Mail) and a 72-column plain-text part.

Templates live in ``digests/templates/`` (package data) and are rendered with autoescape and
StrictUndefined. Layout rules that mail clients force on us: tables, every style inline, no
<style> block to depend on, widths that fold to 375 px, no images (the health bars are table
cells), and a total far below Gmail's 102 KB clipping limit.

Times are converted to the user's zone here and nowhere else. Every string that came from mail
(names, subjects, errors) passes :func:`keepwarm.digests.suggest.clean_text` before it reaches a
template, so no CR/LF, bidi overrides or 2,000-character names; autoescape does the HTML.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from keepwarm.digests.suggest import SECTIONS, Suggestion, clean_text, summary

if TYPE_CHECKING:  # jinja2 is imported when a digest is rendered, not by every command
    from jinja2 import Environment

TEXT_WIDTH = 72
GMAIL_CLIP_BYTES = 102 * 1024
APP = "keepwarm"


@dataclass(frozen=True)
class TierHealth:
    """People in one tier against its capacity, and how many of them are warm vs fading."""

    name: str
    capacity: int
    people: int
    warm: int
    fading: int


# An account's state in words, the same on every screen (the digest, status, doctor).
ACCOUNT_STATES = {
    "ok": "up to date",
    "stale": "out of date",
    "imported": "imported",
    "new": "not synced yet",
    "backoff": "backing off",
    "auth_required": "auth required",
    "failing": "failing",
}


@dataclass(frozen=True)
class AccountHealth:
    """Data freshness of one account (from the store's accounts table)."""

    name: str
    kind: str
    state: str
    last_ok_at: datetime | None = None
    last_error: str | None = None
    fix: str | None = None
    notices: tuple[str, ...] = ()  # about the source itself: a folder that vanished

    @property
    def needs_action(self) -> bool:
        return self.state in ("auth_required", "failing") or (
            self.state not in ("ok", "new", "backoff") and bool(self.fix)
        )


@dataclass(frozen=True)
class DigestModel:
    """Everything one day's digest shows."""

    local_date: date
    generated_at: datetime  # aware; shown in ``zone``
    zone: str
    owner_name: str
    suggestions: Sequence[Suggestion]
    tiers: Sequence[TierHealth] = ()
    accounts: Sequence[AccountHealth] = ()
    warnings: Sequence[str] = ()
    delivery_problem: str | None = None  # the previous digest failed: why, and what to do
    people_total: int = 0
    extra_actions: Sequence[str] = field(default_factory=tuple)
    applied: Sequence[str] = ()  # your decisions since the last digest, one line each
    # per suggestion (same order): its action links as (label, mailto: URL)
    links: Sequence[Sequence[tuple[str, str]]] = ()


@dataclass(frozen=True)
class RenderedDigest:
    subject: str
    html: str
    text: str


# -- helpers exposed to templates ------------------------------------------------------------------
def _env() -> Environment:
    from jinja2 import Environment, PackageLoader, StrictUndefined

    env = Environment(
        loader=PackageLoader("keepwarm.digests", "templates"),
        autoescape=lambda name: bool(name and name.endswith(".html.j2")),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["wrap"] = wrap
    return env


_ENV: Environment | None = None


def environment() -> Environment:
    global _ENV
    if _ENV is None:
        _ENV = _env()
    return _ENV


def wrap(text: str, indent: str = "", first: str | None = None, width: int = TEXT_WIDTH) -> str:
    """Wrap ``text`` to ``width`` columns; ``first`` prefixes the first line (default ``indent``)."""
    return textwrap.fill(
        text,
        width=width,
        initial_indent=indent if first is None else first,
        subsequent_indent=indent,
        break_long_words=True,
        break_on_hyphens=False,
    )


def day_label(d: date) -> str:
    """'Tue 24 Nov' (no locale dependence, no leading zero)."""
    return f"{d.strftime('%a')} {d.day} {d.strftime('%b')}"


def local_stamp(ts: datetime | None, zone: ZoneInfo, today: date) -> str:
    if ts is None:
        return "never"
    t = ts.astimezone(zone)
    clock = t.strftime("%H:%M")
    if t.date() == today:
        return f"today {clock}"
    if (today - t.date()).days == 1:
        return f"yesterday {clock}"
    return f"{day_label(t.date())} {clock}"


def subject_line(model: DigestModel) -> str:
    """'3 replies owed, 2 to reconnect: keepwarm, Tue 24 Nov'."""
    parts: list[str] = []
    problems = sum(1 for a in model.accounts if a.needs_action)
    if problems:
        parts.append(
            f"{problems} account{'s' if problems > 1 else ''} need{'' if problems > 1 else 's'} you"
        )
    counts = summary(model.suggestions)
    shown = counts if len(counts) <= 3 else counts[:2]  # every count shown is exact
    parts.extend(f"{n} {words}" for words, n in shown)
    rest = sum(n for _w, n in counts[len(shown) :])
    head = ", ".join(parts) + (f" and {rest} more" if rest else "")
    if not head:
        head = "Quiet day"
    return clean_text(f"{head}: {APP}, {day_label(model.local_date)}", 200)


# -- the context ------------------------------------------------------------------------------------
def _bar(t: TierHealth) -> dict[str, Any]:
    cap = max(t.capacity, 1)
    scale = max(cap, t.people)  # an over-full tier shows its overflow inside the same width
    warm = round(100 * min(t.warm, t.people) / scale)
    fading = round(100 * min(t.fading, max(t.people - t.warm, 0)) / scale)
    other = max(0, round(100 * t.people / scale) - warm - fading)
    empty = max(0, 100 - warm - fading - other)
    return {
        "name": clean_text(t.name, 30),
        "capacity": t.capacity,
        "people": t.people,
        "warm": t.warm,
        "fading": t.fading,
        "over": t.people > t.capacity,
        "cells": [
            (w, c)
            for w, c in (
                (warm, "#e8590c"),
                (fading, "#adb5bd"),
                (other, "#ced4da"),
                (empty, "#f1f3f5"),
            )
            if w > 0
        ],
        "text_bar": _text_bar(t, scale),
    }


def _text_bar(t: TierHealth, scale: int, width: int = 20) -> str:
    warm = round(width * min(t.warm, t.people) / scale)
    rest = max(0, round(width * t.people / scale) - warm)
    return "#" * warm + "-" * rest + "." * max(0, width - warm - rest)


def _account(a: AccountHealth, zone: ZoneInfo, today: date) -> dict[str, Any]:
    state = ACCOUNT_STATES.get(a.state, clean_text(a.state, 30))
    return {
        "name": clean_text(a.name, 64),
        "kind": clean_text(a.kind, 20),
        "state": state,
        "ok": a.state == "ok",
        "needs_action": a.needs_action,
        "synced": local_stamp(a.last_ok_at, zone, today),
        "error": clean_text(a.last_error, 200) if a.last_error and a.state != "ok" else "",
        "fix": clean_text(a.fix, 200) if a.fix and a.state != "ok" else "",
        "notices": [clean_text(n, 200) for n in a.notices[-3:]],
    }


def _action(a: dict[str, Any]) -> str:
    head = f"{a['name']} ({a['kind']}) {a['state']}"
    if a["fix"]:
        how = f"run {a['fix']}" if a["fix"].startswith("keepwarm ") else a["fix"]
        return f"{head}: {how}"
    return f"{head}: {a['error']}" if a["error"] else head


def _links(links: Sequence[tuple[str, str]]) -> list[dict[str, str]]:
    """Action links: only mailto: URLs (what keepwarm makes), labels as display text."""
    return [
        {"label": clean_text(label, 40), "href": href}
        for label, href in links
        if href.startswith("mailto:") and not any(c in href for c in '\r\n"<> ')
    ]


def _item(s: Suggestion, n: int, links: Sequence[tuple[str, str]] = ()) -> dict[str, Any]:
    return {
        "links": _links(links),
        "n": n,
        "kind": s.kind,
        "label": s.label,
        "name": clean_text(s.person_name, 60),
        "address": clean_text(s.person_address, 254),
        "action": clean_text(s.action, 200),
        "reasons": [clean_text(r, 160) for r in s.reasons[:3]],
        "section": s.section,
    }


def context(model: DigestModel) -> dict[str, Any]:
    zone = ZoneInfo(model.zone)
    links = list(model.links) + [()] * (len(model.suggestions) - len(model.links))
    items = [_item(s, i + 1, links[i]) for i, s in enumerate(model.suggestions)]
    accounts = [_account(a, zone, model.local_date) for a in model.accounts]
    actions = [_action(a) for a in accounts if a["needs_action"]]
    if model.delivery_problem:
        actions.append(clean_text(model.delivery_problem, 300))
    actions.extend(clean_text(x, 300) for x in model.extra_actions)
    sections_order = list(SECTIONS)
    return {
        "app": APP,
        "subject": subject_line(model),
        "owner": clean_text(model.owner_name, 60).split(" ")[0] or "there",
        "day": day_label(model.local_date),
        "date_iso": model.local_date.isoformat(),
        "generated": model.generated_at.astimezone(zone).strftime("%H:%M"),
        "zone": clean_text(model.zone, 60),
        "items": sorted(items, key=lambda i: sections_order.index(i["section"])),
        "quiet": not items,
        "tiers": [_bar(t) for t in model.tiers],
        "people_total": model.people_total,
        "people_label": f"{model.people_total:,} {'person' if model.people_total == 1 else 'people'}",
        "accounts": accounts,
        "actions": actions,
        "warnings": [clean_text(w, 200) for w in model.warnings[:3]],
        "applied": [clean_text(a, 200) for a in model.applied],
    }


def render(model: DigestModel) -> RenderedDigest:
    ctx = context(model)
    env = environment()
    html = env.get_template("digest.html.j2").render(ctx)
    text = env.get_template("digest.txt.j2").render(ctx)
    return RenderedDigest(subject=ctx["subject"], html=html, text=text)
