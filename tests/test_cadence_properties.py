"""Hypothesis properties of the cadence engine."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import timedelta

from cadence_helpers import ME, NOW, H, ago, run
from hypothesis import example, given
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


# -- fast paths agree with the general ones ---------------------------------------------------------
KEYS = ("bob@a.com", "carol@b.org", "dan@a.com")
mail = st.tuples(
    st.integers(min_value=0, max_value=40 * 86400),  # seconds before NOW
    st.booleans(),  # from me
    st.lists(st.sampled_from(KEYS), min_size=1, max_size=3, unique=True),  # people on it
    st.integers(min_value=0, max_value=2),  # how many of them in Cc (outgoing) / me in Cc
    st.integers(min_value=0, max_value=2),  # thread
)


@example([(20 * 86400, False, ["bob@a.com"], 0, 1), (10 * 86400, True, ["bob@a.com", "x"], 0, 1)])
@example([(20 * 86400, True, ["bob@a.com"], 1, 1), (3 * 86400, False, ["carol@b.org"], 0, 1)])
@given(st.lists(mail, max_size=25))
def test_ledger_single_message_fast_path_equals_the_general_fold(mails: list[tuple]) -> None:
    """ledger._fold_single (a person on one message of a thread) == ledger._fold_thread."""
    from keepwarm.digests.cadence import ledger
    from keepwarm.digests.cadence.touches import Mail

    now = int(NOW.timestamp())
    built: list[Mail] = []
    for before, out, people, n_cc, thread in sorted(mails, key=lambda x: -x[0]):
        date = now - before
        if out:
            direct, indirect = tuple(people[n_cc:]), tuple(people[:n_cc])
            if not direct and not indirect:
                continue
            m = Mail(date, True, None, direct, indirect, (), len(people), "s", None)
        else:
            sender, others = people[0], tuple(people[1:])
            mine = (sender,)
            direct, indirect = (mine, ()) if n_cc == 0 else ((), mine)
            m = Mail(date, False, sender, direct, indirect, others, len(people), "s", sender + "x")
        m.thread = thread
        built.append(m)
    clock = ledger.Clock(
        now=now,
        offset=3600,
        window_start=now - 30 * 86400,
        reply_grace=2 * 86400,
        reply_max_age=30 * 86400,
        outreach_wait=5 * 86400,
    )
    fast: dict[str, ledger.Ledger] = {}
    ledger.add_mails(fast, built, clock)

    other = Mail(0, True, None, (), (), (), 1, None, None)  # a first message not in the sequence

    def general(led: ledger.Ledger, p: str, m: Mail, c: ledger.Clock, starts: bool) -> None:
        ledger._fold_thread(led, p, [m], m if starts else other, c)

    slow: dict[str, ledger.Ledger] = {}
    original = ledger._fold_single
    ledger._fold_single = general  # type: ignore[assignment]
    try:
        ledger.add_mails(slow, built, clock)
    finally:
        ledger._fold_single = original  # type: ignore[assignment]
    assert fast == slow


store_message = st.tuples(
    st.sampled_from(PEOPLE),
    st.booleans(),  # from me
    st.floats(min_value=0.0, max_value=200.0),  # days ago
    st.sampled_from(SUBJECTS),
    st.lists(st.sampled_from(PEOPLE), max_size=2, unique=True),  # Cc
    st.sampled_from((None, "T1", "T2")),  # provider thread id
    st.integers(min_value=-1, max_value=5),  # In-Reply-To: an earlier message, or none
    st.sampled_from(((), ("list-id",), ("auto-submitted:auto-replied",))),
)


@given(st.lists(store_message, max_size=30), st.randoms(use_true_random=False))
def test_the_stores_row_stream_equals_records_in_any_order(
    msgs: list[tuple], rnd: random.Random
) -> None:
    """The engine's fast path (MessageStream rows, one pass) and the record path agree."""
    from keepwarm.connectors.base import Address, Batch, MessageMeta
    from keepwarm.daemon.store import Store
    from keepwarm.digests.queries import load_history, record_row, row_record

    metas = []
    for i, (who, mine, days, subject, cc, hint, parent, markers) in enumerate(msgs):
        sender, to = (ME, who) if mine else (who, ME)
        metas.append(
            MessageMeta(
                account="a",
                provider_id=str(i),
                date=ago(days) - timedelta(seconds=i),  # distinct, so none dedupe
                sender=Address(sender),
                to=(Address(to),),
                cc=tuple(Address(c) for c in cc if c not in (sender, to)),
                message_id=f"<{i}@x>",
                in_reply_to=f"<{parent}@x>" if 0 <= parent < i else None,
                references=(f"<{parent}@x>",) if 0 <= parent < i else (),
                subject=f"Re: {subject}" if subject else None,
                thread_hint=hint,
                markers=markers,
            )
        )
    store = Store.memory()
    store.apply_batch("a", "maildir", Batch(messages=metas))
    streamed = load_history(store.conn, until=NOW, stream=True)
    records = load_history(store.conn, until=NOW)
    by_id = {m.message_id: m for m in records.messages}
    for meta in metas:  # the rows carry what was stored
        got = by_id[meta.message_id]
        assert (got.sender, got.to, sorted(got.cc)) == (
            meta.sender.email,
            tuple(a.email for a in meta.to),
            sorted(a.email for a in meta.cc),
        )
        assert (got.markers, got.refs, got.thread_hint) == (
            frozenset(meta.markers),
            meta.references,
            meta.thread_hint,
        )
    assert [row_record(r) for r in streamed.messages.rows()] == list(records.messages)  # type: ignore[attr-defined]
    assert all(row_record(record_row(m)) == m for m in records.messages)
    base = run(streamed)
    assert run(records) == base
    shuffled = list(records.messages)
    rnd.shuffle(shuffled)
    assert run(History(tuple(shuffled), records.events, records.names)) == base
