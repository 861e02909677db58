"""Column blocks: the engine's bulk reads of the stored messages, kept as arrays.

Every command that runs the engine reads every message's numbers (date, sender, threading keys...)
and every To/Cc/Bcc row. SQLite writes them out as text and numpy parses it (history.py): on a
million messages that is most of two cores for over a second, each time. So the answer, once read,
is kept: per *block* of :data:`BLOCK_IDS` message ids, the columns as little-endian integers in a
``BLOB`` (the narrowest of 1, 2, 4 or 8 bytes that holds each column), in ``message_blocks`` and
``recipient_blocks``. A later read takes a kept block as it is, and asks SQLite only for the
others. Nothing in a block is new: ids, dates, address ids, 64-bit hashes of threading keys
and the markers already stored; it costs about 50 bytes a message on disk (recipients included).

A kept block is never stale: triggers on ``messages`` and ``message_addresses`` (migration 0008)
delete the block of any row inserted, deleted or changed, in the same transaction as the change.
A block is written only from the same state of the database it was read from: the writing
connection takes its snapshot before the reads start, and SQLite refuses its first write if
anyone committed since (``SQLITE_BUSY_SNAPSHOT``, in WAL mode); then nothing is kept this time.
Inside a transaction of the caller (its own uncommitted rows), in memory, or when the store
cannot be written (disk full, read-only file), blocks are read but not written.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from keepwarm.core.threadkeys import COLUMNS as THREAD_KEY_COLUMNS

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    I64 = NDArray[np.int64]

BLOCK_BITS = 17
BLOCK_IDS = 1 << BLOCK_BITS  # message ids per block
FORMAT = 1  # the layout of a block row: a row of another format is read as missing

# The triggers fire only on the columns the blocks hold: a change of subject text or copy key
# leaves them be. Kept in step with history.py's queries (tests/test_blocks.py checks).
MESSAGE_COLUMNS_READ = (
    "id",
    "date",
    "sender",
    "list_id",
    "n_recipients",
    "markers",
    *THREAD_KEY_COLUMNS,
)


def _triggers(blocks: str, table: str, key: str, columns: tuple[str, ...] = ()) -> str:
    """The triggers that drop the block of any row of ``table`` (its message id: ``key``)
    inserted, deleted or changed (in ``columns``, all when none)."""
    of = f" OF {', '.join(columns)}" if columns else ""
    drop = f"DELETE FROM {blocks} WHERE block"
    return f"""
CREATE TRIGGER {blocks}_insert AFTER INSERT ON {table} BEGIN
    {drop} = NEW.{key} >> {BLOCK_BITS};
END;
CREATE TRIGGER {blocks}_delete AFTER DELETE ON {table} BEGIN
    {drop} = OLD.{key} >> {BLOCK_BITS};
END;
CREATE TRIGGER {blocks}_update AFTER UPDATE{of} ON {table} BEGIN
    {drop} IN (OLD.{key} >> {BLOCK_BITS}, NEW.{key} >> {BLOCK_BITS});
