"""The cadence engine on hand-built histories with known answers."""

from __future__ import annotations

from datetime import timedelta

import pytest
from cadence_helpers import ME, NOW, H, ago, directory, run, signals

from keepwarm.digests.cadence import TierSpec

BOB, CAROL, DAN = "bob@acme.com", "carol@beta.org", "dan@gamma.net"


def weekly(h: H, who: str, start_days_ago: int, end_days_ago: int, every: int = 7) -> None:
    for d in range(start_days_ago, end_days_ago - 1, -every):
        h.exchange(who, ago(d), subject=f"week {d}")


# -- rhythm, fading, dormant ----------------------------------------------------------------------
def test_weekly_friend_silent_five_weeks_is_fading() -> None:
    h = H()
    weekly(h, BOB, 35 + 7 * 20, 35)
    r = run(h)
    bob = r.person(BOB)
    assert bob is not None
    assert bob.typical_gap_days == 7
    assert bob.days_since_contact == 35
    assert bob.overdue_ratio == pytest.approx(5.0)
    assert bob.stage == "fading"
    [s] = signals(r, "fading", BOB)
    assert "last contact 35 days ago" in s.because
    assert "you usually talk every week" in s.because
    assert s.facts.overdue_ratio == pytest.approx(5.0)


def test_monthly_friend_silent_five_weeks_is_not_fading() -> None:
    h = H()
    weekly(h, CAROL, 35 + 30 * 10, 35, every=30)
    r = run(h)
    carol = r.person(CAROL)
    assert carol is not None
    assert carol.typical_gap_days == 30
    assert carol.overdue_ratio == pytest.approx(35 / 30, rel=1e-3)
    assert carol.stage == "established"
    assert not signals(r, "fading")


def test_far_beyond_the_rhythm_is_dormant() -> None:
    h = H()
    weekly(h, BOB, 150 + 70, 150)
    r = run(h)
    bob = r.person(BOB)
    assert bob is not None and bob.stage == "dormant"
    assert bob.overdue_ratio is not None and bob.overdue_ratio >= 8
    [s] = signals(r, "dormant", BOB)  # went quiet within half a year: worth a reconnect
    assert "11 days of contact before the silence" in s.because
    assert not signals(run(h, now=NOW + timedelta(days=365)), "dormant")


def test_a_tie_that_was_never_really_active_does_not_fade() -> None:
    h = H()
    h.exchange(BOB, ago(60))
    h.exchange(BOB, ago(53))
    r = run(h)
    assert r.person(BOB).stage != "fading"  # type: ignore[union-attr]


def test_short_history_leans_on_the_tier_cadence() -> None:
    h = H()
    h.exchange(BOB, ago(20), subject="first")
    h.exchange(BOB, ago(13), subject="second")  # one gap of 7 days
    bob = run(h).person(BOB)
    assert bob is not None
    assert bob.typical_gap_days == 7
    # one gap of five: 1/5 of the observation, 4/5 of the nearest tier cadence (2 weeks)
    assert bob.expected_gap_days == pytest.approx(0.2 * 7 + 0.8 * 14)


def test_pinned_tier_cadence_is_the_prior() -> None:
    h = H()
    h.exchange(BOB, ago(20))
    tiers = (
        TierSpec("inner", 5, timedelta(weeks=2), (BOB,)),
        TierSpec("wider", 150, timedelta(weeks=26)),
    )
    bob = run(h, tiers=tiers).person(BOB)
    assert bob is not None and bob.tier == "inner" and bob.pinned
    assert bob.expected_gap_days == 14


def test_out_of_office_pauses_the_clock() -> None:
    h = H()
    weekly(h, BOB, 35 + 7 * 20, 35)
    start = ago(30).replace(hour=0)
    h.meeting(start, {}, title="Vacation", all_day=True, hours=24 * 28)  # four weeks away, mine
    bob = run(h).person(BOB)
    assert bob is not None
    assert bob.days_since_contact == 35
    assert bob.overdue_ratio == pytest.approx((35 - 28) / 7)
    assert bob.stage == "established"
    h.events.clear()
    h.meeting(start, {}, title="Vacation", all_day=True, hours=24 * 28, event_type="default")
    h.meeting(start, {}, title="Team offsite", all_day=True, hours=24 * 28)
    assert run(h).person(BOB).overdue_ratio == pytest.approx(1.0)  # type: ignore[union-attr]


