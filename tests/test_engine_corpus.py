"""The engine on the real Enron maildir samples: each user's top 20 are people, not lists or robots."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from leakcheck import close_after_test

from keepwarm.connectors.base import Batch, MessageMeta
from keepwarm.connectors.headers import header_block, message_from_headers, parse_header_block
from keepwarm.daemon import config as cfgmod
from keepwarm.daemon.identity import resolve, robot_word
from keepwarm.daemon.network import build_report
from keepwarm.daemon.store import Store

USERS = ("allen-p", "carson-m", "guzman-m", "motley-m", "rapp-b", "stokley-c", "whalley-g")


def _messages(root: Path, user: str) -> list[MessageMeta]:
    out: list[MessageMeta] = []
    for path in sorted((root / user).rglob("*")):
        if not path.is_file():
            continue
        headers = parse_header_block(header_block(path.read_bytes()))
        folder = str(path.parent.relative_to(root / user))
        rec = message_from_headers(
            headers, account=user, provider_id=str(path.relative_to(root)), folder=folder
        )
        if isinstance(rec, MessageMeta):
            out.append(rec)
    return out


def _self_addresses(msgs: list[MessageMeta]) -> list[str]:
    """The user's addresses: senders of the messages in their sent folders."""
    counts: dict[str, int] = {}
    for m in msgs:
        if m.sender and "sent" in (m.folder or "").rsplit("/", 1)[-1]:
            counts[m.sender.email] = counts.get(m.sender.email, 0) + 1
    top = max(counts.values())
    return sorted(a for a, n in counts.items() if n * 10 >= top)  # ignore stray forwards


@pytest.mark.corpus
@pytest.mark.parametrize("user", USERS)
def test_enron_top_20_are_people(shared_data: Path, tmp_path: Path, user: str) -> None:
    msgs = _messages(shared_data / "enron-maildir-sample", user)
    me = _self_addresses(msgs)
    store = close_after_test(Store.memory())
    store.apply_batch(user, "maildir", Batch(messages=msgs))
    quoted = ", ".join(f'"{a}"' for a in me)
    config = cfgmod.loads(
        f'[me]\nname = "{user}"\naddresses = [{quoted}]\ntimezone = "America/Chicago"\n'
        f'[store]\npath = "{tmp_path / "kw.db"}"\n'
    )
    now = max(m.date for m in msgs) + timedelta(days=1)
    identity = resolve(store, config, now)
    report = build_report(config, store, now, identity=identity)
    top = [p for p in report.people if p.strength > 0][:20]
    assert len(top) >= 5, f"{user}: too few ties found"
    for p in top:
        person = identity.people[p.key]
        assert person.kind == "person", (user, p.key, person.kind)
        assert not any(robot_word(a) for a in p.addresses), (user, p.key)
    # strongest first, and the user is never among their own people
    assert [p.strength for p in report.people] == sorted(
        (p.strength for p in report.people), reverse=True
    )
    assert not set(me) & {a for p in report.people for a in p.addresses}
