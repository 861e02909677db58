"""The mbox connector: the shared contract, boundaries, appends, rewrites and bad input."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from contract import ConnectorContract, stored_ids
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from leakcheck import close_after_test
from localmail import MboxWorld, envelope, make_message, mbox_entry

from keepwarm.connectors.base import Batch, MessageMeta, SourceError
from keepwarm.connectors.local.mbox import MboxConnector
from keepwarm.daemon.store import Store
from keepwarm.daemon.sync import run_account


class TestMboxContract(ConnectorContract):
    has_auth = False
    has_transient_errors = False
    has_cursor_expiry = False

    @pytest.fixture
    def world(self, tmp_path: Path) -> MboxWorld:
        return MboxWorld(tmp_path / "mail.mbox")


def read_all(path: Path, cursor: str | None = None, **kw: object) -> list[Batch]:
    return list(MboxConnector("a", path, **kw).sync(cursor))  # type: ignore[arg-type]


def messages(batches: list[Batch]) -> list[MessageMeta]:
    return [m for b in batches for m in b.messages]


def skipped(batches: list[Batch]) -> dict[str, int]:
    out: dict[str, int] = {}
    for b in batches:
        for k, v in b.skipped.items():
            out[k] = out.get(k, 0) + v
    return out


def test_from_lines_inside_bodies_do_not_split_messages(tmp_path: Path) -> None:
    tricky_bodies = [
        "Hi,\n\nFrom the desk of the CEO: hello\nthanks\n",  # blank line + From, not an envelope
        "quoted:\nFrom alice@example.com Mon Mar  4 10:00:00 2024\nno blank line before it\n",
        "\nFrom here on\n\nFrom there\n",
    ]
    data = b"".join(
        # raw "From " lines left unquoted in bodies (mboxo writers do this)
        envelope(datetime(2024, 3, 4, tzinfo=UTC))
        + make_message(i, body=body).as_bytes().replace(b"\r\n", b"\n")
        + b"\n"
        for i, body in enumerate(tricky_bodies)
    )
    path = tmp_path / "m.mbox"
    path.write_bytes(data)
    got = messages(read_all(path))
    assert [m.message_id for m in got] == [f"msg{i}@test.example" for i in range(3)]


def test_content_length_skips_a_body_that_looks_like_a_message(tmp_path: Path) -> None:
    inner = b"From bob@example.com Mon Mar  4 10:00:00 2024\nFrom: bob@example.com\nTo: x@example.com\n\nhi\n"
    body = b"forwarded below\n\n" + inner
    head = make_message(1).as_bytes().split(b"\n\n", 1)[0].replace(b"\r", b"")
    entry = (
        envelope(datetime(2024, 3, 4, tzinfo=UTC))
        + head
        + b"\nContent-Length: %d\n\n" % len(body)
        + body
        + b"\n"
    )
    path = tmp_path / "m.mbox"
    path.write_bytes(entry + mbox_entry(make_message(2)))
    got = messages(read_all(path))
    assert [m.message_id for m in got] == ["msg1@test.example", "msg2@test.example"]


def test_takeout_style_crlf_and_no_blank_line_between_messages(tmp_path: Path) -> None:
    parts = []
    for i in range(3):
        raw = make_message(i).as_bytes().replace(b"\n", b"\r\n").replace(b"\r\r\n", b"\r\n")
        parts.append(b"From 1234567890%d@xxx Tue Mar 03 14:47:19 +0000 2020\r\n" % i + raw)
    path = tmp_path / "All mail Including Spam and Trash.mbox"
    path.write_bytes(b"".join(parts))
    got = messages(read_all(path))
    assert [m.message_id for m in got] == [f"msg{i}@test.example" for i in range(3)]


def test_appended_messages_are_read_from_the_stored_offset(tmp_path: Path) -> None:
    path = tmp_path / "m.mbox"
    path.write_bytes(b"".join(mbox_entry(make_message(i)) for i in range(3)))
    store = close_after_test(Store.memory())
    assert run_account(store, MboxConnector("a", path)).added == 3
    with open(path, "ab") as fh:
        fh.write(mbox_entry(make_message(3)))
    batches = read_all(path, store.cursor("a"))
    assert [m.message_id for m in messages(batches)] == ["msg3@test.example"]
    assert not any(b.reset for b in batches)
    assert run_account(store, MboxConnector("a", path)).added == 1
    assert run_account(store, MboxConnector("a", path)).batches == 0  # nothing new


def test_rewritten_or_shrunk_file_is_read_again_and_replaces_the_records(tmp_path: Path) -> None:
    path = tmp_path / "m.mbox"
    path.write_bytes(b"".join(mbox_entry(make_message(i)) for i in range(4)))
    store = close_after_test(Store.memory())
    run_account(store, MboxConnector("a", path))
    # compacted by a mail client: same size class, different content before the offset
    path.write_bytes(b"".join(mbox_entry(make_message(i)) for i in (0, 2, 3, 5, 6)))
    batches = read_all(path, store.cursor("a"))
    assert batches[0].reset
    run_account(store, MboxConnector("a", path))
    assert stored_ids(store, "a") == sorted(f"msg{i}@test.example" for i in (0, 2, 3, 5, 6))


def test_missing_path_and_folder_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="does not exist"):
        read_all(tmp_path / "none.mbox")
    with pytest.raises(SourceError, match="is a folder"):
        read_all(tmp_path)


def test_bad_input_truncated_garbled_binary_and_huge_headers(tmp_path: Path) -> None:
    when = datetime(2022, 5, 6, 7, 8, 9, tzinfo=UTC)
    nodate = make_message(1)
    del nodate["Date"]
    huge = b"".join(b"X-Junk-%d: %s\n" % (i, b"a" * 900) for i in range(1200))
    data = (
        mbox_entry(nodate, when)  # no Date: the envelope date
        + envelope(when)
        + b"\x00\x01\x02\x03 binary junk \x00\x00\n\n"
        + envelope(when)
        + huge
        + b"\n\nbody\n\n"
        + envelope(when)
        + b"garbage without any header\n\nmore\n\n"
        + mbox_entry(make_message(2))
        + envelope(when)
        + b"From: cut@example.com\nTo: me@exa"  # truncated at the end
    )
    path = tmp_path / "m.mbox"
    path.write_bytes(data)
    batches = read_all(path)
    got = {m.message_id: m for m in messages(batches)}
    assert got["msg1@test.example"].date == when and got["msg1@test.example"].date_from_provider
    assert "msg2@test.example" in got
    assert any(m.sender and m.sender.email == "cut@example.com" for m in got.values())
    assert skipped(batches) == {"binary file": 1, "no addresses": 1, "no headers": 1}


def test_file_without_envelope_lines_is_one_message(tmp_path: Path) -> None:
    path = tmp_path / "one.eml"
    path.write_bytes(make_message(1).as_bytes())
    assert [m.message_id for m in messages(read_all(path))] == ["msg1@test.example"]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(st.integers(0, 30), st.sampled_from(["", "\nFrom x\n", "From me\n\n"])),
        min_size=1,
        max_size=10,
    ),
    st.integers(1, 4),
    st.integers(0, 9),
)
def test_import_then_append_then_rescan_is_idempotent(
    specs: list[tuple[int, str]], batch_size: int, split: int
) -> None:
    entries = [mbox_entry(make_message(n, body=f"text {n}\n{tail}")) for n, tail in specs]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.mbox"
        cut = min(split, len(entries))
        path.write_bytes(b"".join(entries[:cut]))
        store = close_after_test(Store.memory())
        run_account(store, MboxConnector("a", path, batch_size=batch_size))
        with open(path, "ab") as fh:
            fh.write(b"".join(entries[cut:]))
        run_account(store, MboxConnector("a", path, batch_size=batch_size))
        snapshot = store.counts()
        assert snapshot["message_sources"] == len(entries)
        again = run_account(store, MboxConnector("a", path, batch_size=batch_size))
        assert again.added == 0 and store.counts() == snapshot
        store.clear_cursor("a")
        fresh = run_account(store, MboxConnector("a", path, batch_size=batch_size))
        assert fresh.added == 0 and store.counts() == snapshot


def test_a_nul_byte_in_a_header_does_not_drop_the_message(tmp_path: Path) -> None:
    """Binary or not is decided on the whole header block, not on one byte (issue 15, item 7)."""
    entry = mbox_entry(make_message(1)).replace(b"Subject: ", b"Subject: a\x00", 1)
    path = tmp_path / "m.mbox"
    path.write_bytes(entry + mbox_entry(make_message(2)))
    batches = read_all(path)
    got = {m.message_id: m for m in messages(batches)}
    assert sorted(got) == ["msg1@test.example", "msg2@test.example"], skipped(batches)
    assert got["msg1@test.example"].subject == "aMessage number 1"
    assert skipped(batches) == {}
