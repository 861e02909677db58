"""One error path: every keepwarm error a command raises ends in one line with its fix and exit
code, in one place (the CLI group); a bug prints one line and where its traceback was written."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from keepwarm.connectors.base import AuthRequired, ConnectorError, SourceError, TransientError
from keepwarm.core.errors import EXIT_FAIL, EXIT_USER, KeepwarmError
from keepwarm.daemon import cli as climod
from keepwarm.daemon import errors
from keepwarm.digests.deliver import DeliveryError


@pytest.fixture
def raising() -> Iterator[list[BaseException]]:
    """A hidden command that raises whatever the test puts in the list."""
    box: list[BaseException] = []

    @click.command("raise-for-test", hidden=True)
    def command() -> None:
        raise box[0]

    climod.cli.add_command(command)
    try:
        yield box
    finally:
        climod.cli.commands.pop("raise-for-test")


def test_every_error_class_is_a_keepwarm_error() -> None:
    for cls in (ConnectorError, TransientError, AuthRequired, SourceError, DeliveryError):
        assert issubclass(cls, KeepwarmError)
    for name in errors.__all__:
        assert issubclass(getattr(errors, name), KeepwarmError)


@pytest.mark.parametrize(
    ("error", "code", "says"),
    [
        (
            SourceError("the folder is gone", fix="point path at it again"),
            EXIT_FAIL,
            "fix: point path at it again",
        ),
        (
            AuthRequired("the sign-in expired", fix="keepwarm auth google x"),
            EXIT_FAIL,
            "fix: keepwarm auth google x",
        ),
        (errors.ConfigError(None, ["me.name: missing"]), EXIT_USER, "me.name: missing"),
        (errors.StoreError("the database is read-only", "read_only"), EXIT_USER, "read-only"),
        (errors.UserError("no account named x"), EXIT_USER, "no account named x"),
    ],
)
def test_a_keepwarm_error_is_one_line_with_its_fix(
    raising: list[BaseException], error: KeepwarmError, code: int, says: str
) -> None:
    raising.append(error)
    result = CliRunner().invoke(climod.cli, ["raise-for-test"])
    assert result.exit_code == code
    assert says in result.output and "Traceback" not in result.output


def test_a_bug_prints_one_line_and_where_the_traceback_is(
    raising: list[BaseException],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    monkeypatch.delenv("KEEPWARM_DEBUG", raising=False)
    raising.append(ZeroDivisionError("division by zero"))
    with pytest.raises(SystemExit) as stop:
        climod.main(["raise-for-test"])
    assert stop.value.code == EXIT_FAIL
    err = capsys.readouterr().err
    saved = tmp_path / "keepwarm" / "keepwarm-last-error.txt"
    assert err.count("\n") == 1 and str(saved) in err and "ZeroDivisionError" in err
    assert "Traceback" in saved.read_text() and saved.stat().st_mode & 0o077 == 0
