"""What a subject line can and cannot be used for.

keepwarm quotes subjects to make a suggestion concrete ("Ask Tom how 'the Q3 launch' went"), so a
subject must mean something and still be current: not blank, not a greeting or a mail form
("hi", "FYI", "Re:"), not a list's tag alone, and not about a day that has passed ("Lunch
today" a week later, "Call on 8/24" in September). A waiting message whose subject names a day
that is over is moot: it is not a reply owed or a follow-up to chase.
"""

from __future__ import annotations

import re
from datetime import date

from keepwarm.core.vocabulary import SUBJECT_PREFIXES

_MONTHS = {
    m: i + 1
    for i, names in enumerate(
        (
            ("jan", "january"),
            ("feb", "february"),
            ("mar", "march"),
            ("apr", "april"),
            ("may",),
            ("jun", "june"),
            ("jul", "july"),
            ("aug", "august"),
            ("sep", "sept", "september"),
            ("oct", "october"),
            ("nov", "november"),
            ("dec", "december"),
        )
    )
    for m in names
}
_NUMERIC = re.compile(r"(?<![\d/.-])(\d{1,2})/(\d{1,2})(?:/(\d{2}|\d{4}))?(?![\d/])")
_NAMED = re.compile(
    r"\b(" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\.?\s+(\d{1,2})(?:st|nd|rd|th)?"
    r"(?:,?\s+(\d{4}))?\b",
    re.IGNORECASE,
)
_MEANINGLESS = re.compile(
    r"^(?:|hi|hello|hey|hola|fyi|fw|fwd|re|question|quick question|thanks|thank you|update|"
    r"meeting|call|lunch|test|info|misc|follow ?up|no subject|\(no subject\)|untitled|"
    r"message|note|reminder|status|checking in|catch up|news|good morning|greetings)[\s!.?:]*$",
    re.IGNORECASE,
)


def bare(subject: str) -> str:
    """The subject without Re:/Fwd: prefixes and a list's [tag]."""
    return " ".join(SUBJECT_PREFIXES.sub("", subject).split())


def meaningful(subject: str | None) -> bool:
    """Is the subject worth quoting: not blank, not a greeting, a mail form or a tag alone?"""
    if not subject:
        return False
    text = bare(subject)
    return bool(text) and not _MEANINGLESS.match(text) and any(c.isalpha() for c in text)


def named_day(subject: str, sent: date) -> date | None:
    """The calendar day a subject names ("Call on 8/24", "Aug 24th", "6/11/01"), read relative to
    the day the message was sent (a day without a year is the nearest such day on or after it,
    within a year); None when it names none."""
    for m in _NUMERIC.finditer(subject):
        month, day, year = int(m.group(1)), int(m.group(2)), m.group(3)
        got = _day(month, day, year, sent)
        if got is not None:
            return got
    for m in _NAMED.finditer(subject):
        month = _MONTHS[m.group(1).lower()]
        got = _day(month, int(m.group(2)), m.group(3), sent)
        if got is not None:
            return got
    return None


def _day(month: int, day: int, year: str | None, sent: date) -> date | None:
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return None
    if year is not None:
        y = int(year)
        y = y + 2000 if y < 70 else y + 1900 if y < 100 else y
        candidates = [y]
    else:
        candidates = [sent.year, sent.year + 1]
    for y in candidates:
        try:
            d = date(y, month, day)
        except ValueError:
            continue
        if year is not None or (d - sent).days >= -7:  # no year: not long before it was sent
            return d
    return None


def over(subject: str | None, sent: date, today: date) -> bool:
    """Is the subject about a day that is over ("Lunch today" sent yesterday, "Call 8/24"
    after the 24th)? A waiting message about a past day is moot."""
    if not subject:
        return False
    day = named_day(subject, sent)
    return day is not None and day < today
