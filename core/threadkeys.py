"""A message's threading keys as integers, worked out once when it is stored.

The engine threads mail by comparing keys: the Message-ID, In-Reply-To, the first and last
References entries, the provider's thread id and the normalized subject. It only ever asks
whether two are equal, so each is kept as a 64-bit hash: the store writes them beside the texts
(``messages.k_*``) and the engine reads a million of them as numbers, with no Python string per
message (:mod:`keepwarm.daemon.store.history`). Records held in memory (tests) hash the same way.

The hash is BLAKE2b cut to 8 bytes: the same in every process and on every machine (Python's
``hash()`` is salted per process, so it cannot be stored). 0 means "no key"; a text whose hash
is 0 is given 1.
"""

from __future__ import annotations

from hashlib import blake2b

# The stored columns, in the order of :func:`thread_keys`.
COLUMNS = (
    "k_message_id",
    "k_in_reply_to",
    "k_ref_first",
    "k_ref_last",
    "k_thread_hint",
    "k_subject",
)


def _hash(data: bytes) -> int:
    h = int.from_bytes(blake2b(data, digest_size=8).digest(), "little", signed=True)
    return h or 1


def key_of(text: str | None) -> int:
    """The key of ``text``: 0 when there is none (None or empty)."""
    return _hash(text.encode("utf-8", "surrogatepass")) if text else 0


def reference_keys(refs: str | None) -> tuple[int, int]:
    """The keys of the first and the last entries of a stored References string (space
    separated): the root joins the thread, the parent pins the branch. The last is 0 when it is
    the first."""
    parts = refs.encode("utf-8", "surrogatepass").split() if refs else []
    if not parts:
        return 0, 0
    first = _hash(parts[0])
    return first, (_hash(parts[-1]) if parts[-1] != parts[0] else 0)


def thread_keys(
    message_id: str | None,
    in_reply_to: str | None,
    refs: str | None,
    thread_hint: str | None,
    norm_subject: str | None,
) -> tuple[int, int, int, int, int, int]:
    """The six keys of a message, in the order of :data:`COLUMNS`."""
    first, last = reference_keys(refs)
    return (
        key_of(message_id),
        key_of(in_reply_to),
        first,
        last,
        key_of(thread_hint),
        key_of(norm_subject),
    )
