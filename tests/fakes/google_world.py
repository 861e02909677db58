"""Wiring for tests: a token file for the emulator and connectors pointed at it."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from fakes.google_api import CALENDAR_READONLY, GMAIL_METADATA, GoogleEmulator
from keepwarm.connectors.google.calendar import CalendarOptions, GoogleCalendarConnector
from keepwarm.connectors.google.client import ClientSettings, GoogleClient
from keepwarm.connectors.google.gmail import GmailConnector, GmailSettings
from keepwarm.connectors.google.quota import Limits, RetryPolicy, TokenBucket


def write_token(
    emu: GoogleEmulator, path: Path, scopes: tuple[str, ...] = (GMAIL_METADATA, CALENDAR_READONLY)
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(emu.authorized_user_info(scopes), fh)
    return path


def write_config(tmp: Path, emu: GoogleEmulator, *, delivery: str = "file") -> Path:
    """A config with a gmail account "mail" and a gcal account "cal" sharing one token file."""
    secrets = tmp / "client.json"
    secrets.write_text(json.dumps(emu.client_config()))
    cfg = tmp / "config.toml"
    extra = '\n[delivery]\nmethod = "gmail"\naccount = "mail"\n' if delivery == "gmail" else ""
    cfg.write_text(
        f"""
[me]
name = "Me"
addresses = ["me@example.com"]
timezone = "UTC"

[store]
path = "{tmp / "kw.db"}"

[[accounts]]
name = "mail"
kind = "gmail"
client_secrets = "{secrets}"
token_file = "{tmp / "google.json"}"
api_endpoint = "{emu.api_endpoint}"
token_uri = "{emu.token_uri}"

[[accounts]]
name = "cal"
kind = "gcal"
token_file = "{tmp / "google.json"}"
api_endpoint = "{emu.api_endpoint}"
token_uri = "{emu.token_uri}"
{extra}"""
    )
    return cfg


def fast_retry(attempts: int = 4) -> RetryPolicy:
    return RetryPolicy(attempts=attempts, base=0.01, cap=0.05)


def client_for(
    emu: GoogleEmulator,
    token: Path,
    account: str,
    *,
    scopes: tuple[str, ...],
    units_per_minute: float = 10_000_000,
    concurrency: int = 4,
    timeout: float = 5.0,
    retry: RetryPolicy | None = None,
) -> GoogleClient:
    settings = ClientSettings(
        account=account,
        token_path=token,
        scopes=scopes,
        api_endpoint=emu.api_endpoint,
        token_uri=emu.token_uri,
        timeout=timeout,
        retry=retry or fast_retry(),
    )
    return GoogleClient(settings, Limits(TokenBucket(units_per_minute), concurrency))


def gmail_connector(
    emu: GoogleEmulator, token: Path, account: str = "gm", **opts: Any
) -> GmailConnector:
    client_opts = {
        k: opts.pop(k) for k in ("units_per_minute", "timeout", "retry", "concurrency") if k in opts
    }
    client = client_for(emu, token, account, scopes=(GMAIL_METADATA,), **client_opts)
    return GmailConnector(account, client, GmailSettings(**opts))


def calendar_connector(
    emu: GoogleEmulator, token: Path, account: str = "cal", **opts: Any
) -> GoogleCalendarConnector:
    client_opts = {k: opts.pop(k) for k in ("timeout", "retry") if k in opts}
    client = client_for(emu, token, account, scopes=(CALENDAR_READONLY,), **client_opts)
    return GoogleCalendarConnector(account, client, CalendarOptions(**opts))


class GoogleFaults:
    """What the contract suite (tests/contract.py) does to any Google source: revoke the sign-in,
    fail transiently, heal. Mixed into each Google World; ``emu`` is the emulator."""

    emu: GoogleEmulator

    def break_auth(self) -> None:
        self.emu.revoke_all()

    def fail_transiently(self) -> None:
        self.emu.fail_next(40, "503")

    def heal(self) -> None:
        self.emu.heal()
        self.emu.unrevoke_all()
