"""daemon/store/history.py reads the store into plain records, honouring --as-of."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from leakcheck import close_after_test

from keepwarm.connectors.base import Address, Attendee, Batch, EventMeta, MessageMeta
from keepwarm.daemon.store import Store
from keepwarm.daemon.store.history import load_history

T0 = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)


def _store() -> Store:
    store = close_after_test(Store.memory())
    msgs = [
        MessageMeta(
            account="a",
            provider_id=str(i),
            date=T0 + timedelta(days=i),
            sender=Address("bob@x.com", "Bob") if i % 2 else Address("me@example.com"),
            to=(Address("me@example.com"),) if i % 2 else (Address("bob@x.com"),),
            cc=(Address("carol@y.com", "Carol"),) if i == 2 else (),
            message_id=f"<{i}@x>",
            in_reply_to=f"<{i - 1}@x>" if i else None,
            references=(f"<{i - 1}@x>",) if i else (),
            subject=f"Re: plan {i}",
            thread_hint="T1",
            markers=("auto-submitted:auto-replied",) if i == 3 else (),
        )
        for i in range(5)
    ]
    ev = EventMeta(
        account="a",
        provider_id="e1",
        start=T0 + timedelta(days=1),
        end=T0 + timedelta(days=1, hours=1),
        ical_uid="u1",
        organizer=Address("me@example.com"),
        attendees=(
            Attendee("me@example.com", response="accepted", organizer=True, is_self=True),
            Attendee("bob@x.com", "Bob", response="declined"),
        ),
        my_response="accepted",
        title="Sync",
    )
    late = EventMeta(
        account="a",
        provider_id="e2",
        start=T0 + timedelta(days=30),
        end=T0 + timedelta(days=30, hours=1),
        ical_uid="u2",
    )
    store.apply_batch("a", "maildir", Batch(messages=msgs, events=[ev, late]))
    return store


def test_load_history_reads_messages_events_and_names() -> None:
    hist = load_history(_store().conn)
    assert len(hist.messages) == 5 and len(hist.events) == 2
    m2 = hist.messages[2]
    assert m2.sender == "me@example.com" and m2.to == ("bob@x.com",) and m2.cc == ("carol@y.com",)
    assert m2.when == T0 + timedelta(days=2)
    assert m2.refs == ("<1@x>",) and m2.in_reply_to == "<1@x>" and m2.message_id == "<2@x>"
    assert m2.norm_subject == "plan 2" and m2.thread_hint == "T1"
    assert hist.messages[3].markers == frozenset({"auto-submitted:auto-replied"})
    ev = hist.events[0]
    assert ev.organizer == "me@example.com" and ev.title == "Sync"
    assert {(a.email, a.response, a.is_self) for a in ev.attendees} == {
        ("me@example.com", "accepted", True),
        ("bob@x.com", "declined", False),
    }
    assert hist.names["carol@y.com"] == "Carol"


def test_load_history_sees_nothing_after_as_of() -> None:
    hist = load_history(_store().conn, until=T0 + timedelta(days=2, hours=1))
    assert [m.id for m in hist.messages] == sorted(m.id for m in hist.messages)
    assert len(hist.messages) == 3
    assert all(m.date <= int((T0 + timedelta(days=2, hours=1)).timestamp()) for m in hist.messages)
    assert [e.title for e in hist.events] == ["Sync"]
    wider = load_history(
        _store().conn, until=T0 + timedelta(days=2), events_until=T0 + timedelta(days=31)
    )
    assert len(wider.messages) == 3 and len(wider.events) == 2
