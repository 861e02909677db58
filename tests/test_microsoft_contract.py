"""The shared connector contract, run against the Graph + identity emulator through real msal."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
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


class MicrosoftCalendarWorld(MicrosoftWorld):
    """The same account over its calendar: events added, moved and deleted in Outlook."""

    def __init__(self, emu: GraphEmulator, token_path: Path) -> None:
        super().__init__(emu, token_path)
        self.events: list[str] = []

    def add_messages(self, n: int) -> None:
        now = datetime.now(UTC).replace(microsecond=0)
        for _ in range(n):
            self.events.append(
                self.emu.add_event(
                    start=now - timedelta(days=1 + len(self.events)),
                    attendees=[(self.emu.user, "accepted", "required")],
                )
            )

    def _uid(self, eid: str) -> str:
        return str(self.emu.events[eid]["iCalUId"])

    def delete_one(self) -> str:
        eid = self.events.pop(0)
        uid = self._uid(eid)
        self.emu.delete_event(eid)
        return uid

    def change_one(self) -> tuple[str, datetime]:
        eid = self.events[-1]
        start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=40)
        self.emu.update_event(
            eid,
            subject="Moved",
            start={"dateTime": start.strftime("%Y-%m-%dT%H:%M:%S.0000000"), "timeZone": "UTC"},
            end={
                "dateTime": (start + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.0000000"),
                "timeZone": "UTC",
            },
        )
        return self._uid(eid), start

    def expected_ids(self) -> set[str]:
        return {self._uid(e) for e in self.events}


class TestMicrosoftCalendarContract(ConnectorContract):
    records = "events"

    @pytest.fixture
    def world(self, tmp_path: Path) -> Iterator[MicrosoftCalendarWorld]:
        with GraphEmulator() as emu:
            yield MicrosoftCalendarWorld(emu, tmp_path / "tokens" / "office.json")