def test_out_of_office_event_type_counts_too() -> None:
    h = H()
    weekly(h, BOB, 35 + 7 * 20, 35)
    e = h.meeting(ago(34), {}, title="away", event_type="outOfOffice", hours=24 * 28)
    assert e.event_type == "outOfOffice"
    bob = run(h).person(BOB)
    assert bob is not None and bob.overdue_ratio is not None and bob.overdue_ratio < 2


def test_someone_elses_vacation_does_not_pause_my_clock() -> None:
    h = H()
    weekly(h, BOB, 35 + 7 * 20, 35)
    h.meeting(
        ago(30), {BOB: "accepted"}, organizer=BOB, title="Vacation", all_day=True, hours=24 * 21
    )
    assert run(h).person(BOB).stage == "fading"  # type: ignore[union-attr]


# -- touches --------------------------------------------------------------------------------------
def test_forty_recipient_thread_is_not_a_touch() -> None:
    h = H()
    crowd = [f"p{i}@big.org" for i in range(39)] + [BOB]
    h.mail(ago(10), ME, crowd, subject="all hands")
    h.mail(ago(9), BOB, [ME, *crowd[:-1]], subject="Re: all hands")
    r = run(h)
    assert r.person(BOB) is None
    assert not r.people


def test_one_to_one_mail_outweighs_group_mail_and_to_outweighs_cc() -> None:
    h = H()
    h.exchange(BOB, ago(10))
    h.mail(ago(10), ME, [CAROL, "x1@q.com", "x2@q.com"], subject="group")
    h.mail(ago(10) + timedelta(hours=1), CAROL, [ME, "x1@q.com", "x2@q.com"], subject="Re: group")
    h.mail(ago(10), ME, ["x3@q.com"], cc=[DAN], subject="cc")
    h.mail(ago(10) + timedelta(hours=1), DAN, [ME], cc=["x3@q.com"], subject="Re: cc")
    r = run(h)
    bob, carol, dan = (r.person(k) for k in (BOB, CAROL, DAN))
    assert bob and carol and dan
    assert bob.strength > carol.strength
    assert bob.strength > dan.strength > carol.strength


def test_small_meeting_is_a_strong_touch_and_large_or_declined_is_nothing() -> None:
    h = H()
    h.meeting(ago(5), {BOB: "accepted"})
    h.meeting(ago(5), {CAROL: "declined"})
    h.meeting(ago(5), {DAN: "accepted"}, my_response="declined")
    big = {f"p{i}@big.org": "accepted" for i in range(12)}
    h.meeting(ago(5), {**big, "eve@e.com": "accepted"})
    h.exchange("fay@f.com", ago(5))
    r = run(h)
    bob = r.person(BOB)
    assert bob is not None and bob.contact_days == 1 and bob.two_way
    assert r.person(CAROL) is None
    assert r.person(DAN) is None
    assert r.person("eve@e.com") is None
    fay = r.person("fay@f.com")
    assert fay is not None and bob.strength > fay.strength


def test_cancelled_and_future_meetings_are_not_contact() -> None:
    h = H()
    h.meeting(ago(5), {BOB: "accepted"}, status="cancelled")
    h.meeting(NOW + timedelta(days=3), {CAROL: "accepted"})
    r = run(h)
    assert r.person(BOB) is None and r.person(CAROL) is None


def test_lists_robots_and_bulk_are_not_people() -> None:
    h = H()
    h.exchange("news@list.org", ago(3))
    h.mail(ago(3), BOB, [ME], markers=["list-id"])
    h.mail(ago(3), ME, [BOB])
    r = run(h, d=directory(kinds={"news@list.org": "list"}))
    assert r.person("news@list.org") is None
    bob = r.person(BOB)
    assert bob is not None and not bob.two_way


def test_one_way_mail_is_not_a_relationship() -> None:
    h = H()
    for d in range(1, 60, 5):
        h.mail(ago(d), ME, [BOB], subject=f"pitch {d}")
    r = run(h)
    bob = r.person(BOB)
    assert bob is not None
    assert not bob.two_way and bob.tier is None and bob.contact_days == 0


def test_rhythm_counts_conversations_not_the_days_one_spans() -> None:
    h = H()
    for d in range(100, 10, -7):  # weekly conversations, each answered the next day
        h.mail(ago(d), ME, [BOB], subject=f"topic {d}")
        h.mail(ago(d - 1), BOB, [ME], subject=f"Re: topic {d}")
    bob = run(h).person(BOB)
    assert bob is not None and bob.typical_gap_days == 7 and bob.contact_days == 26


