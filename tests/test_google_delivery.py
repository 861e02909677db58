"""The digest delivered through the Gmail API ([delivery] method = "gmail") against the emulator."""

from __future__ import annotations

import json
from collections.abc import Iterator
from email import message_from_bytes
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from digest_fixtures import NOW, builder, config
from fakes.google_api import CALENDAR_READONLY, GMAIL_METADATA, GMAIL_SEND, GoogleEmulator
from fakes.google_world import write_token
from leakcheck import close_after_test

from keepwarm.daemon.digest_job import chosen_delivery, make_delivery, run_digest
from keepwarm.daemon.gmail_delivery import GmailDelivery
from keepwarm.daemon.store import Store
from keepwarm.digests.deliver import DeliveryError


@pytest.fixture
def emu() -> Iterator[GoogleEmulator]:
    with GoogleEmulator(address="jane@example.com") as e:
        yield e
        e.check()


def gmail_config(tmp: Path, emu: GoogleEmulator, scopes: tuple[str, ...]) -> Any:
    token = write_token(emu, tmp / "google.json", scopes)
    return config(
        tmp,
        f"""method = "gmail"
account = "mail"

[[accounts]]
name = "mail"
kind = "gmail"
token_file = "{token}"
api_endpoint = "{emu.api_endpoint}"
token_uri = "{emu.token_uri}"
timeout = "5s"
""",
    )


def test_digest_is_sent_once_through_gmail(tmp_path: Path, emu: GoogleEmulator) -> None:
    cfg = gmail_config(tmp_path, emu, (GMAIL_METADATA, CALENDAR_READONLY, GMAIL_SEND))
    with chosen_delivery(cfg, None) as delivery:
        assert isinstance(delivery, GmailDelivery)
    store = Store.open(tmp_path / "kw.db")
    try:
        out = run_digest(cfg, store, now=NOW, report_builder=builder(), sleep=lambda s: None)
        assert out.state == "sent", out.error
        again = run_digest(cfg, store, now=NOW, report_builder=builder(), sleep=lambda s: None)
        assert again.state == "already_sent"
    finally:
        store.close()
    assert len(emu.mailbox.sent_raw) == 1
    sent = message_from_bytes(emu.mailbox.sent_raw[0])
    assert sent["X-Keepwarm-Digest"] == "1" and sent["Auto-Submitted"] == "auto-generated"
    assert sent["To"] == "jane@example.com" and sent.is_multipart()
    assert emu.calls["gmail.users.messages.send"] == 1


def _message() -> EmailMessage:
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = "jane@example.com", "jane@example.com", "digest"
    m.set_content("hello")
    return m


def _deliver(cfg: Any) -> None:
    with chosen_delivery(cfg, None) as delivery:
        delivery.deliver(_message(), local_date=NOW.date(), html="", before_data=lambda: None)


def test_token_without_gmail_send_asks_to_authorise_again(
    tmp_path: Path, emu: GoogleEmulator
) -> None:
    cfg = gmail_config(tmp_path, emu, (GMAIL_METADATA,))
    with pytest.raises(DeliveryError) as exc:
        _deliver(cfg)
    assert not exc.value.transient and "keepwarm auth google mail" in str(exc.value)
    assert not emu.mailbox.sent_raw


def test_busy_gmail_is_transient_and_not_sent(tmp_path: Path, emu: GoogleEmulator) -> None:
    cfg = gmail_config(tmp_path, emu, (GMAIL_METADATA, GMAIL_SEND))
    tok = json.loads((tmp_path / "google.json").read_text())
    assert tok["refresh_token"]
    emu.fail_next(1, "503")
    with pytest.raises(DeliveryError) as exc:
        _deliver(cfg)
    assert exc.value.transient and not exc.value.maybe_sent
    assert emu.calls["gmail.users.messages.send"] == 0


def test_dropped_connection_while_sending_is_maybe_sent(
    tmp_path: Path, emu: GoogleEmulator
) -> None:
    cfg = gmail_config(tmp_path, emu, (GMAIL_METADATA, GMAIL_SEND))
    delivery = close_after_test(make_delivery(cfg))
    assert isinstance(delivery, GmailDelivery)
    _ = delivery.client.creds
    delivery.client.http().credentials.refresh(
        __import__("google_auth_httplib2").Request(delivery.client.http().http)
    )
    emu.fail_next(2, "drop")  # httplib2 itself tries a dropped request twice
    with pytest.raises(DeliveryError) as exc:
        delivery.deliver(_message(), local_date=NOW.date(), html="", before_data=lambda: None)
    assert exc.value.transient and exc.value.maybe_sent
    assert not emu.mailbox.sent_raw


def test_gmail_api_not_enabled_names_the_console_page(tmp_path: Path, emu: GoogleEmulator) -> None:
    cfg = gmail_config(tmp_path, emu, (GMAIL_METADATA, GMAIL_SEND))
    emu.disabled_apis.add("gmail")
    with pytest.raises(DeliveryError) as exc:
        _deliver(cfg)
    assert not exc.value.transient and not emu.mailbox.sent_raw
    assert "Gmail API is not enabled" in str(exc.value)
    assert "https://console.cloud.google.com/apis/library/gmail.googleapis.com" in str(exc.value)
