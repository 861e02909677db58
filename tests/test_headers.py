from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from keepwarm.connectors import headers as h
from keepwarm.connectors.base import MessageMeta


def test_normalize_address_rules() -> None:
    assert h.normalize_address("John.Doe+news@GoogleMail.com") == "johndoe@gmail.com"
    assert h.normalize_address("<Alice@Example.COM>") == "alice@example.com"
    assert h.normalize_address("bob@bücher.de") == "bob@xn--bcher-kva.de"
    assert h.normalize_address("a.b+c@example.com") == "a.b+c@example.com"
    for bad in ("", "no-at-sign", "a@b@c", "two words@example.com", "@example.com", "x@"):
        assert h.normalize_address(bad) is None


def test_parse_addresses_decodes_rfc2047_and_drops_junk() -> None:
    got = h.parse_addresses(
        '=?utf-8?q?J=C3=BCrgen_M=C3=BCller?= <jm@example.de>, junk, "Doe, Jane" <JANE@x.org>'
    )
    assert [a.email for a in got] == ["jm@example.de", "jane@x.org"]
    assert got[0].name == "Jürgen Müller"
    assert got[1].name == "Doe, Jane"


def test_decode_words_wrong_charset_falls_back() -> None:
    assert h.decode_words("=?us-ascii?q?caf=E9?=") == "café"
    assert h.decode_words("=?bogus-charset?q?hello?=") == "hello"


def test_parse_date_variants_and_absurd_dates() -> None:
    d = h.parse_date("Tue, 03 Sep 2024 10:12:33 +0200")
    assert d == datetime(2024, 9, 3, 8, 12, 33, tzinfo=UTC)
    assert h.parse_date("Mon, 14 May 2001 16:39:00 -0700 (PDT)") == datetime(
        2001, 5, 14, 23, 39, tzinfo=UTC
    )
    assert h.parse_date("garbage") is None
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert not h.plausible(h.parse_date("Mon, 31 Dec 1979 16:00:00 -0800"), now)
    assert not h.plausible(h.parse_date("Fri, 1 Jan 1706 00:00:00 +0000"), now)
    assert not h.plausible(h.parse_date("Sat, 1 Jan 2028 00:00:00 +0000"), now)


def test_normalize_subject_strips_prefixes() -> None:
    assert h.normalize_subject("RE: AW: Fwd: [team] Q3 plan") == "q3 plan"
    assert h.normalize_subject("Re[2]: SV: Budget") == "budget"


def test_header_block_never_reads_body() -> None:
    raw = b"From: a@example.com\nSubject: hi\n\nFrom: body@example.com\nsecret body"
    headers = h.parse_header_block(raw)
    assert headers["from"] == ["a@example.com"]
    assert "secret" not in repr(headers)


def test_message_from_headers_markers_and_fallback_date() -> None:
    raw = (
        b"From: News <news@lists.example.com>\nTo: me@example.com\nDate: not a date\n"
        b"List-Id: Example News <news.example.com>\nPrecedence: bulk\nReturn-Path: <>\n"
        b"Message-ID: <abc@host>\nReferences: <a@h> <b@h>\nIn-Reply-To: <b@h>\n\nbody"
    )
    fallback = datetime(2020, 5, 1, tzinfo=UTC)
    msg = h.message_from_headers(
        h.parse_header_block(raw), account="a", provider_id="1", fallback_date=fallback
    )
    assert isinstance(msg, MessageMeta)
    assert msg.date == fallback and msg.date_from_provider
    assert msg.list_id == "news.example.com"
    assert set(msg.markers) >= {"list-id", "precedence:bulk", "return-path-null"}
    assert (
        msg.message_id == "abc@host"
        and msg.references == ("a@h", "b@h")
        and msg.in_reply_to == "b@h"
    )
    assert (
        h.message_from_headers(h.parse_header_block(raw), account="a", provider_id="1")
        == "unparseable date"
    )


@given(st.binary(max_size=4000))
def test_parser_never_raises_on_arbitrary_bytes(data: bytes) -> None:
    headers = h.parse_header_block(data)
    h.message_from_headers(headers, account="a", provider_id="x")


@given(st.emails())
def test_normalization_is_idempotent(addr: str) -> None:
    once = h.normalize_address(addr)
    if once is not None:
        assert h.normalize_address(once) == once


# -- invalid addresses are not people (issue 15, item 10) -------------------------------------
def test_control_characters_and_encoded_word_debris_are_invalid_addresses() -> None:
    for bad in (
        "bill.rap\x14@enron.com",
        "bill\x00@enron.com",
        "x@enron\x7f.com",
        "_x@evil.example?=",
        "=?utf-8?q?x@evil.example",
        "a=?b@example.com",
        "x@exa?mple.com",
        "x@exa=mple.com",
        "x@exam..ple.com",
    ):
        assert h.normalize_address(bad) is None, repr(bad)
    for good in (
        "p..o'neil@enron.com",
        "e$@vmeng.com",
        "online#3.1@news.example.com",
        "a_b@x_y.example",
    ):
        assert h.normalize_address(good) == good


def test_invalid_addresses_are_counted_when_a_message_is_built() -> None:
    raw = (
        b"From: Bill <bill.rap\x14@enron.com>\nTo: =?utf-8?q?x_x@evil.example?=, ok@example.com\n"
        b"Date: Tue, 03 Sep 2024 10:12:33 +0200\n\n"
    )
    msg = h.message_from_headers(h.parse_header_block(raw), account="a", provider_id="1")
    assert isinstance(msg, MessageMeta)
    assert msg.sender is None and [a.email for a in msg.to] == ["ok@example.com"]
    assert msg.invalid_addresses == 2
    only_bad = b"From: bill.rap\x14@enron.com\nDate: Tue, 03 Sep 2024 10:12:33 +0200\n\n"
    got = h.message_from_headers(h.parse_header_block(only_bad), account="a", provider_id="2")
    assert got == "invalid address"