def test_contact_days_count_days_not_messages() -> None:
    h = H()
    for i in range(10):
        h.exchange(BOB, ago(3) + timedelta(minutes=i * 5), subject=f"burst {i}")
    h.exchange(CAROL, ago(3))
    r = run(h)
    assert r.person(BOB).contact_days == 1  # type: ignore[union-attr]
    assert r.person(BOB).strength == pytest.approx(r.person(CAROL).strength)  # type: ignore[union-attr]


def test_a_mail_to_too_many_counts_distinct_addresses() -> None:
    """An address in both To and Cc is one recipient: five rows, three addresses."""
    from keepwarm.digests.cadence.touches import find_touches
    from keepwarm.digests.queries import RecordMessages

    h = H(covered=False)
    h.mail(ago(5), ME, [BOB, CAROL, DAN], cc=[BOB, CAROL], subject="plan")
    now = int(NOW.timestamp())
    source = RecordMessages(h.messages)
    assert len(find_touches(source, directory(), 3, now)) == 1
    assert len(find_touches(source, directory(), 2, now)) == 0


# -- threading and open loops ---------------------------------------------------------------------
def test_auto_reply_is_not_a_reply() -> None:
    h = H()
    h.exchange(BOB, ago(300), subject="intro")  # a relationship (outside the window)
    h.mail(ago(10), ME, [BOB], subject="proposal")
    h.mail(
        ago(10) + timedelta(minutes=1),
        BOB,
        [ME],
        subject="Out of office: proposal",
        markers=["auto-submitted:auto-replied"],
    )
    h.mail(
        ago(10) + timedelta(minutes=2), BOB, [ME], subject="Re: proposal", markers=["x-autoreply"]
    )
    r = run(h)
    bob = r.person(BOB)
    assert bob is not None
    assert bob.contact_days == 2  # the introduction and my direct mail; no auto-reply counts
    assert bob.answered_by_them == 0.0
    assert bob.replies_owed_to_me == 1
    [s] = signals(r, "awaiting_reply", BOB)
    assert s.facts.days_waiting == 10


def test_threading_by_subject_without_reply_headers() -> None:
    h = H()
    h.mail(ago(20), BOB, [ME], subject="Budget")
    h.mail(ago(19), ME, [BOB], subject="RE: Budget")
    h.mail(ago(18), BOB, [ME], subject="Other thing")
    r = run(h)
    bob = r.person(BOB)
    assert bob is not None
    assert bob.contact_days == 3  # the budget thread is two-way, so his direct mail is contact too
    assert bob.initiated_by_them == 2 and bob.initiated_by_me == 0
    assert bob.answered_by_me == 0.5
    assert bob.my_reply_hours == 24.0


def test_last_subjects_are_the_latest_distinct_ones_however_busy_one_thread_is() -> None:
    h = H()
    h.exchange(BOB, ago(30), subject="lunch")
    h.exchange(BOB, ago(20), subject="offsite")
    for i in range(12):  # a busy recent thread must not push the older topics out
        h.mail(ago(5) + timedelta(minutes=i), ME, [BOB], subject="Re: budget")
        h.mail(ago(5) + timedelta(minutes=i, seconds=30), BOB, [ME], subject="Re: budget")
    bob = run(h).person(BOB)
    assert bob is not None
    assert bob.last_subjects == ("Re: budget", "Re: offsite", "offsite")


def test_same_subject_months_apart_is_another_thread() -> None:
    h = H()
    h.mail(ago(100), ME, [BOB], subject="lunch")
    h.mail(ago(29), BOB, [ME], subject="lunch")
    bob = run(h).person(BOB)
    assert bob is not None
    assert bob.answered_by_them == 0.0  # his mail is not an answer to mine
    assert bob.replies_owed_by_me == 1  # his is a new thread, not an answer to mine


def test_threading_by_references_and_thread_hint() -> None:
    h = H()
    h.mail(ago(20), ME, [BOB], subject="a", message_id="<1@x>")
    h.mail(ago(19), BOB, [ME], subject="totally different", in_reply_to="<1@x>")
    h.mail(ago(10), ME, [CAROL], subject="b", thread_hint="T1")
    h.mail(ago(9), CAROL, [ME], subject="c", thread_hint="T1")
    r = run(h)
    assert r.person(BOB).contact_days == 2  # type: ignore[union-attr]
    assert r.person(CAROL).contact_days == 2  # type: ignore[union-attr]


