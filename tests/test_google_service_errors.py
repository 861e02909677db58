"""Google errors that retrying cannot fix reach the user as an account error with the fix.

The emulator answers as Google does: 403 ``accessNotConfigured`` (with Google's message and
``ErrorInfo`` details) when the Gmail or Calendar API is not enabled in the Cloud project, and
other refusals (400 ``failedPrecondition``, 403 ``dailyLimitExceeded``) on demand.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from fakes.google_api import GoogleEmulator
from fakes.google_world import gmail_connector, write_config, write_token
from leakcheck import close_after_test

from keepwarm.connectors.base import TransientError
from keepwarm.daemon.cli import cli
from keepwarm.daemon.store import Store
from keepwarm.daemon.sync import run_account

PROJECT = "123456789012"


@pytest.fixture
def emu() -> Iterator[GoogleEmulator]:
    with GoogleEmulator() as e:
        yield e
        e.check()


@pytest.fixture
def cfg(tmp_path: Path, emu: GoogleEmulator) -> Path:
    path = write_config(tmp_path, emu)
    write_token(emu, tmp_path / "google.json")
    return path


def run(cfg: Path, *args: str) -> Result:
    env = {"XDG_STATE_HOME": str(cfg.parent / "state"), "STATE_DIRECTORY": ""}
    return CliRunner().invoke(cli, ["--config", str(cfg), *args], env=env)


@pytest.mark.parametrize(
    ("api", "account", "name", "service"),
    [
        ("gmail", "mail", "Gmail API", "gmail.googleapis.com"),
        ("calendar", "cal", "Google Calendar API", "calendar-json.googleapis.com"),
    ],
)
def test_api_not_enabled_names_the_api_and_the_console_page(
    emu: GoogleEmulator, cfg: Path, api: str, account: str, name: str, service: str
) -> None:
    emu.add_mail(3)
    emu.disabled_apis.add(api)
    link = f"https://console.cloud.google.com/apis/library/{service}?project={PROJECT}"
    result = run(cfg, "sync", account)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and "HttpError" not in result.output
    assert f"{name} is not enabled" in result.output and link in result.output
    for command in ("status", "doctor", "digest"):
        shown = run(cfg, command).output
        joined = "".join(line.strip() for line in shown.splitlines())  # the digest wraps it
        assert link in (joined if command == "digest" else shown), (command, shown)
    emu.disabled_apis.clear()  # enabled in the console: the next sync works
    result = run(cfg, "sync", account)
    assert result.exit_code == 0, result.output


def test_other_refusals_are_a_failing_account_not_a_traceback_or_a_retry_loop(
    emu: GoogleEmulator, tmp_path: Path
) -> None:
    emu.add_mail(3)
    token = write_token(emu, tmp_path / "token.json")
    emu.fail_next(1, "400")  # e.g. a Workspace user without Gmail: 400 failedPrecondition
    out = run_account(close_after_test(Store.memory()), gmail_connector(emu, token))
    assert out.state == "failing" and out.fix
    assert "failedPrecondition" in (out.error or "") and "Mail service not enabled" in (
        out.error or ""
    )


def test_daily_limit_waits_long_instead_of_hammering(emu: GoogleEmulator, tmp_path: Path) -> None:
    emu.add_mail(3)
    token = write_token(emu, tmp_path / "token.json")
    emu.fail_next(1, "403daily")
    with pytest.raises(TransientError) as exc:
        list(gmail_connector(emu, token).sync(None))
    assert exc.value.retry_after is not None and exc.value.retry_after >= 3600
    assert sum(emu.calls.values()) == 0  # one refused request, no retries


def test_refused_batch_parts_are_mapped_not_taken_for_deleted_messages(
    emu: GoogleEmulator, tmp_path: Path
) -> None:
    emu.add_mail(4)
    token = write_token(emu, tmp_path / "token.json")
    emu.fail_next_parts(1, "400")
    store = close_after_test(Store.memory())
    out = run_account(store, gmail_connector(emu, token, batch_size=2))
    assert out.state == "failing" and "failedPrecondition" in (out.error or "")
    assert store.counts()["message_sources"] == 0  # nothing committed as if it were gone
