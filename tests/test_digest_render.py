from __future__ import annotations

import os
import re
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from digest_fixtures import NOW, PEOPLE, SIGNALS, TIERS, FakeSignal

from keepwarm.digests.render import (
    GMAIL_CLIP_BYTES,
    TEXT_WIDTH,
    AccountHealth,
    DigestModel,
    TierHealth,
    render,
    subject_line,
)
from keepwarm.digests.suggest import RankPolicy, build, rank

GOLDEN = Path(__file__).parent / "golden"
ZONE = ZoneInfo("Europe/Berlin")
DAY = date(2026, 11, 24)
TIER_NAMES = ("inner", "close", "active", "wider")


def _suggestions(signals=SIGNALS, people=PEOPLE):
    by_key = {p.key: p for p in people}
    policy = RankPolicy(max_items=7, tiers=TIER_NAMES)
    return rank(build(signals, by_key, policy, ZONE), by_key, policy, today=DAY)


def _model(suggestions=None, **kw) -> DigestModel:
    return DigestModel(
        local_date=DAY,
        generated_at=NOW,
        zone="Europe/Berlin",
        owner_name="Jane Doe",
        suggestions=_suggestions() if suggestions is None else suggestions,
        tiers=[TierHealth(t.name, t.size, t.members, t.warm, t.fading + t.dormant) for t in TIERS],
        accounts=kw.pop(
            "accounts",
            [
                AccountHealth(
                    "archive", "maildir", "ok", datetime(2026, 11, 24, 5, 58, tzinfo=UTC)
                ),
                AccountHealth(
                    "work-gmail",
                    "gmail",
                    "auth_required",
                    datetime(2026, 11, 20, 8, 0, tzinfo=UTC),
                    "the refresh token was revoked or expired",
                    "keepwarm auth google work-gmail",
                ),
            ],
        ),
        warnings=["Your wider tier holds 162 people; it has room for 150."],
        people_total=206,
        **kw,
    )


def _check_golden(name: str, actual: str) -> None:
    path = GOLDEN / name
    if os.environ.get("KEEPWARM_UPDATE_GOLDEN"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(actual, encoding="utf-8")
    assert path.exists(), f"missing golden file {path}; run with KEEPWARM_UPDATE_GOLDEN=1"
    assert actual == path.read_text(encoding="utf-8"), (
        f"{name} changed; if intended, regenerate with KEEPWARM_UPDATE_GOLDEN=1 and review the diff"
    )


def test_golden_sample_digest() -> None:
    out = render(_model())
    _check_golden("sample.html", out.html)
    _check_golden("sample.txt", out.text)


def test_subject_summarises_the_day() -> None:
    out = render(_model())
    assert out.subject.startswith("1 account needs you, 2 replies owed, 1 meeting today and 4 more")
    plain = render(_model(accounts=[]))
    assert plain.subject.startswith("2 replies owed, 1 meeting today and 4 more")
    assert out.subject.endswith(": keepwarm, Tue 24 Nov")
    assert subject_line(_model(suggestions=[], accounts=[])) == "Quiet day: keepwarm, Tue 24 Nov"


def test_quiet_day_says_so_in_one_line() -> None:
    out = render(_model(suggestions=[], accounts=[]))
    assert "Quiet day: nothing needs you today." in out.text
    assert out.html.count("Quiet day: nothing needs you today.") == 2  # preheader + body


def test_text_part_fits_72_columns_and_html_is_small() -> None:
    out = render(_model())
    assert max(len(line) for line in out.text.splitlines()) <= TEXT_WIDTH
    assert len(out.html.encode()) < GMAIL_CLIP_BYTES // 4
    assert "<style" not in out.html and "<img" not in out.html and "<script" not in out.html


def test_footer_shows_freshness_and_the_fix_command_in_local_time() -> None:
    out = render(_model())
    assert "keepwarm auth google work-gmail" in out.text
    assert "Action needed" in out.html and "keepwarm auth google work-gmail" in out.html
    assert "today 06:58" in out.text  # 05:58 UTC in Berlin
    assert "Made at 07:30 (Europe/Berlin)" in out.text
    assert "1 account needs you" in out.subject


def test_health_bars_are_table_cells() -> None:
    out = render(_model())
    assert re.search(r'<td width="\d+%" height="10" bgcolor="#e8590c"', out.html)
    assert "over capacity" in out.html  # 162 of 150
    assert "162/150" in out.text


def test_delivery_problem_appears_as_action() -> None:
    out = render(_model(delivery_problem="The digest of 2026-11-23 was not delivered: 535 auth."))
    assert "2026-11-23 was not delivered" in out.text


HOSTILE = [
    '<script>alert("x")</script>Mallory',
    "Eve\r\nBcc: victim@example.com",
    "\u202eredro\u202c Bob",
    "A" * 2000,
    '"><img src=x onerror=alert(1)>',
]


@pytest.mark.parametrize("evil", HOSTILE)
def test_hostile_names_and_subjects_are_escaped_stripped_truncated(evil: str) -> None:
    from digest_fixtures import FakePerson

    people = (FakePerson("x@example.com", evil, "inner", 5.0, ("x@example.com",)),)
    signals = (
        FakeSignal(
            "reply_owed", "x@example.com", 0.9, {"subject": evil, "days_waiting": 2}, [evil]
        ),
    )
    model = _model(
        suggestions=_suggestions(signals, people),
        accounts=[AccountHealth(evil[:64], "imap", "failing", None, evil, evil)],
    )
    out = render(model)
    for part in (out.html, out.text, out.subject):
        assert "\u202e" not in part and "\u202c" not in part
        assert "A" * 300 not in part
    assert "<script>" not in out.html and "<img" not in out.html
    assert "\r" not in out.subject and "\n" not in out.subject
    assert "Bcc: victim" not in out.text.split("\n")[0]
    assert not any(line.startswith("Bcc:") for line in out.text.splitlines())
    assert max(len(line) for line in out.text.splitlines()) <= TEXT_WIDTH


def test_times_follow_the_configured_zone() -> None:
    ny = DigestModel(
        local_date=DAY,
        generated_at=NOW,
        zone="America/New_York",
        owner_name="Jane",
        suggestions=[],
    )
    assert "Made at 01:30 (America/New_York)" in render(ny).text