END;"""


SCHEMA = f"""
CREATE TABLE message_blocks (
    block INTEGER PRIMARY KEY,            -- message ids block << {BLOCK_BITS} ... (block + 1) << {BLOCK_BITS} - 1
    format INTEGER NOT NULL,
    n INTEGER NOT NULL,                   -- messages in the block
    widths TEXT NOT NULL,                 -- bytes per value of each column: "84211888888"
    data BLOB NOT NULL,                   -- the columns, one after the other
    marked BLOB NOT NULL,                 -- the ids of the messages with markers (8 bytes each)
    markers TEXT NOT NULL                 -- their markers: a JSON array of strings
);
CREATE TABLE recipient_blocks (
    block INTEGER PRIMARY KEY,
    format INTEGER NOT NULL,
    n INTEGER NOT NULL,                   -- To/Cc/Bcc rows in the block
    stride INTEGER NOT NULL,              -- the stride they are packed with
    data BLOB NOT NULL                    -- (message * 4 + role) * stride + address, 8 bytes each
);
{_triggers("message_blocks", "messages", "id", MESSAGE_COLUMNS_READ)}
{_triggers("recipient_blocks", "message_addresses", "message")}
"""

T = TypeVar("T")


class Query(NamedTuple):
    """How a block's rows are read: ``sql`` answers one row for the parameters ``params`` makes
    of an id range; ``ask`` runs it for many (history.answers: a few at a time, in order)."""

    sql: str
    params: Callable[[tuple[int, int]], tuple[object, ...]]
    ask: Callable[
        [sqlite3.Connection, str, Sequence[tuple[object, ...]]], Iterator[tuple[Any, ...]]
    ]

    def rows(self, conn: sqlite3.Connection, ranges: list[tuple[int, int]]) -> list[Any]:
        """The rows of ``ranges``, read here, one after the other."""
        return [conn.execute(self.sql, self.params(r)).fetchone() for r in ranges]


def pieces_of(lo: int, hi: int, split: Callable[[int, int], list[tuple[int, int]]]) -> list[Piece]:
    """The blocks covering message ids ``lo`` to ``hi``, each in the id ranges ``split`` makes
    of its part."""
    out: list[Piece] = []
    for block in range(lo >> BLOCK_BITS, (hi >> BLOCK_BITS) + 1):
        first = max(lo, block << BLOCK_BITS)
        last = min(hi, ((block + 1) << BLOCK_BITS) - 1)
        out.append(Piece(block, split(first, last)))
    return out


class Piece:
    """One block and the id ranges it is read in when not kept."""

    __slots__ = ("block", "ranges")

    def __init__(self, block: int, ranges: list[tuple[int, int]]) -> None:
        self.block = block
        self.ranges = ranges


# -- encoding -------------------------------------------------------------------------------------
def _width(col: I64) -> int:
    import numpy as np

    if not len(col):
        return 1
    low, high = int(col.min()), int(col.max())
    for w in (1, 2, 4):
        info = np.iinfo(f"i{w}")
        if info.min <= low and high <= info.max:
            return w
    return 8


def encode(columns: Sequence[I64]) -> tuple[str, bytes]:
    """The columns (int64 arrays of one length) as ``(widths, data)``."""
    widths = [_width(c) for c in columns]
    data = b"".join(c.astype(f"<i{w}").tobytes() for c, w in zip(columns, widths, strict=True))
    return "".join(str(w) for w in widths), data


def decode(widths: str, data: bytes, n: int) -> list[I64] | None:
    """The columns of :func:`encode` (None when ``data`` does not fit ``widths`` and ``n``)."""
    import numpy as np

    sizes = [int(w) for w in widths] if widths.isdigit() else []
    if not sizes or any(w not in (1, 2, 4, 8) for w in sizes) or sum(sizes) * n != len(data):
        return None
    out: list[I64] = []
    offset = 0
    for w in sizes:
        col = np.frombuffer(data, dtype=f"<i{w}", count=n, offset=offset)
        out.append(col.astype(np.int64))
        offset += w * n
    return out


# -- reading and keeping ----------------------------------------------------------------------------
class Keeper:
    """A connection holding a snapshot taken before the reads, that writes the blocks read from
    SQL: its first write fails if anyone committed since the snapshot (the blocks would not be
    what is stored), and any failure (locked, disk full, read-only) only means nothing is kept."""

    def __init__(self, conn: sqlite3.Connection | None) -> None:
        self.conn = conn
        self.wrote = False

    @classmethod
    def open(cls, conn: sqlite3.Connection) -> Keeper:
        """A keeper for the database of ``conn`` (one that keeps nothing when ``conn`` is inside
        a transaction, in memory, or its file cannot be opened)."""
        if conn.in_transaction:
            return cls(None)
        path = next((str(r[2]) for r in conn.execute("PRAGMA database_list") if r[1] == "main"), "")
        if not path:
            return cls(None)
        keeper: sqlite3.Connection | None = None
        try:
            keeper = sqlite3.connect(path, timeout=0, isolation_level=None)
            keeper.execute("BEGIN")
            keeper.execute("SELECT count(*) FROM message_blocks").fetchone()  # the snapshot
        except sqlite3.Error:
            if keeper is not None:
                keeper.close()
            return cls(None)
        return cls(keeper)

    def write(self, sql: str, params: tuple[object, ...]) -> None:
        if self.conn is None:
            return
        try:
            self.conn.execute(sql, params)
            self.wrote = True
        except sqlite3.Error:  # changed since the snapshot, locked, full, read-only: keep none
            self._drop()

    def close(self) -> None:
        """Commit what was written (each block is whole), or nothing."""
        if self.conn is None:
            return
        try:
            self.conn.execute("COMMIT" if self.wrote else "ROLLBACK")
        except sqlite3.Error:
            pass
        finally:
            self._drop()

    def _drop(self) -> None:
        if self.conn is not None:
            try:
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            self.conn.close()
            self.conn = None
            self.wrote = False


def blocks(
    conn: sqlite3.Connection,
    table: str,
    pieces: list[Piece],
    query: Query,
    load: Callable[[tuple[Any, ...]], T | None],
    read: Callable[[list[tuple[Any, ...]]], T],
    keep: Callable[[Keeper, int, T], None],
) -> Iterator[T]:
    """Each of ``pieces`` in order: its kept block of ``table`` (``load``-ed from the row of its
    :data:`KEPT` columns), or else ``read`` from the rows ``query`` answers for its id ranges
    (asked for all such pieces at once, before the first is needed) and kept."""
    if not pieces:
        return
    kept = _kept_blocks(conn, table, pieces[0].block, pieces[-1].block)
    # the keeper's snapshot comes before any read it may keep: now, when some block is missing
    keeper = Keeper.open(conn) if len(kept) < len(pieces) else None
    todo = [query.params(r) for p in pieces if p.block not in kept for r in p.ranges]
    answers: Iterator[tuple[Any, ...]] = iter(())
    try:
        answers = query.ask(conn, query.sql, todo)
        for piece in pieces:
            if piece.block not in kept:
                got = read([next(answers) for _r in piece.ranges])
                keep(keeper or Keeper(None), piece.block, got)
            elif (loaded := _load_kept(conn, table, piece.block, load)) is not None:
                got = loaded
            else:  # dropped since, or damaged: read it now, and keep it again
                keeper = keeper or Keeper.open(conn)  # (before the read)
                got = read(query.rows(conn, piece.ranges))
                keep(keeper, piece.block, got)
            yield got
    finally:
        close = getattr(answers, "close", None)
        if close is not None:
            close()
        if keeper is not None:
            keeper.close()


def _kept_blocks(conn: sqlite3.Connection, table: str, first: int, last: int) -> set[int]:
    """The blocks ``first`` to ``last`` kept in ``table`` (in the current format)."""
    try:
        return {
            int(b)
            for (b,) in conn.execute(
                f"SELECT block FROM {table} WHERE block BETWEEN ? AND ? AND format = ?",
                (first, last, FORMAT),
            )
        }
    except sqlite3.OperationalError:  # a store from before the blocks (tests open old schemas)
        return set()


def _load_kept(
    conn: sqlite3.Connection, table: str, block: int, load: Callable[[tuple[Any, ...]], T | None]
) -> T | None:
    """Kept ``block`` of ``table``, ``load``-ed (None when it is gone since or does not load)."""
    row = conn.execute(
        f"SELECT {KEPT[table]} FROM {table} WHERE block = ? AND format = ?", (block, FORMAT)
    ).fetchone()
    return load(tuple(row)) if row is not None else None


KEPT = {
    "message_blocks": "n, widths, data, marked, markers",
    "recipient_blocks": "n, stride, data",
}


# -- messages -------------------------------------------------------------------------------------
MessageBlock = tuple[list["I64"], "I64", list[str]]
"""A block's columns, the ids of its messages with markers, and their markers."""