def test_days_out_of_office_do_not_age_a_reply_owed() -> None:
    h = H()
    h.mail(ago(40), BOB, [ME], subject="before my holiday")
    h.mail(ago(40), CAROL, [ME], subject="also before", message_id="<c1@beta.org>")
    assert not signals(run(h), "reply_owed")  # 40 days: too old to nag about
    h.meeting(ago(36).replace(hour=0), {}, title="Vacation", all_day=True, hours=24 * 21)
    r = run(h)
    assert {s.person_key for s in signals(r, "reply_owed")} == {BOB, CAROL}
    [s] = signals(r, "reply_owed", BOB)
    assert s.facts.days_waiting == 40  # what it says is still the real wait
    h.mail(ago(1), ME, [CAROL], subject="Re: also before", in_reply_to="<c1@beta.org>")
    assert {s.person_key for s in signals(run(h), "reply_owed")} == {BOB}


def test_reply_owed_after_grace_and_not_too_old() -> None:
    h = H()
    h.mail(ago(3), BOB, [ME], subject="question")  # owed
    h.mail(ago(1), CAROL, [ME], subject="fresh")  # within grace
    h.mail(ago(45), DAN, [ME], subject="ancient")  # too old
    h.mail(ago(5), "eve@e.com", ["x@y.com"], cc=[ME], subject="fyi")  # I am only in Cc
    h.mail(ago(6), "fay@f.com", [ME], subject="answered")
    h.mail(ago(5), ME, ["fay@f.com"], subject="Re: answered")
    r = run(h)
    owed = {s.person_key for s in signals(r, "reply_owed")}
    assert owed == {BOB}
    [s] = signals(r, "reply_owed", BOB)
    assert s.facts.days_waiting == 3 and s.facts.subject == "question"
    assert 'about "question"' in s.because
    assert r.person(BOB).replies_owed_by_me == 1  # type: ignore[union-attr]


def test_my_unanswered_outreach_waits_outreach_wait() -> None:
    h = H()
    for who in (BOB, CAROL, DAN):
        h.exchange(who, ago(60), subject="how are you")
    h.mail(ago(8), ME, [BOB], subject="intro")
    h.mail(ago(3), ME, [CAROL], subject="too soon")
    h.mail(ago(9), ME, [DAN], subject="Re: how are you")  # an answer, not a thread I started
    h.mail(ago(10), ME, ["stranger@else.org"], subject="offer")  # no relationship to follow up
    r = run(h)
    assert {s.person_key for s in signals(r, "awaiting_reply")} == {BOB}


def test_no_follow_up_when_they_wrote_since_in_another_thread() -> None:
    h = H()
    for who in (BOB, CAROL):
        h.exchange(who, ago(60), subject="how are you")
    h.mail(ago(8), ME, [BOB], subject="intro")
    h.mail(ago(8), ME, [CAROL], subject="plans")
    h.mail(ago(4), CAROL, [ME], subject="something else")  # in touch since: nothing to chase
    r = run(h)
    assert {s.person_key for s in signals(r, "awaiting_reply")} == {BOB}


# -- reciprocity ----------------------------------------------------------------------------------
def test_lopsided_in_both_directions() -> None:
    h = H()
    for i in range(7):
        h.exchange(BOB, ago(10 + 7 * i), subject=f"me {i}", me_first=i != 0)
        h.exchange(CAROL, ago(10 + 7 * i), subject=f"them {i}", me_first=False)
    for i in range(3):
        h.exchange(DAN, ago(10 + 7 * i), subject=f"even {i}", me_first=i % 2 == 0)
    r = run(h)
    [s] = signals(r, "lopsided_me", BOB)
    assert "6 of the last 7 threads and meetings were started by you" in s.because
    assert signals(r, "lopsided_them", CAROL)
    assert not signals(r, "lopsided_me", DAN) and not signals(r, "lopsided_them", DAN)
    bob = r.person(BOB)
    assert bob is not None and bob.initiated_by_me == 6 and bob.initiated_by_them == 1
    assert bob.balance == pytest.approx(5 / 7, abs=1e-3)
    assert r.person(CAROL).balance == -1.0  # type: ignore[union-attr]


def test_lopsided_needs_volume() -> None:
    h = H()
    for i in range(3):
        h.exchange(BOB, ago(10 + 7 * i), subject=f"me {i}")
    assert not signals(run(h), "lopsided_me")


def test_meetings_organised_count_in_the_balance() -> None:
    h = H()
    for i in range(3):
        h.meeting(ago(3 + i), {BOB: "accepted"}, organizer=BOB)
    bob = run(h).person(BOB)
    assert bob is not None and bob.meetings_by_them == 3 and bob.balance == -1.0


