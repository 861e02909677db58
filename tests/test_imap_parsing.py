"""Pure parts of the IMAP connector: UID sets, FETCH/SEARCH parsing, folder selection, cursor."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keepwarm.connectors.base import CursorExpired
from keepwarm.connectors.imap.connector import ImapConnector
from keepwarm.connectors.imap.parsing import (
    folder_skipped,
    imap_date,
    parse_fetch_item,
    parse_internaldate,
    parse_search,
    split_fetch_responses,
)
from keepwarm.connectors.imap.session import HEADER_ITEM, ImapSettings, Session
from keepwarm.connectors.imap.state import FolderState, SyncState, UidSet

uid_lists = st.lists(st.integers(min_value=1, max_value=400), max_size=120)


@given(uid_lists)
def test_uidset_round_trips_and_is_compact(uids: list[int]) -> None:
    s = UidSet.of(uids)
    assert list(s) == sorted(set(uids))
    assert len(s) == len(set(uids))
    assert UidSet.parse(str(s)) == s
    assert all(b + 1 < a for (_x, b), (a, _y) in zip(s.ranges, s.ranges[1:], strict=False))


@given(uid_lists, uid_lists)
def test_uidset_minus_matches_set_difference(a: list[int], b: list[int]) -> None:
    assert list(UidSet.of(a).minus(UidSet.of(b))) == sorted(set(a) - set(b))


@given(uid_lists)
def test_uidset_add_in_any_order(uids: list[int]) -> None:
    s = UidSet()
    for u in uids:
        s.add_range(u, u)
    assert list(s) == sorted(set(uids))


def test_uidset_text() -> None:
    assert str(UidSet.of([1, 2, 3, 5, 7, 8])) == "1:3,5,7:8"
    assert list(UidSet.parse("9:7,1")) == [1, 7, 8, 9]


def test_internaldate() -> None:
    assert parse_internaldate("17-Jul-1996 02:44:25 -0700") == datetime(
        1996, 7, 17, 9, 44, 25, tzinfo=UTC
    )
    assert parse_internaldate(" 1-Feb-2024 00:00:00 +0100") == datetime(2024, 1, 31, 23, tzinfo=UTC)
    assert parse_internaldate("garbage") is None
    assert parse_internaldate("31-Foo-2024 00:00:00 +0000") is None
    assert imap_date(datetime(2024, 2, 1, tzinfo=UTC)) == "1-Feb-2024"


def test_fetch_responses_are_split_and_parsed() -> None:
    data = [
        (
            b'1 (UID 10 INTERNALDATE "01-Feb-2024 10:00:00 +0000" FLAGS (\\Seen) BODY[HEADER.FIELDS (FROM)] {20}',
            b"From: a@example.com\r\n",
        ),
        b")",
        b"2 (FLAGS (\\Seen))",  # unsolicited update without UID
        (b"3 (UID 12 FLAGS () BODY[HEADER.FIELDS (FROM)] {5}", b"x: y\r\n"),
        b' INTERNALDATE "02-Feb-2024 10:00:00 +0000")',
    ]
    groups = list(split_fetch_responses(data))
    assert len(groups) == 3
    parsed = [parse_fetch_item(meta, lits[0] if lits else b"") for meta, lits in groups]
    assert parsed[1] is None
    a, c = parsed[0], parsed[2]
    assert a is not None and c is not None
    assert (a.uid, a.flags, a.header) == (10, ("\\Seen",), b"From: a@example.com\r\n")
    assert a.internaldate == datetime(2024, 2, 1, 10, tzinfo=UTC)
    assert (c.uid, c.internaldate) == (12, datetime(2024, 2, 2, 10, tzinfo=UTC))


def test_gmail_fetch_items_are_parsed() -> None:
    """X-GM-LABELS may hold quoted strings; the careful parser handles them."""
    data = [
        (
            b'1 (X-GM-THRID 1278455344230334865 X-GM-LABELS (\\Inbox "My Label" \\Spam "Caf&AOk-") UID 4 '
            b'INTERNALDATE "01-Feb-2024 10:00:00 +0000" FLAGS (\\Seen) BODY[HEADER.FIELDS (FROM)] {23}',
            b"From: a@example.com\r\n\r\n",
        ),
        b")",
    ]
    session = Session.__new__(Session)
    [f] = session._parse_gmail(data)
    assert f.uid == 4 and f.thread == "1278455344230334865"
    assert f.labels == ("\\Inbox", "My Label", "\\Spam", "Café")
    assert f.internaldate == datetime(2024, 2, 1, 10, tzinfo=UTC)
    assert f.header.startswith(b"From:")


def test_search_responses() -> None:
    assert list(parse_search([b"3 1 2", None], esearch=False)) == [1, 2, 3]
    assert list(parse_search([b'(TAG "A5") UID ALL 1:3,7'], esearch=True)) == [1, 2, 3, 7]
    assert list(parse_search([b'(TAG "A5") UID'], esearch=True)) == []


def test_header_item_peeks_and_lists_wanted_fields() -> None:
    assert HEADER_ITEM.startswith("BODY.PEEK[HEADER.FIELDS (FROM ")
    assert "MESSAGE-ID" in HEADER_ITEM and "LIST-ID" in HEADER_ITEM


@pytest.mark.parametrize(
    ("flags", "name", "special_use", "skipped"),
    [
        ((b"\\HasNoChildren", b"\\Junk"), "Spam", True, True),
        ((b"\\Trash",), "Deleted Items", True, True),
        ((b"\\Drafts",), "Entwürfe", True, True),
        ((), "Junk", True, False),  # the server marks its junk folder; this one is the user's
        ((), "Junk", False, True),
        ((), "INBOX/Trash", False, True),
        ((), "Deleted Messages", False, True),
        ((b"\\Noselect",), "[Gmail]", False, True),
        ((b"\\Sent",), "Sent", True, False),
        ((), "Projects/Spamfilter", False, False),
    ],
)
def test_folder_selection(
    flags: tuple[bytes, ...], name: str, special_use: bool, skipped: bool
) -> None:
    assert folder_skipped(flags, name, "/", special_use) is skipped


def test_cursor_round_trip_and_garbage() -> None:
    s = SyncState(
        {"INBOX": FolderState(7, 9, UidSet.of([1, 2, 9]), True, (7, 10, 3), [(5, UidSet.of([1]))])}
    )
    again = SyncState.load(s.dump())
    assert again.dump() == s.dump()
    for bad in ("{", '{"v": 99}', '{"v": 1, "folders": {"x": {}}}', "[]"):
        with pytest.raises(CursorExpired):
            SyncState.load(bad)


class _FakeSession:
    def __init__(self, listed: list[tuple[tuple[bytes, ...], str, str]], gmail: bool) -> None:
        self.listed, self.gmail, self.special_use = listed, gmail, True

    def list_folders(self) -> list[tuple[tuple[bytes, ...], str, str]]:
        return self.listed


GMAIL_LIST = [
    ((b"\\HasNoChildren",), "/", "INBOX"),
    ((b"\\HasNoChildren",), "/", "Work"),
    ((b"\\Noselect", b"\\HasChildren"), "/", "[Gmail]"),
    ((b"\\All", b"\\HasNoChildren"), "/", "[Gmail]/All Mail"),
    ((b"\\Junk", b"\\HasNoChildren"), "/", "[Gmail]/Spam"),
    ((b"\\Sent", b"\\HasNoChildren"), "/", "[Gmail]/Sent Mail"),
    ((b"\\Trash", b"\\HasNoChildren"), "/", "[Gmail]/Trash"),
]


def _connector(**kw: object) -> ImapConnector:
    return ImapConnector("a", ImapSettings(host="h", username="u", password=lambda: "p", **kw))  # type: ignore[arg-type]


def _select(c: ImapConnector, gmail: bool) -> list[str]:
    session = _FakeSession(GMAIL_LIST, gmail=gmail)
    return c._select(session, session.list_folders())  # type: ignore[arg-type]


def test_gmail_reads_all_mail_once_instead_of_every_label() -> None:
    assert _select(_connector(), gmail=True) == ["[Gmail]/All Mail"]
    plain = _select(_connector(), gmail=False)
    assert plain == ["INBOX", "Work", "[Gmail]/All Mail", "[Gmail]/Sent Mail"]
    assert _select(_connector(folders=("INBOX",)), gmail=True) == ["INBOX"]
    excl = _select(_connector(exclude_folders=("inbox", "Work")), gmail=False)
    assert excl == ["[Gmail]/All Mail", "[Gmail]/Sent Mail"]


def test_gmail_spam_and_trash_labels_are_skipped() -> None:
    from keepwarm.connectors.imap.parsing import Fetched

    c = _connector()
    head = b"From: a@example.com\r\nTo: b@example.com\r\nDate: Thu, 1 Feb 2024 10:00:00 +0000\r\n"
    batch = c._records(
        "[Gmail]/All Mail",
        7,
        [
            Fetched(1, None, (), head, ("\\Inbox", "Clients"), "123"),
            Fetched(2, None, (), head, ("\\Spam",), None),
            Fetched(3, None, ("\\Draft",), head, (), None),
        ],
    )
    assert [m.provider_id for m in batch.messages] == ["[Gmail]/All Mail/7/1"]
    assert (
        batch.messages[0].labels == ("\\Inbox", "Clients")
        and batch.messages[0].thread_hint == "123"
    )
    assert batch.skipped == {"spam or trash": 1, "draft": 1}
