from __future__ import annotations

import email
import os
import stat
from datetime import UTC, date, datetime, timedelta
from email import policy
from pathlib import Path
from typing import Any

import pytest
from digest_fixtures import NOW, builder, config
from fakes.smtp import PASSWORD, USER, free_port, smtp_server

from keepwarm.connectors.headers import automation_markers
from keepwarm.daemon import digest_job
from keepwarm.daemon.digest_job import ledger_row, run_digest
from keepwarm.daemon.store import Store
from keepwarm.digests.deliver import DeliveryError, FileOutbox

NO_SLEEP: dict[str, Any] = {"sleep": lambda s: None}


def _smtp_config(tmp_path: Path, port: int, ca_file: Path, security: str = "starttls") -> Any:
    return config(
        tmp_path,
        f"""method = "smtp"
[delivery.smtp]
host = "127.0.0.1"
port = {port}
security = "{security}"
username = "{USER}"
password_env = "KW_TEST_SMTP_PASSWORD"
timeout = "10s"
ca_file = "{ca_file}"
""",
    )


@pytest.fixture
def store(tmp_path: Path) -> Any:
    s = Store.open(tmp_path / "kw.db")
    yield s
    s.close()


@pytest.fixture(autouse=True)
def _password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KW_TEST_SMTP_PASSWORD", PASSWORD)


def _run(cfg: Any, store: Store, **kw: Any) -> Any:
    return run_digest(cfg, store, now=NOW, report_builder=builder(), **{**NO_SLEEP, **kw})


def test_starttls_auth_delivery_has_the_right_mime_and_headers(
    tmp_path: Path, store: Store
) -> None:
    with smtp_server(tmp_path) as srv:
        cfg = _smtp_config(tmp_path, srv.port, srv.ca_file)
        outcome = _run(cfg, store)
        assert outcome.state == "sent", outcome.error
        assert len(srv.handler.received) == 1
        env = srv.handler.received[0]
    assert env.mail_from == "jane@example.com" and env.rcpt_tos == ["jane@example.com"]
    msg = email.message_from_bytes(env.content, policy=policy.default)
    assert msg.get_content_type() == "multipart/alternative"
    parts = [p.get_content_type() for p in msg.iter_parts()]
    assert parts == ["text/plain", "text/html"]
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    assert "Reply to Maria's 'Budget review' (waiting 4 days)" in text
    assert "Reply to Maria&#39;s &#39;Budget review&#39;" in html
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["X-Keepwarm-Digest"] == "1"
    assert msg["Subject"] == outcome.subject and "keepwarm, Tue 24 Nov" in msg["Subject"]
    assert msg["Message-ID"].startswith("<digest.2026-11-24.")
    assert "Jane Doe (keepwarm)" in msg["From"]
    # A digest read back by any connector is marked, so identity/engine never count it.
    headers = {k.lower(): [str(v) for v in msg.get_all(k)] for k in msg}
    assert "keepwarm-digest" in automation_markers(headers)
    row = ledger_row(store, outcome.local_date)
    assert row is not None and row.state == "sent" and row.method == "smtp" and row.attempts == 1
    shown = store.conn.execute("SELECT COUNT(*) FROM suggestions_shown").fetchone()[0]
    assert shown == len(outcome.suggestions) + sum(1 for s in outcome.suggestions if s.other_key)


def test_implicit_tls_delivery(tmp_path: Path, store: Store) -> None:
    with smtp_server(tmp_path, implicit_tls=True) as srv:
        outcome = _run(_smtp_config(tmp_path, srv.port, srv.ca_file, "tls"), store)
        assert outcome.state == "sent", outcome.error
        assert len(srv.handler.received) == 1


