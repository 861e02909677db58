"""The IMAP sync position: per folder UIDVALIDITY, the UIDs read (as compact ranges), whether the
backfill finished and the folder's ``(UIDVALIDITY, UIDNEXT, MESSAGES)`` at the last clean pass.
Pure: no I/O."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from keepwarm.connectors.base import CursorExpired

CURSOR_VERSION = 1


# -- UID sets ------------------------------------------------------------------------------------
class UidSet:
    """A set of UIDs kept as sorted, disjoint ``[lo, hi]`` ranges (compact for real folders)."""

    __slots__ = ("ranges",)

    def __init__(self, ranges: Iterable[tuple[int, int]] = ()) -> None:
        self.ranges: list[list[int]] = [[lo, hi] for lo, hi in ranges]

    @classmethod
    def parse(cls, text: str) -> UidSet:
        """From an IMAP sequence set such as ``1:5,7,9:12`` (no ``*``)."""
        out = cls()
        if not text:
            return out
        for part in text.split(","):
            lo, _, hi = part.partition(":")
            a, b = int(lo), int(hi or lo)
            out.add_range(min(a, b), max(a, b))
        return out

    @classmethod
    def of(cls, uids: Iterable[int]) -> UidSet:
        out = cls()
        for u in sorted(set(uids)):
            out.add_range(u, u)
        return out

    def add_range(self, lo: int, hi: int) -> None:
        """Add ``lo..hi``; fast when ranges arrive in ascending order (the usual case)."""
        r = self.ranges
        if not r or lo > r[-1][1] + 1:
            if r and lo < r[-1][0]:
                self._merge_in(lo, hi)
                return
            r.append([lo, hi])
        elif lo >= r[-1][0]:
            r[-1][1] = max(r[-1][1], hi)
        else:
            self._merge_in(lo, hi)

    def _merge_in(self, lo: int, hi: int) -> None:
        merged: list[list[int]] = []
        for a, b in sorted([*self.ranges, [lo, hi]]):
            if merged and a <= merged[-1][1] + 1:
                merged[-1][1] = max(merged[-1][1], b)
            else:
                merged.append([a, b])
        self.ranges = merged

    def add_sorted(self, uids: Sequence[int]) -> None:
        for u in uids:
            self.add_range(u, u)

    def __iter__(self) -> Iterator[int]:
        for lo, hi in self.ranges:
            yield from range(lo, hi + 1)

    def __len__(self) -> int:
        return sum(hi - lo + 1 for lo, hi in self.ranges)

    def __bool__(self) -> bool:
        return bool(self.ranges)

    def minus(self, other: UidSet) -> UidSet:
        """The UIDs of ``self`` not in ``other`` (linear merge over both range lists)."""
        out = UidSet()
        j, oth = 0, other.ranges
        for lo, hi in self.ranges:
            cur = lo
            while j < len(oth) and oth[j][1] < cur:
                j += 1
            k = j
            while cur <= hi:
                if k >= len(oth) or oth[k][0] > hi:
                    out.ranges.append([cur, hi])
                    break
                a, b = oth[k]
                if a > cur:
                    out.ranges.append([cur, a - 1])
                cur = max(cur, b + 1)
                k += 1
        return out

    def copy(self) -> UidSet:
        return UidSet((lo, hi) for lo, hi in self.ranges)

    def __str__(self) -> str:
        return ",".join(str(lo) if lo == hi else f"{lo}:{hi}" for lo, hi in self.ranges)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, UidSet) and self.ranges == other.ranges

    __hash__ = None  # type: ignore[assignment]


# -- cursor --------------------------------------------------------------------------------------
@dataclass
class FolderState:
    uidvalidity: int
    last_uid: int = 0
    known: UidSet = field(default_factory=UidSet)
    done: bool = False  # the first (backfill) pass finished
    check: tuple[int, int, int] | None = None  # (UIDVALIDITY, UIDNEXT, MESSAGES) when clean
    stale: list[tuple[int, UidSet]] = field(default_factory=list)  # older UIDVALIDITY generations

    def to_json(self) -> dict[str, Any]:
        return {
            "uv": self.uidvalidity,
            "last": self.last_uid,
            "known": str(self.known),
            "done": self.done,
            "check": list(self.check) if self.check else None,
            "stale": [[uv, str(s)] for uv, s in self.stale],
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> FolderState:
        check = d.get("check")
        return cls(
            uidvalidity=int(d["uv"]),
            last_uid=int(d["last"]),
            known=UidSet.parse(str(d["known"])),
            done=bool(d["done"]),
            check=(int(check[0]), int(check[1]), int(check[2])) if check else None,
            stale=[(int(uv), UidSet.parse(str(s))) for uv, s in d.get("stale", [])],
        )

    def copy(self) -> FolderState:
        return FolderState(
            self.uidvalidity,
            self.last_uid,
            self.known.copy(),
            self.done,
            self.check,
            [(uv, s.copy()) for uv, s in self.stale],
        )


@dataclass
class SyncState:
    folders: dict[str, FolderState] = field(default_factory=dict)

    def dump(self) -> str:
        return json.dumps(
            {"v": CURSOR_VERSION, "folders": {n: f.to_json() for n, f in self.folders.items()}},
            separators=(",", ":"),
        )

    @classmethod
    def load(cls, cursor: str | None) -> SyncState:
        if not cursor:
            return cls()
        try:
            data = json.loads(cursor)
            if data.get("v") != CURSOR_VERSION:
                raise ValueError("version")
            return cls({n: FolderState.from_json(f) for n, f in data["folders"].items()})
        except (ValueError, KeyError, TypeError, AttributeError, IndexError):
            raise CursorExpired(
                "the stored IMAP sync position is unreadable; starting a full resync"
            ) from None
