"""Identity's mail counts (daemon/mail_counts.py, counted with numpy from the engine's read) against
an independent oracle: the same definitions as SQL over the stored tables (the queries identity
ran before the counts moved to numpy), on generated mailboxes stored by the real write path."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keepwarm.connectors.base import Address, Batch, MessageMeta
from keepwarm.daemon import config as cfgmod
from keepwarm.daemon.identity import FAR_FUTURE, load_activity, marker_classes
from keepwarm.daemon.store import Store

ME, DELEGATE = "me@example.com", "assistant@example.com"
PEOPLE = [ME, DELEGATE, "ann@example.org", "bob@example.org", "news@lists.example", "x@y.example"]
MARKERS = [
    "list-id",
    "precedence:bulk",
    "auto-submitted:auto-replied",
    "keepwarm-digest",
    "sent-folder",
    "SENT-FOLDER",
    "subject:re",
]
START = datetime(2026, 1, 1, tzinfo=UTC)
MAX_R = 3

_BULK = "(m.list_id IS NOT NULL OR coalesce(m.markers, '') IN (SELECT value FROM json_each(:bulk)))"
_AUTO = "(coalesce(m.markers, '') IN (SELECT value FROM json_each(:auto)))"
_DIRECT = f"(NOT {_BULK} AND NOT {_AUTO} AND m.n_recipients <= :max_r)"
_SEEN = (
    "m.date <= :as_of"
    " AND (m.markers IS NULL OR m.markers NOT IN (SELECT value FROM json_each(:digest)))"
)
_NOT_MINE = "(m.sender IS NULL OR m.sender NOT IN (SELECT value FROM json_each(:self)))"
ORACLE = {
    "sent": f"""
        SELECT m.sender, count(*), sum({_BULK}), sum({_AUTO}), sum({_DIRECT}), min(m.date),
               max(m.date)
        FROM messages m WHERE {_SEEN} AND m.sender IS NOT NULL AND {_NOT_MINE}
        GROUP BY m.sender""",
    "out": f"""
        SELECT ma.address, count(*), sum({_DIRECT}), min(m.date), max(m.date),
               max(CASE WHEN {_DIRECT} THEN m.date END)
        FROM message_addresses f JOIN messages m ON m.id = f.message
        JOIN message_addresses ma ON ma.message = m.id AND ma.role IN (1, 2, 3)
        WHERE f.role = 0 AND f.address IN (SELECT value FROM json_each(:self)) AND {_SEEN}
        GROUP BY ma.address""",
    "recv_bulk": f"""
        SELECT ma.address, count(*)
        FROM messages m JOIN message_addresses ma ON ma.message = m.id AND ma.role IN (1, 2)
        WHERE {_SEEN} AND {_BULK} AND {_NOT_MINE} GROUP BY ma.address""",
    "recv_total": f"""
        SELECT ma.address, count(*)
        FROM messages m JOIN message_addresses ma ON ma.message = m.id AND ma.role IN (1, 2)
        WHERE {_SEEN} AND {_NOT_MINE} GROUP BY ma.address""",
    "filed": f"""
        SELECT DISTINCT m.sender FROM messages m
        WHERE ' ' || m.markers || ' ' LIKE '% sent-folder %' AND {_SEEN}
          AND m.sender IS NOT NULL AND {_NOT_MINE}""",
}


def _oracle(conn: sqlite3.Connection, as_of: int, self_ids: list[int]) -> dict[str, Any]:
    names = [
        str(r[0]) for r in conn.execute("SELECT DISTINCT markers FROM messages") if r[0] is not None
    ]
    classes = marker_classes(names)
    params = {
        "bulk": json.dumps(sorted(classes.bulk)),
        "auto": json.dumps(sorted(classes.auto)),
        "digest": json.dumps(sorted(classes.digest)),
        "self": json.dumps(self_ids),
        "as_of": as_of,
        "max_r": MAX_R,
    }
    out: dict[str, Any] = {}
    for name, sql in ORACLE.items():
        out[name] = {r[0]: tuple(r[1:]) for r in conn.execute(sql, params)}
    return out


messages = st.lists(
    st.tuples(
        st.sampled_from([*PEOPLE, None]),  # sender
        st.lists(st.sampled_from(PEOPLE), max_size=3),  # to
        st.lists(st.sampled_from(PEOPLE), max_size=3),  # cc
        st.lists(st.sampled_from(PEOPLE), max_size=2),  # bcc
        st.lists(st.sampled_from(MARKERS), max_size=2, unique=True),
        st.booleans(),  # list id
        st.integers(0, 40),  # day
    ),
    max_size=40,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(mail=messages, cut=st.sampled_from([None, 10, 20, 45]))
def test_counts_equal_the_sql_oracle(tmp_path: Path, mail: list[Any], cut: int | None) -> None:
    db = tmp_path / "kw.db"  # named in the config; the store itself is in memory (faster)
    store = Store.memory()
    try:
        metas = [
            MessageMeta(
                account="a",
                provider_id=str(i),
                date=START + timedelta(days=day, minutes=i),
                sender=Address(sender) if sender else None,
                to=tuple(Address(a) for a in to),
                cc=tuple(Address(a) for a in cc),
                bcc=tuple(Address(a) for a in bcc),
                message_id=f"<{i}@x>",
                subject=f"s{i}",
                list_id="<l.example>" if listed else None,
                markers=tuple(marks),
            )
            for i, (sender, to, cc, bcc, marks, listed, day) in enumerate(mail)
        ]
        store.apply_batch("a", "maildir", Batch(messages=metas))
        config = cfgmod.loads(
            f'[me]\nname = "Me"\naddresses = ["{ME}"]\ndelegates = ["{DELEGATE}"]\n'
            f'timezone = "UTC"\n[store]\npath = "{db}"\n[engine]\nmax_recipients = {MAX_R}\n'
        )
        as_of = START + timedelta(days=cut) if cut is not None else None
        got = load_activity(store, config, as_of)
        want = _oracle(
            store.conn, int(as_of.timestamp()) if as_of else FAR_FUTURE, sorted(got.self_ids)
        )
    finally:
        store.close()
    for aid, a in got.by_id.items():
        sent = want["sent"].get(aid)
        assert (a.sent, a.sent_bulk, a.sent_auto, a.sent_direct, a.in_first, a.in_last) == (
            sent if sent else (0, 0, 0, 0, None, None)
        )
        out = want["out"].get(aid)
        assert (a.out, a.out_direct, a.out_first, a.out_last, a.out_direct_last) == (
            out if out else (0, 0, None, None, None)
        )
        # what others' mail to it says is counted for an address that never wrote to me
        # directly, when some of it is bulk
        listish = aid in want["recv_bulk"] and a.sent_direct == 0 and aid not in got.self_ids
        assert (a.recv_other, a.recv_bulk) == (
            (want["recv_total"][aid][0], want["recv_bulk"][aid][0]) if listish else (0, 0)
        )
    filed = {got.by_id[aid].email for aid in want["filed"]}
    assert got.filed_as_sent == filed