# -- tiers ----------------------------------------------------------------------------------------
def test_tiers_pinned_first_then_strength_then_acquaintances() -> None:
    h = H()
    people = [f"p{i}@x{i}.com" for i in range(6)]
    for i, p in enumerate(people):
        for d in range(0, 10 * (6 - i), 10):
            h.exchange(p, ago(d + 1), subject=f"s{d}")
    h.exchange("pinned@friends.org", ago(100))
    tiers = (
        TierSpec("inner", 2, timedelta(weeks=2), ("@friends.org",)),
        TierSpec("close", 2, timedelta(weeks=4)),
        TierSpec("outer", 1, timedelta(weeks=12), ("p5@*",)),
    )
    r = run(h, tiers=tiers)
    tier = {p.key: p.tier for p in r.people}
    assert tier["pinned@friends.org"] == "inner"
    assert tier[people[0]] == "inner"
    assert tier[people[1]] == "close" and tier[people[2]] == "close"
    assert tier[people[5]] == "outer"  # pinned by glob even though weakest
    assert tier[people[3]] is None and tier[people[4]] is None
    assert r.acquaintances == 2
    usage = {t.name: t.members for t in r.tiers}
    assert usage == {"inner": 2, "close": 2, "outer": 1}
    assert any(w.kind == "over_capacity" for w in r.warnings)
    assert [p.key for p in r.people][:1] == [people[0]]  # strongest first


def test_drift_warning_when_a_close_tie_moves_out() -> None:
    h = H()
    for i in range(12):
        h.exchange(BOB, ago(40 + 3 * i), subject=f"b{i}")
    for i in range(30):  # daily for a month: a history that holds a close tier
        h.exchange(CAROL, ago(1 + i), subject=f"c{i}")
        h.exchange(DAN, ago(1 + i), subject=f"d{i}")
    tiers = (
        TierSpec("inner", 1, timedelta(weeks=2)),
        TierSpec("close", 1, timedelta(weeks=4)),
        TierSpec("active", 5, timedelta(weeks=12)),
    )
    r = run(h, tiers=tiers)
    drift = [w for w in r.warnings if w.kind == "drift"]
    assert drift and drift[0].person_key == BOB
    assert "moved from inner to active" in drift[0].text


def test_one_exchange_is_not_a_close_tie() -> None:
    """However recent and strong, a single exchange cannot fill a tier of a fortnight's
    cadence: the inner tiers need contact on several days over weeks."""
    h = H()
    for _ in range(6):
        h.exchange(BOB, ago(2), subject="a long day of mail")  # one day, many messages
    for d in (3, 10, 17, 24, 31):
        h.exchange(CAROL, ago(d), subject=f"weekly {d}")
    tiers = (TierSpec("inner", 1, timedelta(weeks=2)), TierSpec("wider", 10, timedelta(weeks=26)))
    r = run(h, tiers=tiers)
    assert r.person(CAROL).tier == "inner"  # type: ignore[union-attr]
    assert r.person(BOB).tier == "wider"  # type: ignore[union-attr]


# -- stages ---------------------------------------------------------------------------------------
def test_new_and_growing_stages_with_a_cap() -> None:
    h = H()
    h.exchange(BOB, ago(20))
    h.exchange(BOB, ago(10), subject="next step")
    h.exchange(DAN, ago(10))  # one exchange is not yet a relationship to nurture
    h.exchange("ann@example.com", ago(20))  # a new colleague: work brings them anyway
    h.exchange("ann@example.com", ago(10), subject="next step")
    growers = [f"g{i}@g{i}.com" for i in range(5)]
    for n, g in enumerate(growers):
        h.exchange(g, ago(200))
        h.exchange(g, ago(150))
        for d in range(5, 80, 15 - n):
            h.exchange(g, ago(d), subject=f"x{d}")
    h.exchange("eve@e.com", ago(30))  # new, and in the middle of an exchange: nothing to nurture
    h.exchange("eve@e.com", ago(2), subject="now")
    r = run(h, max_growing=2)
    assert r.person(BOB).stage == "new"  # type: ignore[union-attr]
    assert r.person("eve@e.com").stage == "new"  # type: ignore[union-attr]
    assert {s.person_key for s in signals(r, "new")} == {BOB}
    growing = [p.key for p in r.people if p.stage == "growing"]
    assert len(growing) == 2
    assert len(signals(r, "growing")) == 2


