"""The mbox ``From `` envelope line: recognising it and reading its date."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from keepwarm.connectors.headers import parse_date

# "From sender Tue Mar  3 14:47:19 2020", "From 1234@xxx Tue Mar 03 14:47:19 +0000 2020",
# "From - Sat Jan  1 00:00:00 2000" (Thunderbird), "From MAILER-DAEMON Fri Jul  8 12:08:34 2011".
ENVELOPE = re.compile(
    rb"From \S*\s+(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)[a-z]*,?\s+"
    rb"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]*\s+\d{1,2}\s+\d{1,2}:\d\d"
)
_ASCTIME = re.compile(
    r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun)[a-z]*,?\s+([A-Za-z]{3})[a-z]*\s+(\d{1,2})\s+"
    r"(\d{1,2}:\d\d(?::\d\d)?)\s*([+-]\d{4})?\s*(?:[A-Z]{2,5}\s+)?(\d{4})"
)
_HEADER_LINE = re.compile(rb"[!-9;-~]{1,76}:")


def is_envelope(line: bytes) -> bool:
    """True for a line that is a well-formed ``From `` envelope line (sender and asctime date)."""
    return ENVELOPE.match(line) is not None


def looks_like_header(line: bytes) -> bool:
    """True for a ``Name: value`` header line."""
    return _HEADER_LINE.match(line) is not None


def envelope_date(line: bytes) -> datetime | None:
    """The date of an envelope line (UTC unless it carries an offset), or None."""
    text = line[:300].decode("latin-1")
    m = _ASCTIME.search(text)
    if m is None:
        return None
    day, mon, mday, clock, offset, year = m.groups()
    if clock.count(":") == 1:
        clock += ":00"
    dt = parse_date(f"{day}, {mday} {mon} {year} {clock} {offset or '+0000'}")
    return dt.astimezone(UTC) if dt else None