def message_blocks(
    conn: sqlite3.Connection,
    pieces: list[Piece],
    query: Query,
    parse: Callable[[tuple[Any, ...]], MessageBlock],
    columns: int,
) -> Iterator[MessageBlock]:
    """Every message of ``pieces``, a block at a time, as ``query`` answers them for an id
    range (``parse``-d into ``columns`` columns): kept blocks as they are (a kept block of
    another number of columns is read again), the others read and kept."""

    def load(row: tuple[Any, ...]) -> MessageBlock | None:
        got = _load_messages(row)
        return got if got is not None and len(got[0]) == columns else None

    return blocks(conn, "message_blocks", pieces, query, load, _reader(parse), _keep_messages)


def _reader(
    parse: Callable[[tuple[Any, ...]], MessageBlock],
) -> Callable[[list[tuple[Any, ...]]], MessageBlock]:
    def read(rows: list[tuple[Any, ...]]) -> MessageBlock:
        import numpy as np

        parts = [parse(row) for row in rows]
        if len(parts) == 1:
            return parts[0]
        columns = [np.concatenate(col) for col in zip(*(p[0] for p in parts), strict=True)]
        return columns, np.concatenate([p[1] for p in parts]), [m for p in parts for m in p[2]]

    return read


def _keep_messages(keeper: Keeper, block: int, got: MessageBlock) -> None:
    columns, marked, markers = got
    widths, data = encode(columns)
    keeper.write(
        """INSERT OR REPLACE INTO message_blocks (block, format, n, widths, data, marked, markers)
           VALUES (?, ?, ?, ?, ?, ?, ?)""",
        (
            block,
            FORMAT,
            len(columns[0]) if columns else 0,
            widths,
            data,
            marked.astype("<i8").tobytes(),
            json.dumps(markers),
        ),
    )