def test_sending_twice_on_one_day_sends_once(tmp_path: Path, store: Store) -> None:
    with smtp_server(tmp_path) as srv:
        cfg = _smtp_config(tmp_path, srv.port, srv.ca_file)
        assert _run(cfg, store).state == "sent"
        later = run_digest(
            cfg, store, now=NOW + timedelta(hours=10), report_builder=builder(), **NO_SLEEP
        )
        assert later.state == "already_sent"
        assert len(srv.handler.received) == 1
        forced = _run(cfg, store, force=True)
        assert forced.state == "sent" and len(srv.handler.received) == 2
        ids = {e.content.split(b"Message-ID: ")[1].split(b"\r\n")[0] for e in srv.handler.received}
        assert len(ids) == 2  # a deliberate resend is a new message


class Crash(BaseException):
    """Stands in for the process dying (SIGKILL, power loss)."""


def test_crash_between_send_and_record_does_not_send_twice(
    tmp_path: Path, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_record = digest_job.record_ledger

    def dying_record(store_: Store, local_date: Any, **values: Any) -> None:
        if values.get("state") == "sent":
            raise Crash()
        real_record(store_, local_date, **values)

    with smtp_server(tmp_path) as srv:
        cfg = _smtp_config(tmp_path, srv.port, srv.ca_file)
        monkeypatch.setattr(digest_job, "record_ledger", dying_record)
        with pytest.raises(Crash):
            _run(cfg, store)
        assert len(srv.handler.received) == 1
        monkeypatch.setattr(digest_job, "record_ledger", real_record)
        again = _run(cfg, store)
        assert again.state == "already_sent"
        assert again.error and "unconfirmed" in again.error
        assert len(srv.handler.received) == 1
    row = ledger_row(store, NOW.date())
    assert row is not None and row.state == "sent"


def test_crash_before_the_handover_sends_on_restart(
    tmp_path: Path, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    with smtp_server(tmp_path) as srv:
        cfg = _smtp_config(tmp_path, srv.port, srv.ca_file)
        original = digest_job.SmtpDelivery._connect

        def die(self: Any) -> Any:
            raise Crash()

        monkeypatch.setattr(digest_job.SmtpDelivery, "_connect", die)
        with pytest.raises(Crash):
            _run(cfg, store)
        assert ledger_row(store, NOW.date()).state == "intent"  # type: ignore[union-attr]
        monkeypatch.setattr(digest_job.SmtpDelivery, "_connect", original)
        assert _run(cfg, store).state == "sent"
        assert _run(cfg, store).state == "already_sent"
        assert len(srv.handler.received) == 1


def test_server_down_is_transient_and_retried_with_backoff(tmp_path: Path, store: Store) -> None:
    cfg = _smtp_config(tmp_path, free_port(), tmp_path / "none.pem")
    (tmp_path / "none.pem").write_text("")
    slept: list[float] = []
    outcome = run_digest(
        cfg, store, now=NOW, report_builder=builder(), sleep=slept.append, retry_delays=(1, 2)
    )
    assert outcome.state == "failed" and outcome.transient
    assert "connection refused" in (outcome.error or "")
    assert slept == [1, 2]
    row = ledger_row(store, NOW.date())
    assert row is not None and row.state == "failed" and row.attempts == 3


def test_auth_refused_is_permanent_with_a_clear_error(
    tmp_path: Path, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KW_TEST_SMTP_PASSWORD", "wrong")
    with smtp_server(tmp_path) as srv:
        outcome = _run(_smtp_config(tmp_path, srv.port, srv.ca_file), store)
        assert srv.handler.received == []
    assert outcome.state == "failed" and not outcome.transient
    assert "rejected the login" in (outcome.error or "") and "535" in (outcome.error or "")
    assert ledger_row(store, NOW.date()).state == "failed"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("reply", "transient", "attempts"),
    [("451 4.3.0 Try again later", True, 3), ("554 5.7.1 Rejected as spam", False, 1)],
)
def test_4xx_and_5xx_answers(
    tmp_path: Path, store: Store, reply: str, transient: bool, attempts: int
) -> None:
    with smtp_server(tmp_path) as srv:
        srv.handler.reply_to_data = reply
        cfg = _smtp_config(tmp_path, srv.port, srv.ca_file)
        outcome = run_digest(
            cfg, store, now=NOW, report_builder=builder(), sleep=lambda s: None, retry_delays=(1, 1)
        )
        assert outcome.state == "failed" and outcome.transient is transient
        assert reply.split()[0] in (outcome.error or "")
        row = ledger_row(store, NOW.date())
        assert row is not None and row.attempts == attempts
        # The server recovers: the next run delivers exactly one digest.
        srv.handler.reply_to_data = None
        assert _run(cfg, store).state == "sent"
        assert _run(cfg, store).state == "already_sent"
        assert len(srv.handler.received) == 1


def test_untrusted_certificate_is_permanent(tmp_path: Path, store: Store) -> None:
    with smtp_server(tmp_path) as srv:
        other = tmp_path / "other"
        other.mkdir()
        with smtp_server(other) as _unused:
            cfg = _smtp_config(tmp_path, srv.port, other / "test-ca.pem")
            outcome = _run(cfg, store)
    assert outcome.state == "failed" and not outcome.transient
    assert "not trusted" in (outcome.error or "") and "ca_file" in (outcome.error or "")


def test_missing_password_env_is_a_clear_permanent_error(
    tmp_path: Path, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KW_TEST_SMTP_PASSWORD")
    with smtp_server(tmp_path) as srv:
        outcome = _run(_smtp_config(tmp_path, srv.port, srv.ca_file), store)
    assert outcome.state == "failed" and not outcome.transient
    assert "KW_TEST_SMTP_PASSWORD is not set" in (outcome.error or "")


def test_file_outbox_writes_private_files_once(tmp_path: Path, store: Store) -> None:
    cfg = config(tmp_path)
    outcome = _run(cfg, store)
    assert outcome.state == "sent"
    eml = tmp_path / "outbox" / "2026-11-24.eml"
    html = tmp_path / "outbox" / "2026-11-24.html"
    assert outcome.path == eml
    for p in (eml, html):
        assert stat.S_IMODE(os.stat(p).st_mode) == 0o600
    msg = email.message_from_bytes(eml.read_bytes(), policy=policy.default)
    assert msg["X-Keepwarm-Digest"] == "1"
    before = eml.stat().st_mtime_ns
    assert _run(cfg, store).state == "already_sent"
    assert eml.stat().st_mtime_ns == before


def test_file_outbox_crash_after_handover_is_checked_against_the_file(
    tmp_path: Path, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = config(tmp_path)
    real = FileOutbox.deliver

    def crash_before_eml(self: FileOutbox, message: Any, **kw: Any) -> str:
        kw["before_data"]()
        raise Crash()

    monkeypatch.setattr(FileOutbox, "deliver", crash_before_eml)
    with pytest.raises(Crash):
        _run(cfg, store)
    assert ledger_row(store, NOW.date()).state == "sending"  # type: ignore[union-attr]
    monkeypatch.setattr(FileOutbox, "deliver", real)
    # The .eml is not there: provably not delivered, so it is written now, once.
    assert _run(cfg, store).state == "sent"
    assert (tmp_path / "outbox" / "2026-11-24.eml").exists()
    assert _run(cfg, store).state == "already_sent"


def test_outbox_unwritable_is_a_clear_error(tmp_path: Path, store: Store) -> None:
    (tmp_path / "outbox").write_text("a file, not a directory")
    outcome = _run(config(tmp_path), store)
    assert outcome.state == "failed" and "outbox" in (outcome.error or "")
    assert not outcome.transient


def test_next_digest_reports_the_previous_failure(tmp_path: Path, store: Store) -> None:
    (tmp_path / "outbox").write_text("blocker")
    assert _run(config(tmp_path), store).state == "failed"
    (tmp_path / "outbox").unlink()
    nxt = run_digest(
        config(tmp_path), store, now=NOW + timedelta(days=1), report_builder=builder(), **NO_SLEEP
    )
    assert nxt.state == "sent" and nxt.rendered is not None
    assert "The digest of 2026-11-24 was not delivered" in nxt.rendered.text


def test_preview_and_out_record_nothing(tmp_path: Path, store: Store) -> None:
    cfg = config(tmp_path)
    preview = _run(cfg, store, send=False)
    assert preview.state == "written" and preview.rendered is not None
    for name in ("d.html", "d.eml", "d.txt"):
        out = tmp_path / name
        assert _run(cfg, store, send=False, out=out).path == out
    assert (tmp_path / "d.html").read_text().startswith("<!DOCTYPE html>")
    assert b"X-Keepwarm-Digest: 1" in (tmp_path / "d.eml").read_bytes()
    assert (tmp_path / "d.txt").read_text().startswith("Good morning, Jane")
    assert ledger_row(store, NOW.date()) is None
    assert store.conn.execute("SELECT COUNT(*) FROM suggestions_shown").fetchone()[0] == 0


def test_delivery_error_carries_flags() -> None:
    e = DeliveryError("x", transient=True, maybe_sent=True)
    assert e.transient and e.maybe_sent


def test_a_digest_read_back_from_the_mailbox_is_never_an_interaction(tmp_path: Path) -> None:
    """The digest goes out From me To another of my mailboxes' addresses; when a connector later
    reads it back (IMAP, an mbox export), identity and the engine must ignore it."""
    from datetime import UTC, datetime

    from keepwarm.connectors.base import Batch, MessageMeta
    from keepwarm.connectors.headers import header_block, message_from_headers, parse_header_block
    from keepwarm.daemon.network import build_report

    cfg = _to_other(tmp_path)
    store = Store.open(tmp_path / "kw.db")
    try:
        assert _run(cfg, store).state == "sent"
        raw = (tmp_path / "outbox" / "2026-11-24.eml").read_bytes()
        meta = message_from_headers(
            parse_header_block(header_block(raw)),
            account="imap",
            provider_id="INBOX/1",
            now=datetime(2026, 11, 25, tzinfo=UTC),
        )
        assert isinstance(meta, MessageMeta) and "keepwarm-digest" in meta.markers
        store.apply_batch("imap", "imap", Batch(messages=[meta], cursor="1"))
        report = build_report(cfg, store, NOW + timedelta(days=2))
        assert not [p for p in report.people if "boss@other.example" in p.addresses]
        assert not [s for s in report.signals if "boss" in s.person_key]
    finally:
        store.close()


def _to_other(tmp_path: Path) -> Any:
    from keepwarm.daemon.config import loads

    return loads(
        f"""
[me]
name = "Jane Doe"
addresses = ["jane@example.com"]
timezone = "Europe/Berlin"
[store]
path = "{tmp_path}/kw.db"
[digest]
to = "boss@other.example"
from = "jane@example.com"
[delivery]
outbox = "{tmp_path}/outbox"
"""
    )


def test_delivery_methods_come_from_the_registry(
    tmp_path: Path, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    import digest_fixtures

    monkeypatch.setitem(digest_job.DELIVERIES, "file", "digest_fixtures:recording_delivery")
    digest_fixtures.RECORDED.clear()
    assert _run(config(tmp_path), store).state == "sent"
    assert len(digest_fixtures.RECORDED) == 1
    assert ledger_row(store, NOW.date()).method == "recording"  # type: ignore[union-attr]
    monkeypatch.delitem(digest_job.DELIVERIES, "file")
    other = run_digest(
        config(tmp_path), store, now=NOW + timedelta(days=1), report_builder=builder(), **NO_SLEEP
    )
    assert other.state == "failed" and "not available" in (other.error or "")


# -- issue 15: never twice across processes, no debris ----------------------------------------------
def test_concurrent_sends_deliver_once(tmp_path: Path) -> None:
    """Several senders at the same moment (each with its own connection, as separate processes
    have): one delivers, the others say it is already being delivered (item 1)."""
    import threading
    import time

    def slow_builder() -> Any:
        inner = builder()

        def build(config: Any, store: Store, now: Any) -> Any:
            time.sleep(0.5)  # everyone is past the ledger check before anyone sends
            return inner(config, store, now)

        return build

    outcomes: list[Any] = []
    with smtp_server(tmp_path) as srv:
        cfg = _smtp_config(tmp_path, srv.port, srv.ca_file)
        Store.open(tmp_path / "kw.db").close()

        def send() -> None:
            s = Store.open(tmp_path / "kw.db")
            try:
                outcomes.append(
                    run_digest(cfg, s, now=NOW, report_builder=slow_builder(), **NO_SLEEP)
                )
            finally:
                s.close()

        threads = [threading.Thread(target=send) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert len(srv.handler.received) == 1
    states = sorted(o.state for o in outcomes)
    assert states == ["in_progress"] * 5 + ["sent"], states
    assert all("already being delivered" in (o.error or "") for o in outcomes if o.state != "sent")
    s = Store.open(tmp_path / "kw.db")
    row = ledger_row(s, NOW.date())
    s.close()
    assert row is not None and (row.state, row.attempts) == ("sent", 1)


def test_temporary_files_of_killed_outbox_writes_are_removed(tmp_path: Path, store: Store) -> None:
    """A write killed between mkstemp and rename leaves '.DAY.eml.xxxx' behind (item 8)."""
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    leftovers = [outbox / ".2026-11-23.eml.k3j2x9_a", outbox / ".2026-11-24.html.abc12345"]
    for p in leftovers:
        p.write_bytes(b"partial")
    mine = outbox / "notes.txt"
    mine.write_text("not keepwarm's")
    assert _run(config(tmp_path), store).state == "sent"
    assert sorted(p.name for p in outbox.iterdir()) == [
        "2026-11-24.eml",
        "2026-11-24.html",
        "notes.txt",
    ]
    for p in leftovers:
        p.write_bytes(b"partial")
    assert FileOutbox(outbox).clean() == 2
    assert not any(p.exists() for p in leftovers) and mine.exists()


# -- issue 15, item 12: a digest lost in a crash is confirmed, resent once, or told ---------------------
def _mailbox(tmp_path: Path) -> Path:
    return tmp_path / "Mail"


def _sync_mailbox(store: Store, tmp_path: Path, *, later: float = 0) -> None:
    import time

    from keepwarm.connectors.local.maildir import MaildirConnector
    from keepwarm.daemon.sync import run_account

    conn = MaildirConnector("mail", _mailbox(tmp_path))
    assert run_account(store, conn, now=lambda: time.time() + later).state == "ok"


def _arrives(tmp_path: Path, name: str, data: bytes) -> None:
    from localmail import write_maildir_message

    write_maildir_message(_mailbox(tmp_path), f"{name}.M1.host:2,S", data)


def _lost_in_a_crash(
    tmp_path: Path, store: Store, monkeypatch: pytest.MonkeyPatch, cfg: Any, *, taken: bool
) -> datetime:
    """The process dies while handing the digest over: after the server took it (``taken``),
    or before. Either way the next run cannot tell, records it unconfirmed and sends nothing."""
    now = datetime.now(UTC)
    if taken:
        real = digest_job.record_ledger

        def die_after(store_: Store, local_date: Any, **values: Any) -> None:
            if values.get("state") == "sent":
                raise Crash()
            real(store_, local_date, **values)

        monkeypatch.setattr(digest_job, "record_ledger", die_after)
    else:

        def die_during(self: Any, message: Any, **kw: Any) -> str:
            kw["before_data"]()
            raise Crash()

        monkeypatch.setattr(digest_job.SmtpDelivery, "deliver", die_during)
    with pytest.raises(Crash):
        run_digest(cfg, store, now=now, report_builder=builder(), **NO_SLEEP)
    monkeypatch.undo()
    monkeypatch.setenv("KW_TEST_SMTP_PASSWORD", PASSWORD)
    again = run_digest(cfg, store, now=now, report_builder=builder(), **NO_SLEEP)
    assert again.state == "already_sent" and "unconfirmed" in (again.error or "")
    return now


def test_a_digest_lost_in_a_crash_is_confirmed_when_it_arrives(
    tmp_path: Path, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    from keepwarm.daemon.delivery_check import settle_deliveries

    with smtp_server(tmp_path) as srv:
        cfg = _smtp_config(tmp_path, srv.port, srv.ca_file)
        now = _lost_in_a_crash(tmp_path, store, monkeypatch, cfg, taken=True)
        assert len(srv.handler.received) == 1
        _arrives(tmp_path, "digest", srv.handler.received[0].content)
        _sync_mailbox(store, tmp_path)
        assert settle_deliveries(cfg, store, now) == [
            f"the digest of {now.astimezone(cfg.zone).date()} arrived after all (confirmed)"
        ]
        assert len(srv.handler.received) == 1  # never twice
    row = ledger_row(store, now.astimezone(cfg.zone).date())
    assert row is not None and not row.unconfirmed and row.confirmed_at
    assert row.last_error == "confirmed: it arrived"
    assert digest_job.previous_problem(store, row_day(row) + timedelta(days=1)) is None


def row_day(row: Any) -> date:
    return date.fromisoformat(row.local_date)


def test_a_digest_lost_in_a_crash_is_resent_once_when_a_receiving_account_lacks_it(
    tmp_path: Path, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    from localmail import make_message

    from keepwarm.daemon.delivery_check import settle_deliveries

    # an earlier digest arrived in this mailbox: it is an account that receives digests
    earlier = make_message(1, to="jane@example.com", extra={"X-Keepwarm-Digest": "1"})
    _arrives(tmp_path, "earlier", earlier.as_bytes())
    _sync_mailbox(store, tmp_path)
    with smtp_server(tmp_path) as srv:
        cfg = _smtp_config(tmp_path, srv.port, srv.ca_file)
        now = _lost_in_a_crash(tmp_path, store, monkeypatch, cfg, taken=False)
        day = now.astimezone(cfg.zone).date()
        assert srv.handler.received == []  # lost: the server never took it
        assert settle_deliveries(cfg, store, now + timedelta(minutes=45)) == []  # no sync yet
        _sync_mailbox(store, tmp_path, later=3600)  # a sync well after: still not there
        assert settle_deliveries(cfg, store, now + timedelta(minutes=10)) == []  # too early
        lines = settle_deliveries(cfg, store, now + timedelta(hours=1))
        assert lines == [f"the digest of {day} had not arrived: sent it again (the same message)"]
        assert len(srv.handler.received) == 1
        resent = email.message_from_bytes(srv.handler.received[0].content, policy=policy.default)
        row = ledger_row(store, day)
        assert row is not None and resent["Message-ID"] == row.message_id
        assert row.resent_at and row.unconfirmed and "resent" in (row.last_error or "")
        assert settle_deliveries(cfg, store, now + timedelta(hours=5)) == []  # only once
        assert len(srv.handler.received) == 1
        footer = digest_job.previous_problem(store, day + timedelta(days=1))
        assert footer and "keepwarm sent it again" in footer
        _arrives(tmp_path, "resent", srv.handler.received[0].content)
    _sync_mailbox(store, tmp_path)
    assert settle_deliveries(cfg, store, now + timedelta(hours=6)) == [
        f"the digest of {day} arrived after all (confirmed)"
    ]
    assert digest_job.previous_problem(store, day + timedelta(days=1)) is None


def test_a_digest_lost_with_no_mailbox_to_look_in_is_told_in_the_next_one(
    tmp_path: Path, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    from keepwarm.daemon.delivery_check import settle_deliveries

    with smtp_server(tmp_path) as srv:
        cfg = _smtp_config(tmp_path, srv.port, srv.ca_file)
        now = _lost_in_a_crash(tmp_path, store, monkeypatch, cfg, taken=False)
        assert settle_deliveries(cfg, store, now + timedelta(days=1)) == []
        assert srv.handler.received == []
    day = now.astimezone(cfg.zone).date()
    nxt = run_digest(
        cfg,
        store,
        now=now + timedelta(days=1),
        report_builder=builder(),
        delivery=FileOutbox(tmp_path / "outbox"),
        **NO_SLEEP,
    )
    assert nxt.rendered is not None
    assert f"The digest of {day} may not have reached you" in " ".join(nxt.rendered.text.split())
