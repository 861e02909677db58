from __future__ import annotations

from datetime import date
from zoneinfo import ZoneInfo

from digest_fixtures import PEOPLE, SIGNALS, FakeSignal, blank, facts_of, person

from keepwarm.digests.suggest import (
    RankPolicy,
    build,
    clean_text,
    first_name,
    phrase,
    rank,
    summary,
)

ZONE = ZoneInfo("Europe/Berlin")
TIERS = ("inner", "close", "active", "wider")
TODAY = date(2026, 11, 24)
PEOPLE_BY_KEY = {p.key: p for p in PEOPLE}


def _rank(signals=SIGNALS, **kw):
    policy = RankPolicy(max_items=kw.pop("max_items", 7), tiers=TIERS)
    people = kw.pop("people", PEOPLE_BY_KEY)
    cands = build(signals, people, policy, ZONE)
    return rank(cands, people, policy, today=TODAY, **kw)


def say(kind: str, who: str, other: str | None = None, **facts: object) -> str:
    """The phrase of ``kind`` with these facts (the others blank)."""
    return phrase(kind, who, facts_of(kind, **facts), ZONE, other)


def test_phrases_are_concrete_actions_with_the_facts() -> None:
    assert (
        say("reply_owed", "Maria", subject="Budget review", days_waiting=4)
        == "Reply to Maria's 'Budget review' (waiting 4 days)"
    )
    assert (
        say("fading", "Tom", topic="Q3 launch")
        == "Check in with Tom: ask what they are working on now (you last talked about 'Q3 launch')"
    )
    # no advice on a greeting, a mail form or a blank: a general question instead
    assert say("fading", "Tom", topic="Re: hi").endswith("working on now")
    assert (
        say("introduce", "Ana", other="Ben", topic="payments")
        == "Introduce Ana to Ben: you have talked about 'payments' with both"
    )
    assert say("reply_owed", "Maria", subject="Offer", days_waiting=9, waiting_messages=2) == (
        "Answer Maria on 'Offer': 2 messages waiting, the first 9 days ago"
    )
    assert "at 14:00" in say(
        "meeting_today", "Ana", title="Roadmap", start="2026-11-24T13:00:00+00:00"
    )
    assert say("occasion_job_change", "Erin", new_domain="acme.io").endswith("at acme.io")


def test_first_name_handles_addresses_and_last_first() -> None:
    assert first_name("Maria Lopez", "m@x.com") == "Maria"
    assert first_name("Lay, Kenneth", "k@x.com") == "Kenneth"
    assert first_name("", "tom.becker@x.com") == "Tom"


def test_one_suggestion_per_person_and_cap() -> None:
    chosen = _rank(max_items=4)
    assert len(chosen) == 4
    keys = [s.person_key for s in chosen]
    assert len(keys) == len(set(keys))


def test_reply_owed_ranks_first_and_outer_people_get_light_touch_only() -> None:
    chosen = _rank()
    assert chosen[0].kind == "reply_owed" and chosen[0].person_key == "maria@example.com"
    erin = [s for s in chosen if s.person_key == "erin@example.com"]
    # Erin is in the outer tier: her fading nudge is dropped, the job-change occasion stays.
    assert [s.kind for s in erin] == ["occasion_job_change"]
    # Finn is an acquaintance, but an owed reply always counts.
    assert any(s.person_key == "finn@example.com" and s.kind == "reply_owed" for s in chosen)


def test_young_ties_in_a_tier_are_nurtured_even_outside_the_core() -> None:
    signals = [
        FakeSignal("growing", "erin@example.com", 0.35),
        FakeSignal("new", "finn@example.com", 0.3),
        FakeSignal("fading", "dev@example.com", 0.5),
    ]
    chosen = _rank(signals=signals)
    # Erin (outer tier) is a young tie worth growing; Finn is an acquaintance, Dev is not core.
    assert [(s.kind, s.person_key) for s in chosen] == [("growing", "erin@example.com")]


