"""Acting on a suggestion from the digest itself: action links that are mails to yourself.

keepwarm has no web server and reads headers only. So each digest item's actions (done, not now,
not useful, not a person, same person as...) are ``mailto:`` links to your own digest address,
whose **subject** is a keepwarm command with a short authentication tag::

    keepwarm: done maya@example.com reply_owed 2026-11-24 #6K2QH7TZ4WMB3XJD

The tag is an HMAC of the command with a secret made for this installation (a 0600 file beside
the database), so a mail with a forged From cannot steer keepwarm. When you send it, your
provider files it among your sent (and, addressed to you, your received) mail, which the
connectors already read; at the next sync :class:`ActionInbox` takes it out of the batch before
it is stored (it is never an interaction, a person or a relationship), checks it and records the
decision (daemon/decisions.py). Both copies, and the same link sent twice, apply once. A mail
that fails the check is recorded as rejected and the next digest says so.

"Same person as..." cannot know the other address in advance: its subject ends with
``as OTHER@EXAMPLE.COM`` after the tag, for you to replace before sending.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from urllib.parse import quote

from keepwarm.connectors.base import Batch, MessageMeta
from keepwarm.connectors.headers import ACTION_PREFIX, is_action_subject, normalize_address
from keepwarm.daemon import decisions
from keepwarm.daemon.config import Config
from keepwarm.daemon.identity import self_addresses
from keepwarm.daemon.store import Store
from keepwarm.digests.cadence.facts import Facts, MeetingFacts, OwedFacts
from keepwarm.digests.kinds import strip_prefixes
from keepwarm.digests.suggest import Suggestion

log = logging.getLogger(__name__)

KEY_BYTES = 32
TAG_CHARS = 16  # 80 bits of base32
PLACEHOLDER = "OTHER@EXAMPLE.COM"
SNOOZES: tuple[tuple[str, str, timedelta], ...] = (
    ("1w", "1 week", timedelta(weeks=1)),
    ("1mo", "1 month", timedelta(days=30)),
    ("3mo", "3 months", timedelta(days=91)),
)
_SNOOZE_SPANS = {code: span for code, _label, span in SNOOZES}
BODY = "Send this as it is: keepwarm applies the subject at its next sync."
MERGE_BODY = (
    "Replace OTHER@EXAMPLE.COM in the subject with their other address, then send: "
    "keepwarm applies it at its next sync."
)


# -- the secret ------------------------------------------------------------------------------------
def key_path(config: Config) -> Path:
    """The action key beside the database (it follows [store] path, one per store)."""
    db = config.store_path
    return db.with_name(db.stem + ".action-key")


def load_key(config: Config) -> bytes:
    """The installation's action key, created (0600, never replaced) on first use."""
    path = key_path(config)
    try:
        return bytes.fromhex(path.read_text(encoding="ascii").strip())
    except FileNotFoundError:
        pass
    except ValueError:
        raise ActionKeyError(
            f"{path} is damaged (not a hex key); delete it to make a new one "
            "(the action links of earlier digests then stop working)"
        ) from None
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it just now
        return bytes.fromhex(path.read_text(encoding="ascii").strip())
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(secrets.token_hex(KEY_BYTES) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    return bytes.fromhex(path.read_text(encoding="ascii").strip())


class ActionKeyError(Exception):
    """The action key cannot be read; the message says how to fix it."""


def tag(key: bytes, command: str) -> str:
    mac = hmac.new(key, b"keepwarm-action-v1\n" + command.encode("utf-8"), hashlib.sha256)
    return base64.b32encode(mac.digest()).decode("ascii")[:TAG_CHARS]


# -- commands --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Command:
    """One action: the words the tag covers, and (merge only) the address written after it."""

    verb: str
    person: str
    day: date
    kind: str | None = None  # done, dismiss
    span: str | None = None  # snooze: 1w | 1mo | 3mo
    other: str | None = None  # merge: the other address

    def words(self) -> str:
        """The part the tag covers (for an open merge, without the other address)."""
        parts = [self.verb, self.person]
        if self.verb in ("done", "dismiss"):
            parts.append(self.kind or "any")
        elif self.verb == "snooze":
            parts.append(self.span or "1mo")
        parts.append(self.day.isoformat())
        return " ".join(parts)

    def subject(self, key: bytes) -> str:
        text = f"{ACTION_PREFIX} {self.words()} #{tag(key, self.words())}"
        return text + (f" as {self.other or PLACEHOLDER}" if self.verb == "merge" else "")


class Rejected(Exception):
    """An action mail keepwarm will not apply; ``str()`` says why, for the digest."""


def parse(subject: str) -> tuple[Command, str]:
    """The command of an action subject and the tag it carries (unchecked)."""
    body, given, rest = _split(subject)
    verb, person, *args = body
    address = normalize_address(person)
    if address is None:
        raise Rejected("its subject names no valid address")
    try:
        day = date.fromisoformat(args[-1])
    except ValueError:
        raise Rejected("its subject has no valid date") from None
    return _command(verb, address, day, args[:-1], rest, body), given


def _split(subject: str) -> tuple[list[str], str, list[str]]:
    """An action subject's words before its tag (at least three), the tag, the words after it."""
    words = subject.split()
    if not words or words[0].lower() != ACTION_PREFIX:
        raise Rejected("its subject is not a keepwarm command")
    words = words[1:]
    hashes = [i for i, w in enumerate(words) if w.startswith("#")]
    if len(hashes) != 1:
        raise Rejected("its subject has no tag (it was not made by a digest)")
    at = hashes[0]
    body, given, rest = words[:at], words[at][1:], words[at + 1 :]
    if len(body) < 3:
        raise Rejected("its subject is incomplete")
    return body, given, rest


def _command(
    verb: str, address: str, day: date, middle: list[str], rest: list[str], body: list[str]
) -> Command:
    """The command a verb and its words make, or Rejected saying what is wrong."""
    if verb in ("done", "dismiss") and len(middle) == 1:
        kind = None if middle[0] == "any" else middle[0]
        if kind is not None and kind not in decisions.KINDS:
            raise Rejected(f'"{middle[0]}" is not a suggestion kind')
        return Command(verb, address, day, kind=kind)
    if verb == "snooze" and len(middle) == 1 and middle[0] in _SNOOZE_SPANS:
        return Command(verb, address, day, span=middle[0])
    if verb == "ignore" and not middle:
        return Command(verb, address, day)
    if verb == "merge" and not middle:
        return Command(verb, address, day, other=_merge_other(rest))
    raise Rejected(f'"{" ".join(body)}" is not a command keepwarm knows')


def _merge_other(rest: list[str]) -> str:
    """The other address of ``merge ... #tag as OTHER``."""
    other_words = rest[1:] if rest[:1] == ["as"] else []
    other = normalize_address(other_words[0]) if len(other_words) == 1 else None
    if other is None or other_words[0].upper() == PLACEHOLDER:
        raise Rejected("it has no other address after 'as' (replace OTHER@EXAMPLE.COM)")
    return other


# -- the links in the digest -----------------------------------------------------------------------
@dataclass(frozen=True)
class Link:
    label: str
    href: str


def mailto(to: str, subject: str, body: str | None = None) -> str:
    """A mailto: URL (RFC 6068): characters outside the unreserved and a few safe ones encoded."""
    safe = "@:,!$'()*+"
    query = f"subject={quote(subject, safe=safe)}"
    if body:
        query += f"&body={quote(body, safe=safe)}"
    return f"mailto:{quote(to, safe='@')}?{query}"


def links(s: Suggestion, key: bytes, to: str, day: date) -> tuple[Link, ...]:
    """The actions of one digest item, each a mailto: link (the reply link to the person)."""
    person = s.person_address or s.person_key

    def act(label: str, command: Command) -> Link:
        body = MERGE_BODY if command.verb == "merge" else BODY
        return Link(label, mailto(to, command.subject(key), body))

    out = [act("Done", Command("done", s.person_key, day, kind=s.kind))]
    out += [
        act(
            f"Not now: {label}" if i == 0 else label,
            Command("snooze", s.person_key, day, span=code),
        )
        for i, (code, label, _span) in enumerate(SNOOZES)
    ]
    out += [
        act("Not useful", Command("dismiss", s.person_key, day, kind=s.kind)),
        act("Not a person", Command("ignore", s.person_key, day)),
        act("Same person as…", Command("merge", s.person_key, day)),
    ]
    subject = _thread_subject(s.facts)
    reply = f"Re: {strip_prefixes(subject)}" if subject else ""
    out.append(
        Link("Reply", mailto(person, reply) if reply else f"mailto:{quote(person, safe='@')}")
    )
    return tuple(out)


def _thread_subject(facts: Facts) -> str | None:
    """What a reply to the person is about: the thread owed an answer, or the meeting."""
    if isinstance(facts, OwedFacts):
        return facts.subject
    if isinstance(facts, MeetingFacts):
        return facts.title
    return None


def digest_links(
    config: Config, suggestions: Sequence[Suggestion], day: date
) -> tuple[tuple[Link, ...], ...]:
    """Links for each suggestion, in order; none when the action key cannot be read."""
    try:
        key = load_key(config)
    except (ActionKeyError, OSError) as exc:
        log.warning("digest without action links: %s", exc)
        return tuple(() for _ in suggestions)
    return tuple(links(s, key, config.digest_to, day) for s in suggestions)


# -- reading them back at sync ---------------------------------------------------------------------
class ActionInbox:
    """Takes action mails out of each batch before it is stored, and applies them."""

    def __init__(self, config: Config, store: Store) -> None:
        self.config = config
        self.store = store
        self.mine = self_addresses(config) | {config.digest_to}
        self._key: bytes | None = None
        self.applied = 0
        self.rejected = 0

    def key(self) -> bytes:
        if self._key is None:
            self._key = load_key(self.config)
        return self._key

    def __call__(self, batch: Batch) -> None:
        if not any(is_action_subject(m.subject) for m in batch.messages):
            return
        keep: list[MessageMeta] = []
        for m in batch.messages:
            if is_action_subject(m.subject):
                self.take(m)
            else:
                keep.append(m)
        batch.messages[:] = keep

    def take(self, m: MessageMeta) -> None:
        assert m.subject is not None
        ref = m.message_id or f"{m.account}/{m.provider_id}"
        try:
            command, given = parse(m.subject)
            if m.sender is None or m.sender.email not in self.mine:
                raise Rejected("it was not sent from one of your addresses")
            if not hmac.compare_digest(given.upper(), tag(self.key(), command.words())):
                raise Rejected(
                    "its tag does not match (forged, or changed after the digest made it)"
                )
        except Rejected as exc:
            self._reject(m, ref, str(exc))
            return
        except ActionKeyError as exc:
            log.error("action mail not applied: %s", exc)
            return
        until = m.date + _SNOOZE_SPANS[command.span] if command.span else None
        mail_key = f"{command.words()} #{given.upper()}" + (
            f" as {command.other}" if command.other else ""
        )
        d = decisions.record(
            self.store,
            command.verb,
            command.person,
            at=m.date,
            other=command.other,
            kind=command.kind,
            until=until,
            source="mail",
            mail_key=mail_key,
        )
        if d is not None:
            self.applied += 1
            log.info("applied an action mail from the digest: %s (#%d)", command.verb, d.id)

    def _reject(self, m: MessageMeta, ref: str, reason: str) -> None:
        words = m.subject.split() if m.subject else []
        verb = words[1] if len(words) > 1 else "?"
        person = normalize_address(words[2]) if len(words) > 2 else None
        d = decisions.record(
            self.store,
            verb[:20],
            person or "",
            at=m.date,
            source="mail",
            mail_key=f"rejected {ref}",
            state="rejected",
            reason=reason,
        )
        if d is not None:
            self.rejected += 1
            log.warning("an action mail was not applied (#%d): %s", d.id, reason)