@pytest.mark.parametrize("since", [3 * 365, 300])  # years, or all of a one-year history
def test_a_long_standing_weekly_colleague_is_established_even_when_busier_lately(
    since: int,
) -> None:
    h = H()
    weekly(h, BOB, since, 91)
    weekly(h, BOB, 90, 1, every=2)  # much more contact this quarter than the one before
    for d in range(since, 0, -7):
        h.meeting(ago(d), {BOB: "accepted"}, title="Bob / me weekly")
    r = run(h)
    assert r.person(BOB).stage == "established"  # type: ignore[union-attr]
    assert not signals(r, "growing")


def test_a_contact_first_met_three_months_ago_with_rising_contact_is_growing() -> None:
    h = H()
    h.exchange(CAROL, ago(92))
    h.exchange(CAROL, ago(80))
    for d in range(60, 0, -6):
        h.exchange(CAROL, ago(d), subject=f"x{d}")
    r = run(h)
    assert r.person(CAROL).stage == "growing"  # type: ignore[union-attr]
    assert signals(r, "growing", CAROL)


def test_a_young_tie_whose_contact_is_not_rising_is_established() -> None:
    h = H()
    for d in range(170, 0, -10):  # steady since first met, not increasing
        h.exchange(CAROL, ago(d), subject=f"x{d}")
    r = run(h)
    assert r.person(CAROL).stage == "established"  # type: ignore[union-attr]


def test_the_growing_cap_is_filled_with_young_ties_not_strong_old_ones() -> None:
    h = H()
    weekly(h, BOB, 300, 91)
    weekly(h, BOB, 90, 1, every=2)  # strongest and busier lately, but long-standing
    for d in range(100, 0, -8):
        h.exchange(CAROL, ago(d), subject=f"c{d}")
    for d in range(60, 0, -3):
        h.exchange(CAROL, ago(d), subject=f"more{d}")
    for d in range(120, 0, -10):
        h.exchange(DAN, ago(d), subject=f"d{d}")
    for d in range(50, 0, -4):
        h.exchange(DAN, ago(d), subject=f"dm{d}")
    r = run(h, max_growing=1)
    stages = {p.key: p.stage for p in r.people}
    assert stages[BOB] == "established"
    assert stages[CAROL] == "growing"  # the stronger of the two young risers
    assert stages[DAN] == "established"
    assert [s.person_key for s in signals(r, "growing")] == [CAROL]


# -- occasions, meetings, introductions -----------------------------------------------------------
def test_birthday_from_config_and_anniversary_of_first_contact() -> None:
    h = H()
    h.exchange(DAN, ago(3 * 365))  # the data begins well before Bob
    h.exchange(BOB, ago(366 * 2 - 1))  # 2022-06-03
    for d in range(5, 700, 30):
        h.exchange(BOB, ago(d), subject=f"m{d}")
    h.exchange(CAROL, ago(5))
    r = run(h, birthdays={CAROL: "06-04"})
    [b] = signals(r, "occasion_birthday", CAROL)
    assert b.facts.days_until == 1 and "birthday tomorrow (06-04)" in b.because
    [a] = signals(r, "occasion_anniversary", BOB)
    assert a.facts.years == 2
    assert "anniversary" in r.person(BOB).occasions  # type: ignore[union-attr]


def test_no_anniversary_for_a_first_contact_where_the_data_begins() -> None:
    h = H()
    h.exchange(DAN, ago(366 + 10))
    h.exchange(BOB, ago(366))  # ten days after the first record: they may have met long before
    for d in range(5, 360, 20):
        h.exchange(BOB, ago(d), subject=f"m{d}")
    r = run(h)
    assert r.person(BOB).first_contact is not None  # type: ignore[union-attr]
    assert not signals(r, "occasion_anniversary")


def test_calendar_birthday_event() -> None:
    h = H()
    h.exchange(BOB, ago(5))
    h.meeting(
        NOW.replace(hour=0),
        {BOB: "unknown"},
        organizer=BOB,
        event_type="birthday",
        all_day=True,
        title="Bob's birthday",
    )
    assert signals(run(h), "occasion_birthday", BOB)


