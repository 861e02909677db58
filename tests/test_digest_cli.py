from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from digest_fixtures import builder
from leakcheck import close_after_test

from keepwarm.connectors.base import Address, Batch, MessageMeta
from keepwarm.daemon import digest_job
from keepwarm.daemon.cli import cli
from keepwarm.daemon.config import load
from keepwarm.daemon.store import Store


@pytest.fixture
def cfg_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    p = tmp_path / "config.toml"
    p.write_text(
        f"""
[me]
name = "Jane Doe"
addresses = ["jane@example.com"]
timezone = "Europe/Berlin"
[store]
path = "{tmp_path}/kw.db"
[delivery]
outbox = "{tmp_path}/outbox"
"""
    )
    monkeypatch.setattr(digest_job, "_default_builder", lambda: builder())
    store = close_after_test(
        Store.open(tmp_path / "kw.db")
    )  # Maria is in the mail, so she can be snoozed
    store.apply_batch(
        "a",
        "maildir",
        Batch(
            messages=[
                MessageMeta(
                    account="a",
                    provider_id="1",
                    date=datetime(2026, 11, 20, 9, 0, tzinfo=UTC),
                    sender=Address("maria@example.com", "Maria Lopez"),
                    to=(Address("jane@example.com"),),
                    subject="Budget review",
                )
            ]
        ),
    )
    store.close()
    return p


def _run(cfg: Path, *args: str) -> Any:
    return CliRunner().invoke(cli, ["--config", str(cfg), *args], catch_exceptions=False)


def test_digest_preview_prints_text_and_records_nothing(cfg_path: Path, tmp_path: Path) -> None:
    r = _run(cfg_path, "digest", "--as-of", "2026-11-24")
    assert r.exit_code == 0, r.output
    assert r.output.startswith("Subject: ")
    assert "Reply to Maria's 'Budget review'" in r.output
    assert not (tmp_path / "outbox").exists()


def test_digest_json_lists_suggestions_with_facts(cfg_path: Path) -> None:
    r = _run(cfg_path, "digest", "--as-of", "2026-11-24", "--json")
    data = json.loads(r.output)
    assert data["date"] == "2026-11-24" and data["state"] == "written"
    first = data["suggestions"][0]
    assert first["kind"] == "reply_owed"
    assert first["person"]["name"] == "Maria Lopez"
    assert first["facts"]["days_waiting"] == 4 and first["reasons"]


def test_digest_send_once_then_already_sent(cfg_path: Path, tmp_path: Path) -> None:
    r = _run(cfg_path, "digest", "--as-of", "2026-11-24", "--send")
    assert r.exit_code == 0 and "delivered" in r.output
    assert (tmp_path / "outbox" / "2026-11-24.eml").exists()
    r2 = _run(cfg_path, "digest", "--as-of", "2026-11-24", "--send")
    assert "already delivered" in r2.output
    status = _run(cfg_path, "status")
    assert "digest     2026-11-24: sent" in status.output


def test_digest_out_writes_file(cfg_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "d.html"
    r = _run(cfg_path, "digest", "--as-of", "2026-11-24", "--out", str(out))
    assert r.exit_code == 0 and f"wrote {out}" in r.output
    assert "<table" in out.read_text()


def test_snooze_list_and_clear(cfg_path: Path) -> None:
    r = _run(cfg_path, "snooze", "Maria@Example.com", "30d")
    assert r.exit_code == 0 and "not now: Maria Lopez until" in r.output
    listed = _run(cfg_path, "snooze", "--list")
    assert "not now: Maria Lopez until" in listed.output and "#1" in listed.output
    # The digest leaves her out while snoozed.
    preview = _run(cfg_path, "digest", "--as-of", "2026-11-24", "--json")
    assert all(
        s["person"]["key"] != "maria@example.com" for s in json.loads(preview.output)["suggestions"]
    )
    cleared = _run(cfg_path, "snooze", "--clear", "Maria Lopez")
    assert "snooze ended" in cleared.output
    assert "no snooze decisions" in _run(cfg_path, "snooze", "--list").output


def test_snooze_bad_input_is_a_user_error(cfg_path: Path) -> None:
    r = _run(cfg_path, "snooze", "maria@example.com", "soon")
    assert r.exit_code == 2 and "duration" in r.output
    r = _run(cfg_path, "snooze", "maria@example.com", "1m")
    assert r.exit_code == 2 and '"1mo"' in r.output  # one minute is surely a typo
    r = _run(cfg_path, "snooze", "Nobody Known")
    assert r.exit_code == 2 and 'nobody named "Nobody Known"' in r.output
    r = _run(cfg_path, "snooze", "tom@example.com")
    assert r.exit_code == 2 and "is not in your mail" in r.output


def test_as_of_a_day_is_that_mornings_digest(cfg_path: Path) -> None:
    r = _run(cfg_path, "digest", "--as-of", "2026-11-24")
    assert "Made at 07:30 (Europe/Berlin)" in r.output
    r = _run(cfg_path, "digest", "--as-of", "2026-11-24T09:15")
    assert "Made at 09:15 (Europe/Berlin)" in r.output
    bad = _run(cfg_path, "digest", "--as-of", "2026-13-40")
    assert bad.exit_code == 2 and "--as-of" in bad.output


def test_digest_as_of_a_day_with_a_digest_time_in_seconds(cfg_path: Path) -> None:
    """[digest] time = "07:30:15" is documented; --as-of DAY used to reject the day (item 6)."""
    cfg_path.write_text(cfg_path.read_text() + '[digest]\ntime = "07:30:15"\n')
    r = _run(cfg_path, "digest", "--as-of", "2026-11-24", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["date"] == "2026-11-24"
    moment = digest_job.digest_moment(load(cfg_path), date(2026, 11, 24))
    assert moment.isoformat() == "2026-11-24T06:30:15+00:00"