def test_introduce_uses_both_people_once() -> None:
    chosen = _rank()
    intro = [s for s in chosen if s.kind == "introduce"]
    used = [s.person_key for s in chosen] + [s.other_key for s in chosen if s.other_key]
    assert len(used) == len(set(used))
    if intro:
        assert intro[0].other_name == "Ben Okafor"


def test_cooldown_skips_recent_people_unless_a_reply_is_owed() -> None:
    shown = {"maria@example.com": date(2026, 11, 20), "tom@example.com": date(2026, 11, 20)}
    chosen = _rank(shown=shown, cooldown_days=14)
    keys = {s.person_key: s.kind for s in chosen}
    assert keys.get("maria@example.com") == "reply_owed"
    assert "tom@example.com" not in keys
    # Shown today (a re-run) does not block; an expired cooldown does not either.
    again = _rank(shown={"tom@example.com": TODAY}, cooldown_days=14)
    assert any(s.person_key == "tom@example.com" for s in again)
    old = _rank(shown={"tom@example.com": date(2026, 10, 1)}, cooldown_days=14)
    assert any(s.person_key == "tom@example.com" for s in old)


def test_snoozed_people_are_left_out_entirely() -> None:
    chosen = _rank(snoozed={"maria@example.com", "ben@example.net"})
    keys = {s.person_key for s in chosen} | {s.other_key for s in chosen if s.other_key}
    assert "maria@example.com" not in keys and "ben@example.net" not in keys


def test_variety_limits_one_kind_when_others_wait() -> None:
    people = {f"p{i}@x.com": person(f"p{i}@x.com", f"P{i}", "inner", 5.0) for i in range(10)}
    signals = [FakeSignal("fading", k, 0.9) for k in list(people)[:8]]
    signals += [FakeSignal("growing", k, 0.2) for k in list(people)[8:]]
    chosen = _rank(signals=signals, people=people, max_items=6)
    kinds = [s.kind for s in chosen]
    assert kinds.count("growing") == 2 and len(chosen) == 6
    # With nothing else waiting, one kind may fill the day.
    only = _rank(signals=signals[:8], people=people, max_items=6)
    assert len(only) == 6


def test_variety_counts_sections_not_only_kinds() -> None:
    people = {f"p{i}@x.com": person(f"p{i}@x.com", f"P{i}", "inner", 5.0) for i in range(6)}
    keys = list(people)
    signals = [FakeSignal("meeting_today", k, 0.9) for k in keys[:3]]
    signals += [FakeSignal("meeting_followup", k, 0.9) for k in keys[3:5]]
    signals.append(FakeSignal("growing", keys[5], 0.2))
    chosen = _rank(signals=signals, people=people, max_items=3)
    # Meetings today and follow-ups are one section: they leave a slot for the growing tie.
    assert sorted(s.section for s in chosen) == ["meeting", "meeting", "nurture"]


def test_resolved_touch_disappears_with_its_signal() -> None:
    without = [s for s in SIGNALS if s.person_key != "maria@example.com"]
    assert all(s.person_key != "maria@example.com" for s in _rank(signals=tuple(without)))


def test_summary_counts_sections() -> None:
    chosen = _rank()
    words = dict(summary(chosen))
    assert words["replies owed"] == 2


def test_clean_text_strips_controls_bidi_and_length() -> None:
    assert clean_text("a\r\nBcc: x@y.z", 100) == "a Bcc: x@y.z"
    assert clean_text("evil\u202egnp.exe", 100) == "evilgnp.exe"
    long = clean_text("x" * 2000, 60)
    assert len(long) == 60 and long.endswith("…")
    assert clean_text(None, 10) == ""