def _load_messages(row: tuple[Any, ...]) -> MessageBlock | None:
    import numpy as np

    n, widths, data, marked, markers = row
    columns = decode(str(widths), bytes(data), int(n))
    if columns is None or len(marked) % 8:
        return None
    ids = np.frombuffer(bytes(marked), dtype="<i8").astype(np.int64)
    try:
        names = json.loads(markers)
    except ValueError:
        return None
    if not isinstance(names, list) or len(names) != len(ids):
        return None
    return columns, ids, [str(m) for m in names]


# -- recipients -----------------------------------------------------------------------------------
def recipient_blocks(
    conn: sqlite3.Connection,
    pieces: list[Piece],
    query: Query,
    parse: Callable[[tuple[Any, ...]], I64],
    stride: int,
) -> Iterator[I64]:
    """The To/Cc/Bcc rows of ``pieces``, packed with ``stride``, a block at a time (as
    :func:`message_blocks`; a block kept with another stride is packed again)."""

    def read(rows: list[tuple[Any, ...]]) -> I64:
        import numpy as np

        return np.concatenate([parse(row) for row in rows])

    def keep(keeper: Keeper, block: int, got: I64) -> None:
        keeper.write(
            """INSERT OR REPLACE INTO recipient_blocks (block, format, n, stride, data)
               VALUES (?, ?, ?, ?, ?)""",
            (block, FORMAT, len(got), stride, got.astype("<i8").tobytes()),
        )

    def load(row: tuple[Any, ...]) -> I64 | None:
        return _load_recipients(row, stride)

    return blocks(conn, "recipient_blocks", pieces, query, load, read, keep)


def _load_recipients(row: tuple[Any, ...], stride: int) -> I64 | None:
    import numpy as np

    n, kept_stride, data = row
    if len(data) != 8 * int(n) or int(kept_stride) < 1:
        return None
    packed: I64 = np.frombuffer(bytes(data), dtype="<i8").astype(np.int64)
    if int(kept_stride) != stride:  # addresses were added since: pack again
        head, address = np.divmod(packed, int(kept_stride))
        if len(address) and int(address.max()) >= stride:
            return None
        packed = head * stride + address
    return packed
