"""Shared helpers for the Microsoft connector tests and benchmark: sign-in and a contract World."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from fakes.graph_api import GraphEmulator

from keepwarm.connectors.microsoft.account import (
    MicrosoftConnector,
    Options,
    make_auth,
    make_client,
)
from keepwarm.connectors.microsoft.auth import MicrosoftAuth

ACCOUNT = "office"


def auth_for(
    emu: GraphEmulator,
    token_path: Path,
    *,
    mail: bool = True,
    calendar: bool = True,
    send: bool = False,
    contacts: bool = False,
    client_id: str | None = None,
) -> MicrosoftAuth:
    return make_auth(
        account=ACCOUNT,
        client_id=client_id or emu.client_id,
        tenant=emu.tenant,
        token_path=token_path,
        mail=mail,
        calendar=calendar,
        send=send,
        contacts=contacts,
        authority_host=emu.url,
        timeout=timedelta(seconds=5),
    )


def sign_in(emu: GraphEmulator, token_path: Path, **kw: bool) -> str:
    """Run the real msal device-code flow against the emulator, approved at once."""
    emu.auto_approve = True
    with auth_for(emu, token_path, **kw) as auth:
        flow = auth.start_device_flow()
        return auth.finish_device_flow(flow)


def connector_for(
    emu: GraphEmulator,
    token_path: Path,
    *,
    page_size: int = 500,
    calendar: bool = True,
    timeout: float = 5.0,
    backfill: timedelta = timedelta(days=3 * 365),
    now: datetime | None = None,
) -> MicrosoftConnector:
    auth = auth_for(emu, token_path, calendar=calendar)
    client = make_client(
        auth,
        graph_endpoint=emu.graph_endpoint,
        timeout=timedelta(seconds=timeout),
        backoff_base=0.001,
    )
    client.max_attempts = 8
    options = Options(
        calendar=calendar,
        page_size=page_size,
        backfill=backfill,
        me=(emu.user,),
    )
    if now is None:
        return MicrosoftConnector(ACCOUNT, client, options)
    return MicrosoftConnector(ACCOUNT, client, options, now=lambda: now)


class MicrosoftWorld:
    """The contract suite's handle on the emulator (tests/contract.py World)."""

    account = ACCOUNT
    kind = "microsoft"

    def __init__(self, emu: GraphEmulator, token_path: Path) -> None:
        self.emu = emu
        self.token_path = token_path
        self.user_folder = emu.create_folder("Projects", "inbox")
        sign_in(emu, token_path)
        self.added: list[str] = []

    def connector(self) -> MicrosoftConnector:
        return connector_for(self.emu, self.token_path, page_size=4)

    def add_messages(self, n: int) -> None:
        folders = ["inbox", "sentitems", self.user_folder]
        now = datetime.now(UTC)
        for i in range(n):
            folder = folders[len(self.added) % 3]
            self.added.append(
                self.emu.add_message(
                    folder,
                    sender=self.emu.user
                    if folder == "sentitems"
                    else f"p{len(self.added)}@example.org",
                    to=[f"p{len(self.added)}@example.org"]
                    if folder == "sentitems"
                    else [self.emu.user],
                    sent=now - timedelta(days=i + 1, minutes=len(self.added)),
                )
            )

    def delete_one(self) -> str:
        with self.emu.lock:
            mid = next(m for m in self.added if m in self.emu.messages)
            msgid = str(self.emu.messages[mid]["internetMessageId"]).strip("<>")
        self.emu.delete_message(mid)
        return msgid

    def expected_ids(self) -> set[str]:
        return self.emu.expected_message_ids()

    def expire_cursor(self) -> None:
        self.emu.expire_tokens()

    def break_auth(self) -> None:
        self.emu.auth_broken = True

    def fail_transiently(self) -> None:
        self.emu.force(*(["503"] * 40))

    def heal(self) -> None:
        self.emu.heal()
