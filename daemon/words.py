"""One vocabulary for every screen, counts that agree with their noun, and tables that never cut.

Terms (the README's and docs/people.md's):

kind
    what an address is: a person, a mailing list, an automated sender, a role mailbox
    (info@, billing@), excluded (by you), or you.
two-way
    a person you have written to directly and who has written to you (or a small meeting they
    accepted): a *relationship*, listed by ``keepwarm people``.
tier
    inner, close, active, wider (your ``[[tiers]]``), or *acquaintance*: a relationship outside
    every tier, which gets no cadence nudges.
stage
    new, growing, established, fading, dormant.
days of conversation
    days on which you both wrote in one thread, or met: what the rhythm is measured on.
"""

from __future__ import annotations

from collections.abc import Sequence

KIND_WORDS = {
    "person": "person",
    "list": "mailing list",
    "robot": "automated sender",
    "role": "role mailbox",
    "excluded": "excluded",
    "self": "you",
}
NO_TIER = "acquaintance"


def plural(n: int, one: str, many: str | None = None) -> str:
    """'1 person', '2 people', '1,204 messages'."""
    return f"{n:,} {one if n == 1 else (many or one + 's')}"


def tier_word(tier: str | None) -> str:
    return tier or NO_TIER


def kind_word(kind: str, two_way: bool = True) -> str:
    word = KIND_WORDS.get(kind, kind)
    return f"{word}, one-way" if kind == "person" and not two_way else word


def table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    right: Sequence[int] = (),
    plain: bool = False,
) -> list[str]:
    """Lines of a table whose columns are as wide as their widest cell: nothing is ever cut.

    ``right`` lists the columns aligned right (numbers). ``plain``: tab-separated, for scripts.
    """
    if plain:
        return ["\t".join(headers), *("\t".join(r) for r in rows)]
    widths = [len(h) for h in headers]
    for i, column in enumerate(zip(*rows, strict=True)):  # a column at a time (18,000 rows)
        widths[i] = max(widths[i], *map(len, column))
    # each line one str.format: a cell padded as str.ljust or str.rjust pads it
    line = "  ".join(
        f"{{:{'>' if i in set(right) else '<'}{w}}}" for i, w in enumerate(widths)
    ).format
    return [line(*headers).rstrip(), *(line(*r).rstrip() for r in rows)]