def test_with_a_reply_owed_the_reply_is_the_touch_and_other_reasons_fold_in() -> None:
    people = {"j@x.com": person("j@x.com", "Jordan Reyes", "inner", 5.0)}
    signals = [
        FakeSignal("reply_owed", "j@x.com", 0.8, {"subject": "Re: invoice", "days_waiting": 9}),
        FakeSignal("fading", "j@x.com", 1.0, {"topic": "invoice"}),
        FakeSignal("meeting_today", "j@x.com", 0.9, {"title": "Coffee", "local_time": "15:00"}),
    ]
    chosen = _rank(signals=signals, people=people)
    assert [s.kind for s in chosen] == ["reply_owed"]
    assert chosen[0].action == "Reply to Jordan's 'invoice' (waiting 9 days)"
    assert chosen[0].reasons[-1] == "also: you meet today at 15:00 ('Coffee')"


def test_subject_prefixes_and_repeated_reasons_are_dropped() -> None:
    people = {"j@x.com": person("j@x.com", "Jo", "inner", 5.0)}
    sig = FakeSignal(
        "reply_owed",
        "j@x.com",
        0.8,
        {"subject": "RE: Fwd: AW: Budget", "days_waiting": 3},
        ["Jo wrote 3 days ago", 'about "Re: Budget"'],
    )
    (s,) = build([sig], people, RankPolicy(tiers=TIERS), ZONE)
    assert s.action == "Reply to Jo's 'Budget' (waiting 3 days)"
    assert s.reasons == ("Jo wrote 3 days ago",)


def test_birthday_phrasing() -> None:
    assert say("occasion_birthday", "Maya", days_until=0) == "Wish Maya a happy birthday today"
    assert say("occasion_birthday", "Maya", days_until=1).endswith("tomorrow")
    assert "in 3 days" in say("occasion_birthday", "Maya", days_until=3)


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from keepwarm.digests.cadence import SIGNAL_KINDS  # noqa: E402

KINDS = sorted(SIGNAL_KINDS)
KEYS = [p.key for p in PEOPLE]


