"""The shared connector contract, run against the Graph + identity emulator through real msal."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from contract import ConnectorContract
from fakes.graph_api import GraphEmulator
from ms_world import MicrosoftWorld


class TestMicrosoftContract(ConnectorContract):
    @pytest.fixture
    def world(self, tmp_path: Path) -> Iterator[MicrosoftWorld]:
        with GraphEmulator() as emu:
            yield MicrosoftWorld(emu, tmp_path / "tokens" / "office.json")
