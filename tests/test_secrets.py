"""Password resolution: file, environment, command, each failure a clear sentence with a fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from keepwarm.connectors.base import AuthRequired
from keepwarm.daemon import secrets
from keepwarm.daemon.config import Secret
from keepwarm.daemon.secrets import SecretError, resolve_secret


def test_file(tmp_path: Path) -> None:
    p = tmp_path / "pw"
    p.write_text("s3cret  \nsecond line\n")
    p.chmod(0o600)
    assert resolve_secret(Secret(file=p), "x") == "s3cret  "


def test_missing_empty_and_open_files(tmp_path: Path) -> None:
    p = tmp_path / "pw"
    with pytest.raises(SecretError, match="does not exist") as e:
        resolve_secret(Secret(file=p), 'account "a"')
    assert str(p) in e.value.fix and 'account "a"' in str(e.value)
    p.write_text("\n")
    p.chmod(0o600)
    with pytest.raises(SecretError, match="is empty"):
        resolve_secret(Secret(file=p), "x")
    p.write_text("pw\n")
    p.chmod(0o644)
    with pytest.raises(SecretError, match="readable by other users") as e:
        resolve_secret(Secret(file=p), "x")
    assert e.value.fix == f"chmod 600 {p}"
    with pytest.raises(SecretError, match="not a regular file"):
        resolve_secret(Secret(file=tmp_path), "x")


def test_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KW_TEST_PW", raising=False)
    with pytest.raises(SecretError, match="KW_TEST_PW is not set"):
        resolve_secret(Secret(env="KW_TEST_PW"), "x")
    monkeypatch.setenv("KW_TEST_PW", "")
    with pytest.raises(SecretError, match="is empty"):
        resolve_secret(Secret(env="KW_TEST_PW"), "x")
    monkeypatch.setenv("KW_TEST_PW", "from-env")
    assert resolve_secret(Secret(env="KW_TEST_PW"), "x") == "from-env"


def test_command(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_secret(Secret(command="printf 'pw1\\nmeta\\n'"), "x") == "pw1"
    with pytest.raises(SecretError, match="exit status 3: nope"):
        resolve_secret(Secret(command="echo nope >&2; exit 3"), "x")
    with pytest.raises(SecretError, match="printed nothing"):
        resolve_secret(Secret(command="true"), "x")
    monkeypatch.setattr(secrets, "COMMAND_TIMEOUT", 0.2)
    with pytest.raises(SecretError, match="did not finish"):
        resolve_secret(Secret(command="sleep 5"), "x")


def test_is_an_auth_error_with_a_fix() -> None:
    with pytest.raises(AuthRequired) as e:
        resolve_secret(Secret(), "x")
    assert e.value.fix
