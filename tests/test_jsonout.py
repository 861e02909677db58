"""keepwarm.daemon.jsonout.dumps writes exactly what json.dumps(value, indent=2) writes."""

from __future__ import annotations

import enum
import json
import math
from collections import OrderedDict
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from keepwarm.daemon.jsonout import MAX_DEPTH, dumps

# Every character, lone surrogates and control characters included.
text = st.text(st.characters(codec=None, exclude_categories=()), max_size=12)
leaves = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats()  # NaN and the infinities too
    | text
)
keys = text | st.integers() | st.floats() | st.booleans() | st.none()
values = st.recursive(
    leaves,
    lambda children: (
        st.lists(children, max_size=5)
        | st.lists(children, max_size=3).map(tuple)
        | st.dictionaries(keys, children, max_size=5)
    ),
    max_leaves=40,
)


def same(value: Any) -> None:
    for ensure_ascii in (True, False):
        assert dumps(value, ensure_ascii=ensure_ascii) == json.dumps(
            value, indent=2, ensure_ascii=ensure_ascii
        )


@given(values)
@example([])
@example({})
@example([[], {}, [[]], {"a": {}}])
@example({"x": [1, {"y": [None, True, False, 0.0, -0.0, 1e300, 5e-324]}]})
@example([math.nan, math.inf, -math.inf, {math.nan: 1, math.inf: 2, -math.inf: 3}])
@example({3: "int", True: "bool", None: "null", 2.5: "float", "é\u2028\ud800": "str"})
@example("top-level \u00e9 string")
def test_same_text_as_json_dumps(value: Any) -> None:
    same(value)


def test_key_order_and_keys_that_print_alike() -> None:
    """Keys in insertion order; 1 and "1" both written, as json.dumps does; a str key seen
    before is written from the cache only for another str."""
    same({"b": 1, "a": 2, 1: 3, "1": 4})
    same([{"true": 1}, {True: 2}, {"null": 3}, {None: 4}, {1.0: 5}, {"1.0": 6}])


class Colour(enum.IntEnum):
    RED = 1


class Word(enum.StrEnum):
    HELLO = "hello"


class Ratio(float):
    def __repr__(self) -> str:  # json.dumps ignores it (float.__repr__)
        return "ratio"


class Count(int):
    def __repr__(self) -> str:
        return "count"


class Name(str):
    pass


class Record(dict[str, Any]):
    pass


class Row(list[Any]):
    pass


def test_subclasses_as_json_dumps_writes_them() -> None:
    same([Colour.RED, Word.HELLO, Ratio(0.5), Count(7), Name("x"), Ratio(math.nan)])
    same(Record(a=Row([1, Record()]), b=OrderedDict([("c", Name("d"))])))
    same({Colour.RED: 1, Word.HELLO: 2, Ratio(1.5): 3, Name("k"): 4})
    same(Row())
    same(Colour.RED)


def test_deep_values_are_written_by_json_dumps() -> None:
    deep: Any = "leaf"
    for i in range(MAX_DEPTH + 20):
        deep = [deep] if i % 2 else {"k": deep}
    same(deep)


@pytest.mark.parametrize(
    "value",
    [
        {"when": object()},
        [1, {2, 3}],
        {(1, 2): "tuple key"},
        b"bytes",
    ],
)
def test_what_json_dumps_refuses_is_refused_the_same_way(value: Any) -> None:
    with pytest.raises(TypeError) as ours:
        dumps(value)
    with pytest.raises(TypeError) as theirs:
        json.dumps(value, indent=2)
    assert str(ours.value) == str(theirs.value)


def test_a_cycle_is_refused_as_json_dumps_refuses_it() -> None:
    loop: list[Any] = [1]
    loop.append({"again": loop})
    with pytest.raises(ValueError, match="Circular reference detected"):
        dumps(loop)


def test_an_integer_too_long_to_print_is_refused_as_json_dumps_refuses_it() -> None:
    huge = 10**5000
    with pytest.raises(ValueError) as ours:
        dumps([huge])
    with pytest.raises(ValueError) as theirs:
        json.dumps([huge], indent=2)
    assert str(ours.value) == str(theirs.value)


# Records: lists of dicts with the same keys in the same order (a column at a time).
column_values = st.one_of(
    st.lists(leaves, min_size=1, max_size=3),  # one kind of column each: leaves, lists of them,
    st.lists(st.lists(text, max_size=3), min_size=1, max_size=3),  # lists of strings, tuples,
    st.lists(st.lists(leaves, max_size=3).map(tuple), min_size=1, max_size=3),
    st.lists(values, min_size=1, max_size=3),  # anything (nested, mixed, None or a list)
)


@given(
    st.lists(st.tuples(text, column_values), min_size=1, max_size=6, unique_by=lambda c: c[0]),
    st.integers(min_value=8, max_value=20),
)
@example([("a%s", [1]), ("%", ["x"])], 8)  # the template's own character in keys
@example([("k", [[]]), ("l", [["a", "b"], []])], 9)
def test_records_same_text_as_json_dumps(
    columns: list[tuple[str, list[Any]]], n_records: int
) -> None:
    rows = [{k: vs[i % len(vs)] for k, vs in columns} for i in range(n_records)]
    same(rows)


def test_records_a_column_at_a_time() -> None:
    """A list of records goes through the columns (the path that must give the same text),
    and the records that are not alike fall back to a value at a time."""
    from keepwarm.daemon import jsonout

    rows = [
        {"key": f"p{i}@x.com", "n": i, "f": i / 3, "on": i % 2 == 0, "none": None, "l": ["a"] * i}
        for i in range(10)
    ]
    writer = jsonout._Writer(True)
    assert jsonout._columns(writer, rows, True) == json.dumps(rows, indent=2)
    assert jsonout._columns(writer, [*rows[:9], {"n": 1, "key": "x"}], True) is None  # other keys
    assert jsonout._columns(writer, [*rows[:9], {**rows[0], "x": 1}], True) is None
    assert jsonout._columns(writer, [{1: 2}] * 9, True) is None  # keys not all str
    same(rows)
    same([*rows, [1, 2]])


def test_records_without_the_c_encoder(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where Python has no _json C module, records are written a value at a time, alike."""
    from keepwarm.daemon import jsonout

    rows = [{"a": i, "b": [str(i)]} for i in range(9)]
    monkeypatch.setattr(jsonout, "c_make_encoder", None)
    assert jsonout._columns(jsonout._Writer(True), rows, True) is None
    same(rows)


@given(st.lists(values, min_size=1, max_size=12), st.integers(min_value=0, max_value=12))
def test_items_of_two_parts_joined_are_the_lists_items(items_: list[Any], cut: int) -> None:
    """dumps(a + b) is "[\\n  " + items(a) + ",\\n  " + items(b) + "\\n]" (how people --json
    joins its two halves); an empty list has no items to write."""
    from keepwarm.daemon.jsonout import items

    head, tail = items_[: max(cut, 1)], items_[max(cut, 1) :]
    for ensure_ascii in (True, False):
        parts = [items(p, ensure_ascii=ensure_ascii) for p in (head, tail) if p]
        assert "[\n  " + ",\n  ".join(parts) + "\n]" == json.dumps(
            items_, indent=2, ensure_ascii=ensure_ascii
        )
    with pytest.raises(ValueError, match="non-empty"):
        items([])
