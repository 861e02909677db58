"""Hypothesis properties of the cadence engine."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import timedelta

from cadence_helpers import ME, NOW, H, ago, run
from hypothesis import example, given
from hypothesis import strategies as st
from leakcheck import close_after_test

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
    h = H(covered=False)
    h.background(ago(600), NOW + timedelta(days=400))  # a complete mailbox: my mail is visible
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
    st.integers(min_value=0, max_value=2**32),
)
def test_duplicates_and_order_change_nothing(
    msgs: list[tuple], meetings: list[tuple], seed: int
) -> None:
    rnd = random.Random(seed)  # many draws (the background mail): not from hypothesis' buffer
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


# -- the columnar message path agrees with the plain reference -------------------------------------
ROBOT, LIST, ME2 = "noreply@a.com", "news@list.org", "me@home.example"
POOL = ("bob@a.com", "carol@b.org", "dan@a.com", "dan@d.net", "eve@c.net", ROBOT, LIST, ME, ME2)
ref_message = st.fixed_dictionaries(
    {
        "sender": st.sampled_from(POOL),
        "to": st.one_of(st.just([ME]), st.lists(st.sampled_from(POOL), max_size=4)),
        "cc": st.lists(st.sampled_from(POOL), max_size=3),
        "bcc": st.lists(st.sampled_from(POOL), max_size=2),
        "seconds": st.one_of(  # before NOW: mostly within the open-loop and reply windows
            st.integers(min_value=-3 * 86400, max_value=45 * 86400),
            st.integers(min_value=0, max_value=400 * 86400),
        ),
        "subject": st.sampled_from(
            (
                None,
                "",
                "plan",
                "Re: plan",
                "lunch",
                "RE:",
                "budget",
                "FW: deck",
                "Thanks!",
                "Lunch today",
                "Call on 1/3",
                "Can you review?",
            )
        ),
        "hint": st.sampled_from((None, None, "", "T1", "T2")),
        "parent": st.one_of(  # -3: no In-Reply-To; -2, -1: a message that is not there
            st.just(-3), st.integers(min_value=-3, max_value=30)
        ),
        "refs": st.one_of(
            st.just([]), st.lists(st.integers(min_value=-2, max_value=30), max_size=3)
        ),
        "markers": st.sampled_from(
            ((), (), (), ("list-id",), ("x-autoreply",), ("category:promo",), ("sent-folder",))
        ),
        "list_id": st.sampled_from((None, None, None, None, "<l.list.org>")),
        "repeat": st.booleans(),  # the store may hand a record twice
    }
)


conversation = st.fixed_dictionaries(
    {
        "who": st.sampled_from(("bob@a.com", "carol@b.org", "dan@a.com", "dan@d.net")),
        "also": st.lists(st.sampled_from(POOL), max_size=2),  # Cc'd on some messages
        "subject": st.sampled_from(("plan", "lunch", "budget", "", None)),
        "start": st.one_of(
            st.integers(min_value=0, max_value=60 * 86400),
            st.integers(min_value=0, max_value=400 * 86400),
        ),
        "steps": st.lists(  # (from me, gap before it, Cc the others)
            st.tuples(st.booleans(), st.integers(min_value=0, max_value=20 * 86400), st.booleans()),
            min_size=1,
            max_size=6,
        ),
        "headers": st.sampled_from(("none", "irt", "refs", "hint")),
    }
)


def _conversations(convs: list[dict], first_id: int) -> list[dict]:
    """Conversations as raw messages for :func:`_records`: replies in one thread, each a gap
    after the one before, with reply headers, a provider thread id or nothing (Enron)."""
    out: list[dict] = []
    for n, c in enumerate(convs):
        seconds = c["start"]
        first = first_id + len(out)
        for j, (mine, gap, cc) in enumerate(c["steps"]):
            seconds -= gap
            subject = c["subject"]
            if j and subject is not None:
                subject = f"Re: {subject}"
            sender, to = (ME, [c["who"]]) if mine else (c["who"], [ME])
            out.append(
                {
                    "sender": sender,
                    "to": to,
                    "cc": c["also"] if cc else [],
                    "bcc": [],
                    "seconds": seconds,
                    "subject": subject,
                    "hint": f"C{n}" if c["headers"] == "hint" else None,
                    "parent": first_id + len(out) - 1 if j and c["headers"] != "none" else -3,
                    "refs": [first] if j and c["headers"] == "refs" else [],
                    "markers": (),
                    "list_id": None,
                    "repeat": False,
                }
            )
    return out


def _ref_id(i: int) -> str:
    return f"<{i}@x>" if i >= 0 else f"<gone{-i}@x>"


def _records(msgs: list[dict]) -> list:
    from keepwarm.connectors.headers import normalize_subject, subject_markers
    from keepwarm.digests.queries import MessageRecord

    out = []
    for i, m in enumerate(msgs):
        subject = m["subject"]
        norm = normalize_subject(subject) if subject is not None else None
        rec = MessageRecord(
            id=100 + i,
            date=int(NOW.timestamp()) - m["seconds"] - (i % 3),  # some share a second
            sender=m["sender"],
            to=tuple(m["to"]),
            cc=tuple(m["cc"]),
            bcc=tuple(m["bcc"]),
            message_id=_ref_id(i),
            in_reply_to=_ref_id(m["parent"]) if m["parent"] != -3 else None,
            refs=tuple(_ref_id(r) for r in m["refs"]),
            subject=subject,
            norm_subject=norm,
            thread_hint=m["hint"],
            list_id=m["list_id"],
            markers=frozenset((*m["markers"], *subject_markers(subject))),  # as connectors add
        )
        out.append(rec)
        if m["repeat"]:
            out.append(rec)
    return out


def _view(led: object) -> dict[str, object]:
    from keepwarm.digests.cadence.ledger import latest_subjects

    fields = [
        "days",
        "one_way_days",
        "first_contact",
        "last_contact",
        "first_seen",
        "last_seen",
        "msgs_in",
        "msgs_out",
        "w_in",
        "w_out",
        "w_in_answered",
        "w_out_answered",
        "threads_by_me",
        "threads_by_them",
        "domains_in",
        "last_mail",
    ]
    fields += ["asked_me", "i_answered", "i_asked", "they_answered"]
    out = {f: getattr(led, f) for f in fields}
    out["latencies"] = (sorted(led.my_latencies), sorted(led.their_latencies))  # type: ignore[attr-defined]
    for f in ("owed_by_me", "owed_to_me"):
        out[f] = sorted(
            (o.date, o.subject, o.thread, o.message, o.waiting, o.shared, o.asks)
            for o in getattr(led, f)
        )
    out["subjects"] = latest_subjects(led.subjects)  # type: ignore[attr-defined]
    return out


@example(
    [
        {
            "sender": ME,
            "to": ["bob@a.com"],
            "cc": [],
            "bcc": [],
            "seconds": 5 * 86400,
            "subject": "plan",
            "hint": None,
            "parent": -3,
            "refs": [],
            "markers": (),
            "list_id": None,
            "repeat": False,
        },
        {
            "sender": "bob@a.com",
            "to": [ME],
            "cc": ["carol@b.org"],
            "bcc": [],
            "seconds": 4 * 86400,
            "subject": "Re: plan",
            "hint": None,
            "parent": 0,
            "refs": [0],
            "markers": (),
            "list_id": None,
            "repeat": False,
        },
    ],
    3,
    [],
    [],
)
@given(
    st.lists(ref_message, max_size=20),
    st.integers(min_value=1, max_value=12),
    st.lists(conversation, max_size=8),
    st.lists(st.integers(min_value=0, max_value=60), max_size=25, unique=True),
)
def test_columnar_message_path_equals_the_reference(
    msgs: list[dict], max_recipients: int, convs: list[dict], away_ago: list[int]
) -> None:
    """find_touches + fold_touches give every ledger the plain message-by-message fold gives,
    on messages with every shape: aliases, me under two addresses, robots, lists, markers,
    Cc/Bcc, broadcasts, repeats, replies to missing messages, thread ids and subjects."""
    from zoneinfo import ZoneInfo

    import engine_reference as ref
    from cadence_helpers import directory

    from keepwarm.digests.cadence.engine import _clock
    from keepwarm.digests.cadence.ledger import Ledger, fold_touches
    from keepwarm.digests.cadence.model import EngineSettings
    from keepwarm.digests.cadence.touches import find_touches
    from keepwarm.digests.queries import RecordMessages

    base = directory(
        kinds={ROBOT: "robot", LIST: "list"}, aliases={"dan": ("dan@a.com", "dan@d.net")}
    )
    d = replace(base, self_addresses=frozenset({ME, ME2}))
    settings = EngineSettings(timezone="Europe/Berlin")
    clock = _clock(settings, NOW, ZoneInfo(settings.timezone))
    records = _records(msgs + _conversations(convs, len(msgs)))

    today = clock.day(clock.now)
    away = tuple(sorted(today - n for n in away_ago))  # days out of office, up to today

    touches = find_touches(RecordMessages(records), d, max_recipients, clock.now)
    got = fold_touches(touches, clock, away)
    mails, coverage = ref.fold_messages(records, ref.People(d), max_recipients, clock.now)
    want: dict[str, Ledger] = {}
    ref.add_mails(want, mails, clock, coverage, away)

    assert sorted(got) == sorted(want)
    for key in want:
        assert _view(got[key]) == _view(want[key]), key
    assert [m.thread for m in mails] == touches.thread.tolist()
    everyone = set(want) | {"eve@c.net", "carol@b.org"}
    assert touches.together(everyone) == ref.together(mails, everyone)


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
@example(  # two messages a second apart once stored: they were joined as one before
    [
        ("bob@a.com", False, 1.192092896e-07, "plan", [], None, 0, ()),
        ("bob@a.com", False, 0.0, "plan", [], None, 0, ("list-id",)),
    ],
    random.Random(0),
)
def test_the_stores_row_stream_equals_records_in_any_order(
    msgs: list[tuple], rnd: random.Random
) -> None:
    """The store's bulk reads (MessageStream chunks) and the record path agree."""
    from keepwarm.connectors.base import Address, Batch, MessageMeta
    from keepwarm.daemon.store import Store
    from keepwarm.daemon.store.history import load_history
    from keepwarm.digests.queries import RecordMessages

    metas = []
    for i, (who, mine, days, subject, cc, hint, parent, markers) in enumerate(msgs):
        sender, to = (ME, who) if mine else (who, ME)
        metas.append(
            MessageMeta(
                account="a",
                provider_id=str(i),
                # Whole minutes minus i (< 30) seconds: distinct dates, never a whole number of
                # half hours apart, so the store keeps every message (no copy is joined).
                date=ago(days).replace(second=0, microsecond=0) - timedelta(seconds=i),
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
    store = close_after_test(Store.memory())
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
    stream, memory = streamed.messages, RecordMessages(records.messages)
    assert list(stream) == list(records.messages)

    def rows(source: object) -> list[tuple]:
        emails = source.emails  # type: ignore[attr-defined]
        out = []
        for chunk in source.chunks():  # type: ignore[attr-defined]
            markers = dict(zip(list(chunk.marked), chunk.markers, strict=True))
            for row in zip(*(list(c) for c in chunk.columns), strict=True):
                mid, date, sender, *rest = (int(x) for x in row)
                who = emails[sender] if sender >= 0 else None
                out.append((mid, date, who, *rest, markers.get(mid)))
        return sorted(out)

    def recipients(source: object) -> list[tuple]:
        emails, n = source.emails, len(source.emails)  # type: ignore[attr-defined]
        out = []
        for chunk in source.recipients():  # type: ignore[attr-defined]
            for packed in chunk:
                head, address = divmod(int(packed), n)
                out.append((*divmod(head, 4), emails[address]))
        return sorted(out)

    assert rows(stream) == rows(memory)
    assert recipients(stream) == recipients(memory)
    ids = [m.id for m in records.messages]
    assert stream.subjects(ids) == memory.subjects(ids)  # type: ignore[attr-defined]
    base = run(streamed)
    assert run(records) == base
    shuffled = list(records.messages)
    rnd.shuffle(shuffled)
    assert run(History(tuple(shuffled), records.events, records.names)) == base


@given(
    days=st.lists(st.integers(min_value=19_000, max_value=19_400), max_size=60),
    start=st.integers(min_value=19_000 * 86400 - 20 * 86400, max_value=19_400 * 86400),
    length=st.integers(min_value=-86400, max_value=200 * 86400),
)
@example(days=[19_003, 19_010], start=19_003 * 86400 + 3600, length=14 * 86400)
def test_the_share_of_covered_weeks_is_the_share_of_weeks_with_a_day(
    days: list[int], start: int, length: int
) -> None:
    """The constant-time week count agrees with counting the distinct weeks directly."""
    import numpy as np

    from keepwarm.digests.cadence.coverage import DAY, WEEK, Coverage

    end = start + length
    cov = Coverage.of(np.array(days, dtype=np.int64) * DAY, np.zeros(0, dtype=np.int64))
    first, last = start // DAY, (end - 1) // DAY
    weeks = {(d - first) // 7 for d in set(days) if first <= d <= last}
    want = 1.0 if end <= start else min(1.0, len(weeks) / max(1, -(-(end - start) // WEEK)))
    assert cov._sent_weeks.share(start, end) == want


@given(
    days=st.lists(st.integers(min_value=19_000, max_value=19_400), max_size=60),
    when=st.lists(
        st.integers(min_value=18_900 * 86400, max_value=19_500 * 86400), min_size=1, max_size=40
    ),
    span=st.integers(min_value=-3 * 86400, max_value=40 * 86400),
    far=st.booleans(),
)
@example(days=[19_010], when=[19_003 * 86400, 19_017 * 86400 + 1], span=7 * 86400, far=False)
@example(days=[19_010], when=[19_003 * 86400 - 1, 19_018 * 86400], span=7 * 86400, far=True)
@example(days=[], when=[19_017 * 86400], span=7 * 86400, far=False)
def test_mail_near_a_time_is_a_day_with_mail_within_the_span(
    days: list[int], when: list[int], span: int, far: bool
) -> None:
    """The day-count lookup agrees with looking for a day in each span directly, also when a
    stray date centuries away makes the range too long to count densely."""
    import numpy as np

    from keepwarm.digests.cadence.coverage import DAY, Coverage

    if far:
        days = [*days, 19_000 + (1 << 21)]
    stamps = np.array(days, dtype=np.int64) * DAY
    cov = Coverage.of(stamps, stamps)
    at = np.array(when, dtype=np.int64)
    want = [any((w - span) // DAY <= d <= (w + span) // DAY for d in days) for w in when]
    assert cov.sent_near(at, span).tolist() == want
    assert cov.received_near(at, span).tolist() == want


class _SubjectSource:
    """What the recent-subjects walk reads of the touches: the persons and subjects on demand."""

    def __init__(self, n_persons: int, subjects: list[str | None]) -> None:
        self.persons = [f"p{i}" for i in range(n_persons)]
        self._subjects = subjects

    def subjects(self, touches: list[int]) -> list[str | None]:
        return [self._subjects[t] for t in touches]


_WALK_SUBJECTS = [None, "", *"abcdefghijklmnopqrst"]


@given(
    rows=st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=2),  # person
            st.integers(min_value=0, max_value=60),  # date
            st.sampled_from(_WALK_SUBJECTS),
            st.booleans(),  # in the mask
        ),
        max_size=250,
    )
)
# 7 distinct subjects in the first 8 rows: the 8th comes in the second round
@example(rows=[(0, 50 - i, s, True) for i, s in enumerate("aabcdefghijklmnop")])
# a row as old as the 8th distinct subject, read after it, with a subject that sorts first
@example(rows=[(1, 10 - i, s, True) for i, s in enumerate("bcdefghi")] + [(1, 3, "a", True)])
def test_the_recent_subjects_walk_finds_the_latest_subjects_of_all_rows(
    rows: list[tuple[int, int, str | None, bool]],
) -> None:
    """Reading each person's rows newest first and only as far as needed gives what
    latest_subjects gives on all of them."""
    import numpy as np

    from keepwarm.digests.cadence.ledger import _recent_subjects, latest_subjects

    person = np.array([r[0] for r in rows], dtype=np.int64)
    date = np.array([r[1] for r in rows], dtype=np.int64)
    mask = np.array([r[3] for r in rows], dtype=np.bool_)
    source = _SubjectSource(3, [r[2] for r in rows])
    got = _recent_subjects(person, date, np.arange(len(rows)), mask, source)  # type: ignore[arg-type]
    want = {}
    for p in range(3):
        seen = [(d, s) for q, d, s, m in rows if q == p and m and s]
        if seen:
            want[p] = latest_subjects(seen)
    assert got == want


@given(
    columns=st.lists(
        st.tuples(st.integers(min_value=1, max_value=6), st.randoms(use_true_random=False)),
        min_size=1,
        max_size=3,
    ),
    n=st.integers(min_value=0, max_value=40),
    extra=st.sampled_from(["none", "tight", "huge"]),
    seed=st.integers(min_value=0, max_value=1 << 32),
)
def test_one_integer_key_sorts_rows_as_lexsort_does(
    columns: list[tuple[int, random.Random]], n: int, extra: str, seed: int
) -> None:
    """sort_order is lexsort (ties in the rows' order), also when its key would not fit with the
    row numbers ("tight": lexsort, or not stable an argsort of the key) or at all ("huge":
    lexsort); not stable, it still sorts by the columns."""
    import math

    import numpy as np

    from keepwarm.digests.cadence.touches import sort_order

    cols = [
        (np.array([rnd.randrange(bound) for _ in range(n)], dtype=np.int64), bound)
        for bound, rnd in columns
    ]
    if extra != "none":
        # tight: the key fits in 63 bits, but not with a row number beside it
        bound = ((1 << 63) - 1) // math.prod(b for _, b in cols) if extra == "tight" else 1 << 62
        rnd = random.Random(seed)
        cols.append((np.array([rnd.randrange(bound) for _ in range(n)], dtype=np.int64), bound))
    want = np.lexsort(tuple(c for c, _ in reversed(cols)))
    assert sort_order(cols).tolist() == want.tolist()
    loose = sort_order(cols, stable=False)
    assert [tuple(int(c[i]) for c, _ in cols) for i in loose] == [
        tuple(int(c[i]) for c, _ in cols) for i in want
    ]


@given(
    days=st.dictionaries(
        st.integers(min_value=0, max_value=400), st.floats(min_value=0.01, max_value=3.0)
    ),
    one_way=st.dictionaries(
        st.integers(min_value=0, max_value=400), st.floats(min_value=0.01, max_value=3.0)
    ),
    counts=st.tuples(*[st.integers(min_value=0, max_value=9)] * 3),
    today=st.integers(min_value=0, max_value=420),
    half=st.floats(min_value=1.0, max_value=400.0),
)
def test_both_strengths_are_the_decayed_contact_added_day_by_day(
    days: dict[int, float],
    one_way: dict[int, float],
    counts: tuple[int, int, int],
    today: int,
    half: float,
) -> None:
    """strengths (today and 30 days before, with each age's factor worked out once) equals the
    strength formula computed directly, to the last bit."""
    import math

    from engine_reference import strengths

    from keepwarm.digests.cadence.ledger import Ledger
    from keepwarm.digests.cadence.rhythm import LENGTH_FULL_DAYS, Decay

    def decayed(days: dict[int, float], today: int) -> float:
        total = 0.0
        for d in sorted(days):
            if d <= today:
                total += days[d] * math.pow(0.5, (today - d) / half)
        return total

    def strength(led: Ledger, today: int) -> float:
        base = decayed(led.days, today)
        base += 0.25 * decayed({d: w for d, w in one_way.items() if d not in led.days}, today)
        if base <= 0.0:
            return 0.0
        ins, outs = led.msgs_in + led.meetings, led.msgs_out + led.meetings
        recip = min(ins, outs) / max(ins, outs) if max(ins, outs) else 0.0
        past = [d for d in led.days if d <= today]
        span = (max(past) - min(past)) if past else 0
        length = min(1.0, span / LENGTH_FULL_DAYS)
        return round(base * (1 + 0.5 * recip) * (1 + 0.5 * length), 6)

    led = Ledger("p", days=days, one_way_days=one_way)
    led.msgs_in, led.msgs_out, led.meetings = counts
    decay = Decay(half)
    assert strengths(led, today, today - 30, decay) == (
        strength(led, today),
        strength(led, today - 30),
    )


_DAYS = st.dictionaries(
    st.integers(min_value=0, max_value=400), st.floats(min_value=0.01, max_value=3.0), max_size=30
)


@given(
    people=st.lists(
        st.tuples(
            _DAYS,
            _DAYS,
            st.tuples(*[st.integers(min_value=0, max_value=9)] * 3),
            st.booleans(),
            st.sampled_from([None, 7.0, 90.0]),
        ),
        max_size=12,
    ),
    today=st.integers(min_value=0, max_value=420),
    half=st.floats(min_value=1.0, max_value=400.0),
    away=st.lists(st.integers(min_value=0, max_value=420), unique=True),
)
def test_everyones_rhythm_and_strengths_at_once_are_each_ones_to_the_last_bit(
    people: list[
        tuple[dict[int, float], dict[int, float], tuple[int, int, int], bool, float | None]
    ],
    today: int,
    half: float,
    away: list[int],
) -> None:
    """all_rhythms and all_strengths (numpy, every person at once) give exactly what rhythm and
    strengths give one person at a time: days in any order, one-way days that are two-way too,
    days after today, nobody, ledgers without days."""
    from engine_reference import rhythm, strengths

    from keepwarm.digests.cadence.ledger import Ledger
    from keepwarm.digests.cadence.rhythm import Days, Decay, all_rhythms, all_strengths

    ledgers = []
    for days, one_way, (msgs_in, msgs_out, meetings), shuffled, _pin in people:
        items = list(days.items())
        if shuffled:  # meetings add days after the mail's: not in day order
            random.Random(len(items)).shuffle(items)
        led = Ledger("p", days=dict(items), one_way_days=one_way)
        led.msgs_in, led.msgs_out, led.meetings = msgs_in, msgs_out, meetings
        ledgers.append(led)
    pins = [pin for *_rest, pin in people]
    ooo = tuple(sorted(away))
    cadences = (7.0, 30.0, 90.0)
    every = Days([led.days for led in ledgers])
    assert all_rhythms(every, today, ooo, cadences, pins) == [
        rhythm(led.days, today, ooo, cadences, pin) for led, pin in zip(ledgers, pins, strict=True)
    ]
    assert all_strengths(ledgers, today, today - 30, Decay(half), every) == [
        strengths(led, today, today - 30, Decay(half)) for led in ledgers
    ]
    assert all_strengths(ledgers, today, today - 30, Decay(half)) == [
        strengths(led, today, today - 30, Decay(half)) for led in ledgers
    ]


@given(
    runs=st.lists(
        st.lists(st.floats(min_value=0.0, max_value=1e6, allow_subnormal=False), max_size=40),
        max_size=8,
    )
)
def test_runs_are_added_term_after_term(runs: list[list[float]]) -> None:
    """_sum_in_order adds each run as a Python loop does (numpy's own sums pair terms up)."""
    import numpy as np

    from keepwarm.digests.cadence.rhythm import _sum_in_order

    def added(run: list[float]) -> float:
        total = 0.0
        for x in run:
            total += x
        return total

    terms = np.array([x for run in runs for x in run], dtype=np.float64)
    length = np.array([len(run) for run in runs], dtype=np.int64)
    start = np.cumsum(length) - length
    assert _sum_in_order(terms, start, length).tolist() == [added(run) for run in runs]


@given(
    values=st.lists(st.integers(min_value=-(1 << 40), max_value=1 << 40), max_size=30),
    near=st.booleans(),
)
def test_distinct_values_and_their_positions_are_what_unique_gives(
    values: list[int], near: bool
) -> None:
    """distinct (an array over a short range, else a sort) agrees with np.unique."""
    import numpy as np

    from keepwarm.digests.cadence.coverage import distinct

    array = np.array([v % 5000 if near else v for v in values], dtype=np.int64)
    found, position = distinct(array)
    want, inverse = np.unique(array, return_inverse=True)
    assert found.tolist() == want.tolist()
    assert position.tolist() == inverse.tolist()


@given(
    st.lists(
        st.tuples(
            st.one_of(st.integers(0, 50), st.integers(-(2**61), 2**61)), st.integers(0, 10**9)
        ),
        unique_by=lambda r: r[1],
        max_size=60,
    ),
    st.booleans(),
)
@example([(0, 5), (-(2**61), 3), (2**61, 9), (0, 1)], False)  # too wide a span: lexsort itself
def test_date_order_is_lexsort_by_date_then_id(rows: list[tuple[int, int]], by_id: bool) -> None:
    import numpy as np

    from keepwarm.digests.cadence.touches import date_order

    if by_id:  # as the store reads them
        rows.sort(key=lambda r: r[1])
    date = np.array([d for d, _ in rows], dtype=np.int64)
    ids = np.array([i for _, i in rows], dtype=np.int64)
    assert date_order(date, ids).tolist() == np.lexsort((ids, date)).tolist()


_TOPIC_VOCABULARY = ["budget", "kafka", "merger", "pipeline", "offsite", "hiring", "x"]


@given(
    subjects=st.lists(
        st.lists(
            st.lists(st.sampled_from(_TOPIC_VOCABULARY), min_size=1, max_size=3).map(" ".join),
            max_size=6,
        ),
        max_size=12,
    ),
    candidates=st.sets(st.sampled_from(_TOPIC_VOCABULARY)),
    known=st.sets(st.integers(min_value=0, max_value=11)),
)
def test_a_topics_spread_is_counted_as_far_as_it_matters(
    subjects: list[list[str]], candidates: set[str], known: set[int]
) -> None:
    """_spread (counting each candidate word only up to one past TOPIC_MAX_PEOPLE, and stopping
    once every candidate got there) decides like counting the recurring topics of everyone."""
    from collections import Counter

    from keepwarm.digests.cadence.ledger import Ledger
    from keepwarm.digests.cadence.rhythm import Rhythm
    from keepwarm.digests.cadence.signals import TOPIC_MAX_PEOPLE, _recurring_topics, _spread
    from keepwarm.digests.cadence.state import Person

    people = {
        f"p{i}": Person(
            Ledger(f"p{i}", subjects=[(n, s) for n, s in enumerate(subs)]),
            0.0,
            0.0,
            None,
            Rhythm((), None, 7.0, None, 0, None, None),
        )
        for i, subs in enumerate(subjects)
    }
    words: dict[str, tuple[str, frozenset[str]]] = {}
    topics = {k: _recurring_topics(p, words) for k, p in people.items()}
    everyone = Counter(w for found in topics.values() for w in found)
    given = {k: t for k, t in topics.items() if int(k[1:]) in known}
    spread = _spread(people, candidates, given, {})
    for w in candidates:
        assert (spread[w] <= TOPIC_MAX_PEOPLE) == (everyone[w] <= TOPIC_MAX_PEOPLE)
        if everyone[w] <= TOPIC_MAX_PEOPLE:
            assert spread[w] == everyone[w]


@given(
    ids=st.lists(st.integers(0, 2**40), unique=True, max_size=50),
    wanted=st.lists(st.integers(0, 2**40), max_size=50),
    spread=st.booleans(),
    shuffle=st.randoms(use_true_random=False),
)
def test_rows_of_finds_each_id_where_it_is(
    ids: list[int], wanted: list[int], spread: bool, shuffle: random.Random
) -> None:
    """A table over a compact range of ids, or a search over scattered ones: the same answer."""
    import numpy as np

    from keepwarm.digests.cadence.touches import rows_of

    if not spread:  # compact: the table
        ids = [i % 200 for i in ids]
        ids = list(dict.fromkeys(ids))
        wanted = [w % 260 for w in wanted]
    shuffle.shuffle(ids)
    wanted += ids[:3]
    where = {v: i for i, v in enumerate(ids)}
    got = rows_of(np.array(ids, dtype=np.int64), np.array(wanted, dtype=np.int64))
    assert got.tolist() == [where.get(w, -1) for w in wanted]


@given(
    pool=st.lists(st.integers(-(2**63), 2**63 - 1), min_size=1, max_size=6),
    picks=st.lists(st.integers(0, 5), max_size=50),
    bits=st.sampled_from([None, 0, 1, 2, 8]),
    shared_low=st.booleans(),
)
def test_group_order_brings_equal_keys_together_rows_in_order(
    pool: list[int], picks: list[int], bits: int | None, shared_low: bool
) -> None:
    """group_order is a stable argsort up to the order of the groups, also when keys share the
    bits it sorts by (few bits, or keys equal in their low bits): those runs are sorted again."""
    import numpy as np

    from keepwarm.digests.cadence.touches import group_order

    if shared_low:  # keys that differ in their high bits only
        pool = [(v & ~0xFFFF) | 0x1234 for v in pool]
    keys = np.array([pool[i % len(pool)] for i in picks], dtype=np.int64)
    order_array, sorted_keys = group_order(keys, bits)
    order = order_array.tolist()
    assert sorted(order) == list(range(len(keys)))
    assert sorted_keys.tolist() == keys[order_array].tolist()
    groups: dict[int, list[int]] = {}
    runs: list[int] = []
    for row in order:
        key = int(keys[row])
        if not runs or runs[-1] != key:
            assert key not in groups  # each key in one run
            runs.append(key)
        groups.setdefault(key, []).append(row)
    assert all(rows == sorted(rows) for rows in groups.values())


@given(
    mail=st.lists(
        st.tuples(
            st.sampled_from([0, 0, 1, 3, 40]),  # days after the touch before
            st.sampled_from([0, 7, -(2**63), 2**63 - 1]),  # subject key (0: none)
            st.booleans(),  # no thread id: the subject rule applies
            st.sets(st.integers(0, 11), min_size=1, max_size=3),  # its people
        ),
        max_size=60,
    )
)
# person 0's thread is pushed out by eight threads of people on no other touch: a new one
@example([(0, 7, True, {0}), *[(0, 7, True, {p}) for p in range(1, 9)], (1, 7, True, {0})])
def test_the_subject_rule_joins_as_run_touch_by_touch_per_subject(
    mail: list[tuple[int, int, bool, set[int]]],
) -> None:
    """_subject_edges (stretches, touches that share nobody left out of the run where they
    cannot push a thread out) gives the edges of the rule run plainly: each subject's touches in
    date order, joining the oldest open thread (of the last SUBJECT_OPEN_MAX opened) whose last
    touch is within the window and that shares a person."""
    import numpy as np

    from keepwarm.digests.cadence import touches as tc

    day, date = 0, []
    for gap, *_ in mail:
        day += gap
        date.append(day * 86400)
    want: set[tuple[int, int]] = set()
    for key in {k for _, k, eligible, _ in mail if eligible}:
        span = (tc.SUBJECT_WINDOW_DAYS if key else tc.EMPTY_SUBJECT_WINDOW_DAYS) * 86400
        threads: list[tuple[int, list[int], set[int]]] = []  # first, [last], people
        for i, (_, k, eligible, people) in enumerate(mail):
            if k != key or not eligible:
                continue
            for first, last, members in threads:
                if last[0] >= date[i] - span and members & people:
                    want.add((first, i))
                    members |= people
                    last[0] = date[i]
                    break
            else:
                threads.append((i, [date[i]], set(people)))
                if len(threads) > tc.SUBJECT_OPEN_MAX:
                    threads.pop(0)
    inc = [(i, min(p)) for i, (*_, p) in enumerate(mail)]
    oth = [(i, q) for i, (*_, p) in enumerate(mail) for q in sorted(p - {min(p)})]
    none = np.zeros(0, dtype=np.int64)
    c = tc._Classified(
        rows=none,
        out=np.zeros(0, dtype=np.bool_),
        k=none,
        inc_touch=np.array([t for t, _ in inc], dtype=np.int64),
        inc_person=np.array([p for _, p in inc], dtype=np.int64),
        inc_direct=np.zeros(len(inc), dtype=np.bool_),
        oth_touch=np.array([t for t, _ in oth], dtype=np.int64),
        oth_person=np.array([p for _, p in oth], dtype=np.int64),
    )
    a, b = tc._subject_edges(
        np.array(date, dtype=np.int64),
        np.array([k for _, k, _, _ in mail], dtype=np.int64),
        np.array([e for _, _, e, _ in mail], dtype=np.bool_),
        c,
    )
    assert set(zip(a.tolist(), b.tolist(), strict=True)) == want
    assert len(a) == len(want)


@given(
    n=st.integers(min_value=1, max_value=40),
    edges=st.lists(st.tuples(st.integers(0, 39), st.integers(0, 39)), max_size=60),
)
def test_components_are_each_nodes_smallest_member(n: int, edges: list[tuple[int, int]]) -> None:
    """_components (hooking roots, then following only the nodes not yet at a root) labels each
    node with the smallest node connected to it, as a plain union-find does."""
    import numpy as np

    from keepwarm.digests.cadence.touches import _components

    edges = [(a % n, b % n) for a, b in edges]
    root = list(range(n))

    def find(x: int) -> int:
        while root[x] != x:
            x = root[x]
        return x

    for a, b in edges:
        ra, rb = find(a), find(b)
        root[max(ra, rb)] = min(ra, rb)
    got = _components(
        n,
        np.array([a for a, _ in edges], dtype=np.int64),
        np.array([b for _, b in edges], dtype=np.int64),
    )
    assert got.tolist() == [find(x) for x in range(n)]
