"""The commands' indented JSON, fast: exactly the text of ``json.dumps(value, indent=2)``.

The standard library writes indented JSON with its pure-Python encoder (a generator per
container): 0.09 s of ``keepwarm people --json`` on the 100,000-message bench store, three times
what its C encoder takes for the same document without indentation. :func:`dumps` writes the same
characters with the C helpers for the leaves (strings, numbers) and one ``join`` per container,
in half the time. Anything the fast path does not know (another type, a very deep value, a
cycle, an integer too long to print) is handed to ``json.dumps``, which gives the same answer or
raises the same error it always did.

A list of records (dicts with the same keys in the same order, as ``keepwarm people --json``
prints: 18,000 of 31 fields on the 1M bench store) is written a column at a time: the C encoder
writes a column's leaves (or the strings of its lists of strings) in one call, with a control
character between them (never in its text: JSON escapes them) to split them apart, and each
record is one ``%`` of a template of its keys: three times as fast as a value at a time.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from json.encoder import encode_basestring, encode_basestring_ascii
from typing import Any

__all__ = ["dumps", "items"]

INDENT = "  "
MAX_DEPTH = 100  # deeper values (or a cycle) go to json.dumps, which knows what to do with them
_INFINITY = float("inf")
_BOOL = {True: "true", False: "false"}.__getitem__
_NULL = {None: "null"}.__getitem__
# the C encoder json.dumps uses without indentation (None where the _json module is missing)
c_make_encoder: Callable[..., Callable[[Any, int], list[str]]] | None = getattr(
    json.encoder, "c_make_encoder", None
)
_LEAF_TYPES = frozenset({str, int, float, bool, type(None)})
_SPLIT = "\x00"  # between the C encoder's leaves: inside JSON text it is always escaped
MIN_RECORDS = 8  # fewer records: a value at a time


class _Unsupported(Exception):
    """A value the fast path leaves to ``json.dumps``."""


def _float(f: float) -> str:
    """A float as ``json.dumps`` writes it (``allow_nan``: NaN and the infinities by name)."""
    if f != f:
        return "NaN"
    if f == _INFINITY:
        return "Infinity"
    if f == -_INFINITY:
        return "-Infinity"
    return float.__repr__(f)


class _Writer:
    """The text of one document; ``leaves`` maps a leaf's exact type to its encoder."""

    def __init__(self, ensure_ascii: bool) -> None:
        self.string: Callable[[str], str] = (
            encode_basestring_ascii if ensure_ascii else encode_basestring
        )
        self.leaves: dict[type, Callable[[Any], str]] = {
            str: self.string,
            int: int.__repr__,
            float: _float,
            bool: _BOOL,
            type(None): _NULL,
        }
        self.keys: dict[str, str] = {}  # a key's text and ": ", for the keys every record has

    def value(self, o: object, newline: str) -> str:
        """``o``'s text; ``newline`` is a line break and the indentation of ``o``'s line."""
        if type(o) is dict:
            return self.mapping(o, newline)
        if type(o) is list or type(o) is tuple:
            return self.sequence(o, newline)
        text = self.leaf(o)
        if text is not None:
            return text
        if isinstance(o, dict):
            return self.mapping(o, newline)
        if isinstance(o, list | tuple):
            return self.sequence(o, newline)
        raise _Unsupported  # leaf() lets only these containers by

    def leaf(self, o: object) -> str | None:
        """A leaf of any type (subclasses of ``str``, ``int``, ``float`` too), in the order
        ``json.dumps`` tests them; None for a container."""
        if isinstance(o, str):
            return self.string(o)
        if o is None:
            return "null"
        if o is True:
            return "true"
        if o is False:
            return "false"
        if isinstance(o, int):
            return int.__repr__(o)
        if isinstance(o, float):
            return _float(o)
        if isinstance(o, list | tuple | dict):
            return None
        raise _Unsupported

    def key(self, k: object) -> str:
        """A dict key and ": " as ``json.dumps`` writes them (numbers, booleans, None as
        strings)."""
        if isinstance(k, str):
            text = self.string(k)
            if type(k) is str:
                self.keys[k] = text + ": "
        elif isinstance(k, float):
            text = self.string(_float(k))
        elif k is True or k is False or k is None:
            text = f'"{_NULL(k) if k is None else _BOOL(k)}"'
        elif isinstance(k, int):
            text = self.string(int.__repr__(k))
        else:
            raise _Unsupported
        return text + ": "

    def mapping(self, d: dict[Any, Any], newline: str) -> str:
        if not d:
            return "{}"
        if len(newline) > MAX_DEPTH * len(INDENT):
            raise _Unsupported
        inner = newline + INDENT
        leaves, keys, key, value = self.leaves, self.keys, self.key, self.value
        items = [
            (keys.get(k) or key(k))
            + (encode(v) if (encode := leaves.get(type(v))) else value(v, inner))
            for k, v in d.items()
        ]
        return "{" + inner + ("," + inner).join(items) + newline + "}"

    def sequence(self, seq: list[Any] | tuple[Any, ...], newline: str) -> str:
        if not seq:
            return "[]"
        if len(newline) > MAX_DEPTH * len(INDENT):
            raise _Unsupported
        inner = newline + INDENT
        leaves, value = self.leaves, self.value
        items = [encode(v) if (encode := leaves.get(type(v))) else value(v, inner) for v in seq]
        return "[" + inner + ("," + inner).join(items) + newline + "]"


