"""The reference connector passes the contract, and a kind registered with one line works from
the config to doctor (CONTRIBUTING.md, "Adding a connector")."""

from __future__ import annotations

import pytest
import reference_connector as ref
from contract import ConnectorContract

from keepwarm.connectors import registry
from keepwarm.connectors.base import Connector
from keepwarm.connectors.registry import Context
from keepwarm.daemon import config as cfgmod
from keepwarm.daemon import doctor
from keepwarm.daemon.accounts import make_connector


class MemoryWorld:
    kind = "memory"

    def __init__(self, name: str) -> None:
        self.account, self.n = name, 0
        self.source = ref.SOURCES[name] = ref.Source()

    def connector(self) -> Connector:
        return ref.build(ref.MemoryOptions(source=self.account), Context(self.account))

    def add_messages(self, n: int) -> None:
        for _ in range(n):
            self.n += 1
            self.source.log.append(("add", f"m-{self.n}@example.com"))

    def delete_one(self) -> str:
        gone = sorted(self.expected_ids())[0]
        self.source.log.append(("del", gone))
        return gone

    def expected_ids(self) -> set[str]:
        present: set[str] = set()
        for op, mid in self.source.log:
            (present.add if op == "add" else present.discard)(mid)
        return present

    def expire_cursor(self) -> None:
        self.source.epoch += 1

    def break_auth(self) -> None:
        self.source.failure = "auth"

    def fail_transiently(self) -> None:
        self.source.failure = "transient"

    def heal(self) -> None:
        self.source.failure = None


class TestReferenceContract(ConnectorContract):
    @pytest.fixture
    def world(self, request: pytest.FixtureRequest) -> MemoryWorld:
        return MemoryWorld(f"mem-{request.node.name}"[:60])


def test_one_registry_line_makes_a_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(registry.KINDS, "memory", "reference_connector:MEMORY")
    config = cfgmod.loads(
        '[me]\nname = "M"\naddresses = ["me@example.com"]\ntimezone = "UTC"\n'
        '[[accounts]]\nname = "mem"\nkind = "memory"\nsource = "demo"\n'
    )
    account = config.account("mem")
    assert account.options == ref.MemoryOptions(source="demo", batch_size=5)
    assert isinstance(make_connector(account, config), ref.MemoryConnector)
    assert doctor.check_source(account, config, 1).ok
    with pytest.raises(cfgmod.ConfigError, match="batch_size"):
        cfgmod.loads(
            '[me]\nname = "M"\naddresses = ["me@example.com"]\ntimezone = "UTC"\n'
            '[[accounts]]\nname = "mem"\nkind = "memory"\nsource = "d"\nbatch_size = 0\n'
        )
