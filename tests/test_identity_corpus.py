"""Every mailing list in the SpamAssassin ham corpus is classified as a list."""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

import pytest
from leakcheck import close_after_test

from keepwarm.connectors.base import Batch, MessageMeta
from keepwarm.connectors.headers import header_block, message_from_headers, parse_header_block
from keepwarm.daemon.config import loads
from keepwarm.daemon.identity import resolve
from keepwarm.daemon.store import Store

pytestmark = pytest.mark.corpus

# The corpus owner's address, obfuscated by the SpamAssassin corpus maintainers.
OWNER = "zzzz@spamassassin.taint.org"


def _messages(root: Path) -> list[MessageMeta]:
    out: list[MessageMeta] = []
    for folder in ("easy_ham", "hard_ham"):
        for path in sorted((root / folder).iterdir()):
            headers = parse_header_block(header_block(path.read_bytes()))
            rec = message_from_headers(headers, account="sa", provider_id=f"{folder}/{path.name}")
            if isinstance(rec, MessageMeta):
                out.append(rec)
    return out


def test_every_spamassassin_list_is_a_list(shared_data: Path) -> None:
    messages = _messages(shared_data / "spamassassin-ham")
    store = close_after_test(Store.memory())
    store.apply_batch("sa", "maildir", Batch(messages=messages))
    config = loads(f'[me]\nname = "Owner"\naddresses = ["{OWNER}"]\ntimezone = "UTC"\n')
    ident = resolve(store, config)

    recipients: dict[str, Counter[str]] = defaultdict(Counter)
    senders: dict[str, set[str]] = defaultdict(set)
    for m in messages:
        if m.list_id:
            recipients[m.list_id].update(a.email for a in (*m.to, *m.cc) if a.email != OWNER)
            if m.sender:
                senders[m.list_id].add(m.sender.email)
    assert len(recipients) >= 15
    wrong = []
    for list_id, counts in recipients.items():
        top = counts.most_common(1)[0][1]
        for address, n in counts.items():
            if n == top:  # the list's own address: where its mail goes
                person = ident.people[ident.person_of[address]]
                if person.kind != "list":
                    wrong.append((list_id, address, person.kind, person.reasons))
    assert not wrong
    # nobody who only ever wrote to a list is a relationship
    for list_id, who in senders.items():
        for address in who:
            p = ident.people[ident.person_of[address]]
            assert not (p.kind == "person" and p.two_way and p.key != OWNER), (list_id, address)
