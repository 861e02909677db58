"""Hypothesis properties of the cadence engine."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import timedelta

from cadence_helpers import ME, NOW, H, ago, run
from hypothesis import given
from hypothesis import strategies as st

from keepwarm.digests.queries import History

PEOPLE = ("bob@a.com", "carol@b.org", "dan@a.com", "eve@c.net")
SUBJECTS = ("plan", "lunch", "budget", None)
MARKERS = ((), (), (), ("auto-submitted:auto-replied",), ("list-id",))

message = st.tuples(
    st.sampled_from(PEOPLE),
    st.booleans(),  # from me
    st.floats(min_value=0.0, max_value=500.0),  # days ago
    st.sampled_from(SUBJECTS),
    st.sampled_from(MARKERS),
    st.booleans(),  # prefix Re:
)
meeting = st.tuples(
    st.lists(st.sampled_from(PEOPLE), min_size=1, max_size=3, unique=True),
    st.floats(min_value=0.0, max_value=500.0),
    st.sampled_from(("accepted", "declined", "needsAction")),
    st.booleans(),  # organised by me
)


def build(msgs: list[tuple], meetings: list[tuple], offset_days: float = 0.0) -> H:
    h = H()
    for who, mine, days, subject, markers, re in msgs:
        subj = f"Re: {subject}" if (re and subject) else subject
        when = ago(days) + timedelta(days=offset_days)
        if mine:
            h.mail(when, ME, [who], subject=subj, markers=markers)
        else:
            h.mail(when, who, [ME], subject=subj, markers=markers)
    for people, days, resp, mine in meetings:
        org = ME if mine else people[0]
        h.meeting(
            ago(days) + timedelta(days=offset_days), dict.fromkeys(people, resp), organizer=org
        )
    return h


@given(
    st.lists(message, max_size=40),
    st.lists(meeting, max_size=8),
    st.randoms(use_true_random=False),
)
def test_duplicates_and_order_change_nothing(
    msgs: list[tuple], meetings: list[tuple], rnd: random.Random
) -> None:
    h = build(msgs, meetings)
    ordered = tuple(sorted(h.messages, key=lambda m: (m.date, m.id)))  # the store's one-pass path
    base = run(History(ordered, tuple(h.events), {}))
    assert run(h) == base
    messages = list(h.messages) + [m for m in h.messages if rnd.random() < 0.5]
    events = list(h.events) + [e for e in h.events if rnd.random() < 0.5]
    rnd.shuffle(messages)
    rnd.shuffle(events)
    assert run(History(tuple(messages), tuple(events), {})) == base


@given(
    st.lists(message, min_size=1, max_size=40),
    st.lists(meeting, max_size=6),
    st.lists(st.floats(min_value=0.0, max_value=400.0), min_size=1, max_size=4),
)
def test_more_silence_never_lowers_the_overdue_ratio(
    msgs: list[tuple], meetings: list[tuple], waits: list[float]
) -> None:
    h = build(msgs, meetings)
    hist = h.history()
    previous: dict[str, float] = {}
    for extra in sorted(waits):
        report = run(hist, now=NOW + timedelta(days=extra))
        for p in report.people:
            if p.overdue_ratio is None:
                continue
            assert p.overdue_ratio >= previous.get(p.key, 0.0)
            previous[p.key] = p.overdue_ratio


@given(
    st.lists(message, max_size=30),
    st.lists(meeting, max_size=6),
    st.lists(message, min_size=1, max_size=10),
    st.lists(meeting, max_size=3),
)
def test_nothing_after_as_of_is_seen(
    msgs: list[tuple], meetings: list[tuple], later: list[tuple], later_meetings: list[tuple]
) -> None:
    h = build(msgs, meetings)
    base = run(h)
    # records after the end of today (the zone is UTC here): at least two days ahead
    future = build(
        [(w, mine, -(2 + d), s, mk, re) for w, mine, d, s, mk, re in later],
        [(p, -(2 + d), r, o) for p, d, r, o in later_meetings],
    )
    merged = History(
        h.history().messages + tuple(replace(m, id=m.id + 10_000) for m in future.messages),
        h.history().events + tuple(replace(e, id=e.id + 10_000) for e in future.events),
        {},
    )
    assert run(merged) == base