def test_job_change_new_domain_old_one_quiet() -> None:
    h = H()
    old, new = "maria@oldcorp.com", "maria@newcorp.io"
    for d in range(100, 400, 20):
        h.exchange(old, ago(d), subject=f"o{d}", me_first=False)
    h.exchange(new, ago(10), me_first=False)
    d = directory(aliases={"maria": (old, new)}, names={"maria": "Maria"})
    r = run(h, d=d)
    [s] = signals(r, "occasion_job_change", "maria")
    assert s.facts.new_domain == "newcorp.io" and s.facts.old_domain == "oldcorp.com"


def test_seasonal_greeting_for_outer_tiers_only() -> None:
    from keepwarm.digests.cadence import GreetingSpec

    h = H()
    for d in (5, 12, 19, 26, 33):
        h.exchange(BOB, ago(d), subject=f"weekly {d}")
    h.exchange(CAROL, ago(50))
    tiers = (TierSpec("inner", 1, timedelta(weeks=2)), TierSpec("wider", 10, timedelta(weeks=26)))
    g = GreetingSpec("Midsummer", "06-05", ("wider",))
    r = run(h, tiers=tiers, greetings=(g,))
    assert {s.person_key for s in signals(r, "occasion_greeting")} == {CAROL}


def test_meeting_today_and_followup_after_yesterdays_meeting() -> None:
    h = H()
    h.exchange(BOB, ago(20), subject="Roadmap")
    h.meeting(NOW + timedelta(hours=3), {BOB: "accepted"}, title="Roadmap review")
    h.meeting(ago(1), {CAROL: "accepted"}, title="Kickoff")
    h.meeting(ago(1), {DAN: "accepted"}, title="Coffee")
    h.mail(ago(1) + timedelta(hours=2), DAN, [ME], subject="thanks")
    r = run(h)
    [t] = signals(r, "meeting_today", BOB)
    assert t.facts.days_since_contact == 20 and t.facts.topic in (
        "Roadmap",
        "Re: Roadmap",
    )
    assert "last contact 20 days ago" in t.because
    assert [m.title for m in r.meetings_today] == ["Roadmap review"]
    assert {m.title for m in r.meetings_yesterday} == {"Kickoff", "Coffee"}
    assert {s.person_key for s in signals(r, "meeting_followup")} == {CAROL}
    # a meeting later today is not yet contact
    assert r.person(BOB).days_since_contact == 20  # type: ignore[union-attr]


def test_introduce_two_strong_ties_of_one_field_never_together() -> None:
    """Different organisations, neither mine, a topic in common: an introduction. Colleagues of
    one organisation, or of mine, or ties who share only a domain, are not."""
    h = H()
    a, b, c = "ann@acme.com", "ben@brightco.co.uk", "cy@other.com"
    colleague, mine = "al@acme.com", "meg@example.com"
    topics = {a: "solar turbines", b: "solar", colleague: "turbines", mine: "wind"}
    for who, topic in topics.items():  # a shares "turbines" only with a colleague of hers
        for d in range(3, 90, 7):
            h.exchange(who, ago(d), subject=f"{topic} {d}")
    for d in range(3, 90, 7):
        h.exchange(c, ago(d), subject=f"golf {d}")  # nothing in common with the others
    r = run(h)
    found = signals(r, "introduce")
    pairs = {frozenset((s.person_key, s.facts.other)) for s in found}
    assert pairs == {frozenset((a, b))}  # never colleagues, never my own colleague
    assert all(s.facts.topic == "solar" for s in found)
    assert all(any("different organisations" in line for line in s.because) for s in found)
    h.mail(ago(2), ME, [a, b, colleague], subject="meet each other")
    assert not signals(run(h), "introduce")


# -- as-of ----------------------------------------------------------------------------------------
def test_nothing_after_now_is_seen() -> None:
    h = H()
    weekly(h, BOB, 35 + 7 * 20, 35)
    before = run(h)
    h.exchange(BOB, NOW + timedelta(days=1))
    h.meeting(NOW + timedelta(days=2), {BOB: "accepted"})
    assert run(h) == before


def test_every_signal_explains_itself() -> None:
    h = H()
    weekly(h, BOB, 35 + 7 * 20, 35)
    h.mail(ago(3), CAROL, [ME], subject="question")
    r = run(h)
    assert r.signals
    for s in r.signals:
        assert s.because and all(isinstance(b, str) and b for b in s.because)
        assert s.facts.to_json() and 0.0 <= s.urgency <= 1.0


