"""The fast path of parse_addresses agrees with email.utils.getaddresses wherever it is taken."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keepwarm.connectors import headers


def _agrees(value: str) -> bool:
    """parse_addresses gives the same with the fast path as with getaddresses alone."""
    fast = headers.parse_addresses(value)
    original = headers._simple_pairs
    headers._simple_pairs = lambda _v: None
    try:
        slow = headers.parse_addresses(value)
    finally:
        headers._simple_pairs = original
    return fast == slow


parts = st.sampled_from(
    ["Ann", "Ann Smith", "J.R. Ewing", "=?utf-8?q?J=C3=BCrgen?=", "", "a@b.example", "x"]
)
addrs = st.sampled_from(["a@b.example", "ann.smith@example.com", "x@y", "bad", "<", "@", "a@b@c"])


@given(
    st.lists(st.tuples(parts, addrs, st.booleans()), max_size=6), st.sampled_from([",", ", ", " ,"])
)
def test_fast_path_matches_getaddresses(items: list[tuple[str, str, bool]], sep: str) -> None:
    value = sep.join(f"{n} <{a}>" if bracket else a for n, a, bracket in items)
    assert _agrees(value), value


@given(st.text(alphabet="ab @.<>,xé\t", max_size=40))
def test_fast_path_on_noise(value: str) -> None:
    assert _agrees(value), value


@pytest.mark.corpus
def test_fast_path_on_the_real_corpora(shared_data: Path) -> None:
    checked = 0
    for sub in ("spamassassin-ham", "enron-maildir-sample", "enron-pst-eml-messy"):
        for p in sorted((shared_data / sub).rglob("*"))[:1500]:
            if not p.is_file():
                continue
            h = headers.parse_header_block(p.read_bytes())
            for key in ("from", "to", "cc", "reply-to"):
                for v in h.get(key, []):
                    assert _agrees(v[: headers.MAX_FIELD]), v[:200]
                    checked += 1
    assert checked > 1000


quoted = st.sampled_from(
    [
        '"Bailey, Susan"',
        '"Ann Smith"',
        '""',
        '"  Sp  aced "',
        '"Smith (Sales)"',
        '"a\\"b"',
        '"x',
        "Ann",
    ]
)


@given(
    st.lists(st.tuples(quoted, addrs, st.booleans()), max_size=6),
    st.sampled_from([",", ", ", " ,", " , "]),
)
def test_quoted_fast_path_matches_getaddresses(
    items: list[tuple[str, str, bool]], sep: str
) -> None:
    value = sep.join(f"{n} <{a}>" if bracket else a for n, a, bracket in items)
    assert _agrees(value), value


@given(st.text(alphabet='ab @.<>,"x\\()', max_size=40))
def test_quoted_fast_path_on_noise(value: str) -> None:
    assert _agrees(value), value