def _columns(writer: _Writer, rows: list[Any], ensure_ascii: bool) -> str | None:
    """The text of ``rows`` (a top-level list), when they are records with the same str keys
    in the same order (else None): each column's text at once, then a template per record."""
    first = rows[0]
    if type(first) is not dict or not first or c_make_encoder is None:
        return None
    keys = tuple(first)
    if any(type(k) is not str for k in keys) or any(
        type(r) is not dict or tuple(r) != keys for r in rows
    ):
        return None
    split = c_make_encoder(
        None,
        _refuse,
        encode_basestring_ascii if ensure_ascii else encode_basestring,
        None,
        ": ",
        _SPLIT,
        False,
        False,
        True,
    )
    columns = [_column(writer, split, col) for col in zip(*(r.values() for r in rows), strict=True)]
    inner = "\n" + INDENT * 2
    template = (
        "{"
        + inner
        + ("," + inner).join(writer.string(k).replace("%", "%%") + ": %s" for k in keys)
        + "\n"
        + INDENT
        + "}"
    )
    records = [template % texts for texts in zip(*columns, strict=True)]
    return "[\n" + INDENT + (",\n" + INDENT).join(records) + "\n]"


def _refuse(o: object) -> Any:
    raise _Unsupported


def _column(writer: _Writer, split: Callable[[Any, int], list[str]], col: tuple[Any, ...]) -> Any:
    """The texts of one column's values, as fields of records of a top-level list."""
    newline = "\n" + INDENT * 2
    types = set(map(type, col))
    if types <= _LEAF_TYPES:  # leaves: one call of the C encoder
        return "".join(split(col, 0))[1:-1].split(_SPLIT)
    if types <= {list, tuple}:
        items = list(itertools.chain.from_iterable(col))
        if set(map(type, items)) <= _LEAF_TYPES:  # lists of leaves: their leaves in one call
            texts = "".join(split(items, 0))[1:-1].split(_SPLIT) if items else []
            inner = newline + INDENT
            out: list[str] = []
            at = 0
            for value in col:
                n = len(value)
                if n:
                    out.append("[" + inner + ("," + inner).join(texts[at : at + n]) + newline + "]")
                    at += n
                else:
                    out.append("[]")
            return out
    return [writer.value(v, newline) for v in col]


def dumps(value: object, *, ensure_ascii: bool = True) -> str:
    """``json.dumps(value, indent=2, ensure_ascii=ensure_ascii)``, character for character."""
    try:
        writer = _Writer(ensure_ascii)
        if type(value) is list and len(value) >= MIN_RECORDS:
            text = _columns(writer, value, ensure_ascii)
            if text is not None:
                return text
        return writer.value(value, "\n")
    except (_Unsupported, ValueError, RecursionError):  # its own answer, or its own error
        return json.dumps(value, indent=2, ensure_ascii=ensure_ascii)


def items(values: list[Any], *, ensure_ascii: bool = True) -> str:
    """The text of the items of the non-empty list ``values`` inside its brackets, as
    :func:`dumps` writes them: ``dumps(values) == "[\\n  " + items(values) + "\\n]"``, and the
    items of two lists joined by ``",\\n  "`` are the items of the two lists joined."""
    if not values:
        raise ValueError("items needs a non-empty list (dumps writes an empty one as [])")
    return dumps(values, ensure_ascii=ensure_ascii)[len("[\n" + INDENT) : -len("\n]")]