@settings(max_examples=150, deadline=None)
@given(
    sigs=st.lists(
        st.tuples(
            st.sampled_from(KINDS), st.sampled_from(KEYS), st.floats(0, 1), st.sampled_from(KEYS)
        ),
        max_size=40,
    ),
    cap=st.integers(1, 12),
    snoozed=st.sets(st.sampled_from(KEYS), max_size=3),
)
def test_rank_properties(sigs, cap, snoozed) -> None:  # type: ignore[no-untyped-def]
    signals = [
        FakeSignal(k, p, u, {"other": o} if k == "introduce" and o != p else {})
        for k, p, u, o in sigs
    ]
    chosen = _rank(signals=signals, max_items=cap, snoozed=snoozed)
    assert len(chosen) <= cap
    involved = [s.person_key for s in chosen] + [s.other_key for s in chosen if s.other_key]
    assert len(involved) == len(set(involved))  # nobody twice
    assert not set(involved) & snoozed
    owed = {p for k, p, _u, _o in sigs if k == "reply_owed" and p not in snoozed}
    for s in chosen:
        assert s.person_key not in owed or s.kind == "reply_owed"
        assert s.action and s.kind in KINDS
    # Owed replies get at least half the day (variety may give the rest to other kinds).
    if not any(k == "introduce" for k, *_ in sigs):
        shown = sum(1 for s in chosen if s.kind == "reply_owed")
        assert shown >= min(len(owed), max(2, -(-cap // 2)), cap)


def test_meeting_prep_does_not_repeat_the_title_as_the_last_topic() -> None:
    facts = {"title": "Coffee with Jo", "local_time": "15:00", "topic": "Coffee with Jo"}
    assert say("meeting_today", "Jo", **facts) == "Prepare for 'Coffee with Jo' at 15:00 with Jo"


def test_every_engine_signal_kind_has_one_spec() -> None:
    """A kind the engine emits without a spec here would be dropped or mis-shown: never."""
    from keepwarm.digests.cadence import SIGNAL_KINDS
    from keepwarm.digests.kinds import SECTIONS, SPECS, missing_specs

    assert not missing_specs()
    assert set(SPECS) == set(SIGNAL_KINDS)
    assert sorted(k for kinds in SECTIONS.values() for k in kinds) == sorted(SPECS)


def test_subject_line_counts_match_the_items() -> None:
    """The subject counts items under their own headings, exactly."""
    from collections import Counter

    from keepwarm.digests.kinds import spec

    chosen = _rank()
    counted = dict(summary(chosen))
    headings = Counter(spec(s.kind).count_words(1).split(" ", 1)[1] for s in chosen)
    assert sum(counted.values()) == len(chosen)
    for s in chosen:
        one = spec(s.kind).count_words(1).split(" ", 1)[1]
        many = spec(s.kind).count_words(2).split(" ", 1)[1]
        assert counted.get(one, counted.get(many)) == headings[one]


def test_every_kind_and_section_says_what_was_done() -> None:
    from keepwarm.digests.kinds import SECTION_ORDER, SPECS, done_phrase

    for kind in (*SPECS, *SECTION_ORDER):
        phrase = done_phrase(kind)
        assert "{who}" in phrase and phrase != "in touch with {who}", kind
    assert done_phrase("reply_owed").format(who="Maya") == "reply to Maya"
    assert done_phrase(None) == "in touch with {who}"


def test_every_signal_kind_has_typed_facts_that_its_phrasing_reads() -> None:
    """Facts are typed per kind (digests/cadence/facts.py): every signal kind has a facts type,
    each type serves a kind and is listed, and each spec's phrase (and "also" note) takes exactly
    the types the engine gives its kind, so mypy checks every fact a phrase reads."""
    import inspect
    import typing

    from keepwarm.digests.cadence import SIGNAL_KINDS
    from keepwarm.digests.cadence.facts import FACT_TYPES, Facts, types_of
    from keepwarm.digests.kinds import SPECS

    def facts_taken(fn: object) -> set[object]:
        last = list(inspect.signature(fn).parameters)[-1]  # type: ignore[arg-type]
        hint = typing.get_type_hints(fn)[last]
        return set(typing.get_args(hint)) or {hint}

    def subclasses(cls: type[Facts]) -> set[type[Facts]]:
        return {c for sub in cls.__subclasses__() for c in (sub, *subclasses(sub))}

    carried = {c for c in subclasses(Facts) if c.kinds}  # the others are shared bases
    assert set(FACT_TYPES) == carried, "a facts type with kinds is missing in FACT_TYPES"
    for cls in FACT_TYPES:
        assert set(cls.kinds) <= set(SIGNAL_KINDS), cls.__name__
    for kind in SIGNAL_KINDS:
        made = set(types_of(kind))
        assert made, f"{kind}: no facts type in digests/cadence/facts.py"
        assert facts_taken(SPECS[kind].phrase) == made, kind
        also = SPECS[kind].also
        assert also is None or facts_taken(also) == made, kind
        for cls in made:
            assert phrase(kind, "Ana", blank(cls), ZONE, other="Ben")  # worded on blank facts


def test_every_facts_field_is_set_by_the_engine() -> None:
    """No facts field has a default: a field added to a facts type fails at the constructor (and
    in mypy) until the engine sets it, instead of printing a made-up value. And every facts type
    is built somewhere in the engine (digests/cadence/)."""
    import ast
    from dataclasses import MISSING, fields
    from pathlib import Path

    from keepwarm.digests.cadence.facts import FACT_TYPES

    for cls in FACT_TYPES:
        for f in fields(cls):
            assert f.default is MISSING and f.default_factory is MISSING, f"{cls.__name__}.{f.name}"
    engine = Path(__file__).resolve().parent.parent / "digests" / "cadence"
    called = {
        node.func.id
        for path in engine.glob("*.py")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    }
    assert not {c.__name__ for c in FACT_TYPES} - called, "a facts type the engine never builds"


def test_a_signal_refuses_the_facts_of_another_kind() -> None:
    import pytest

    from keepwarm.digests.cadence import Signal

    with pytest.raises(TypeError, match="ReplyOwedFacts are not the facts of a fading signal"):
        Signal("fading", "ana@example.org", 0.5, facts_of("reply_owed"), ["x"])