def test_their_answer_to_my_mail_closes_the_loop_but_a_follow_up_opens_one() -> None:
    h = H()
    h.mail(ago(10), ME, [BOB], subject="offer")
    h.mail(ago(9), BOB, [ME], subject="Re: offer")
    h.mail(ago(10), ME, [CAROL], subject="offer")
    h.mail(ago(9), CAROL, [ME], subject="Re: offer")
    h.mail(ago(8), CAROL, [ME], subject="Re: offer")  # a follow-up: now she waits for me
    r = run(h)
    assert {s.person_key for s in signals(r, "reply_owed")} == {CAROL}


def test_a_recurring_series_is_not_a_fresh_initiative_each_week() -> None:
    h = H()
    for i in range(8):
        h.meeting(ago(3 + 7 * i), {BOB: "accepted"}, recurring=True, title="weekly 1:1")
    r = run(h)
    bob = r.person(BOB)
    assert bob is not None and bob.contact_days == 8 and bob.initiated_by_me == 0
    assert not signals(r, "lopsided_me")


def test_empty_subjects_thread_by_people_within_days() -> None:
    h = H()
    h.mail(ago(10), ME, [BOB], subject="RE:")
    h.mail(ago(10) + timedelta(minutes=20), BOB, [ME], subject="RE:")
    h.mail(ago(40), ME, [CAROL], subject=None)
    h.mail(ago(30), CAROL, [ME], subject=None)  # ten days later: not the same conversation
    r = run(h)
    bob, carol = r.person(BOB), r.person(CAROL)
    assert bob is not None and carol is not None
    assert bob.contact_days == 1
    assert bob.answered_by_them == 1.0
    assert carol.answered_by_them == 0.0  # ten days apart: hers is not an answer to mine
    # nothing threads a subject-less mail to its answer: keepwarm does not claim one is owed
    assert carol.replies_owed_by_me == 0


def test_contact_days_are_local_days_with_the_offset_of_their_own_date_across_dst() -> None:
    """``now`` in summer (UTC+2 in Berlin), a late exchange in winter (UTC+1): the 23:30 exchange
    stays on its own evening, a separate contact day from the next morning's."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from keepwarm.digests.cadence.ledger import Clock

    berlin = ZoneInfo("Europe/Berlin")
    evening = datetime(2024, 1, 15, 23, 10, tzinfo=berlin)
    morning = datetime(2024, 1, 16, 8, 0, tzinfo=berlin)
    h = H()
    h.mail(evening, ME, [BOB], subject="late")
    h.mail(evening + timedelta(minutes=20), BOB, [ME], subject="Re: late")
    h.mail(morning, BOB, [ME], subject="early")
    h.mail(morning + timedelta(minutes=30), ME, [BOB], subject="Re: early")
    summer = datetime(2024, 7, 1, 9, 0, tzinfo=berlin)
    bob = run(h, now=summer, timezone="Europe/Berlin").person(BOB)
    assert bob is not None and bob.contact_days == 2
    # the clock itself: the offset of each instant, across both transitions of 2024
    clock = Clock(int(summer.timestamp()), 7200, 0, 0, 0, 0, zone=berlin)
    for local in (
        datetime(2024, 3, 31, 1, 59, tzinfo=berlin),  # just before clocks go forward
        datetime(2024, 3, 31, 3, 0, tzinfo=berlin),
        datetime(2024, 10, 27, 2, 30, tzinfo=berlin),  # the first 02:30 of the long night
        datetime(2024, 10, 27, 2, 30, fold=1, tzinfo=berlin),  # and the second
        datetime(2024, 10, 27, 23, 59, tzinfo=berlin),
    ):
        ts = int(local.timestamp())
        assert clock.local(ts) == local.replace(tzinfo=None)
        assert clock.day(ts) == local.date().toordinal() - datetime(1970, 1, 1).toordinal()


def test_person_reports_are_whole_dataclass_instances() -> None:
    """The engine sets a PersonReport's fields at once (not through the frozen __init__): every
    field, in the dataclass's order, and the same object the constructor builds."""
    import dataclasses

    from keepwarm.digests.cadence import PersonReport

    h = H()
    weekly(h, BOB, 35 + 7 * 20, 35)
    weekly(h, CAROL, 35 + 30 * 10, 35, every=30)
    r = run(h)
    names = [f.name for f in dataclasses.fields(PersonReport)]
    assert not hasattr(PersonReport, "__post_init__")  # that the shortcut would skip
    assert len(r.people) == 2
    for rep in r.people:
        assert list(vars(rep)) == names
        assert PersonReport(**{n: getattr(rep, n) for n in names}) == rep
        with pytest.raises(dataclasses.FrozenInstanceError):
            rep.name = "x"  # type: ignore[misc]
