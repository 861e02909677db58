"""`keepwarm auth google`: the installed-app flow against the emulator as Google's OAuth server."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from fakes.google_api import CALENDAR_READONLY, GMAIL_METADATA, GMAIL_SEND, GoogleEmulator
from fakes.google_world import write_config
from fakes.loopback import free_port

import keepwarm.daemon.cli  # noqa: F401  (first: it registers every command module, google's included)
from keepwarm.daemon import config as cfgmod
from keepwarm.daemon.commands.google import google_scopes

KEEPWARM = str(Path(sys.executable).parent / "keepwarm")


@pytest.fixture
def emu() -> Iterator[GoogleEmulator]:
    with GoogleEmulator() as e:
        yield e
        e.check()


def test_scopes_are_narrow_and_shared_by_token_file(tmp_path: Path, emu: GoogleEmulator) -> None:
    cfg = cfgmod.load(write_config(tmp_path, emu))
    assert google_scopes(cfg, cfg.account("cal")) == [GMAIL_METADATA, CALENDAR_READONLY]
    cfg = cfgmod.load(write_config(tmp_path, emu, delivery="gmail"))
    assert google_scopes(cfg, cfg.account("mail")) == [
        GMAIL_METADATA,
        CALENDAR_READONLY,
        GMAIL_SEND,
    ]


def _consent(proc: subprocess.Popen[str], seen: list[str]) -> None:
    """Play the browser: find the consent URL in the output and follow Google's redirect."""
    assert proc.stdout is not None
    for line in proc.stdout:
        seen.append(line)
        m = re.search(r"(http://127\.0\.0\.1:\d+/auth\?\S+)", line)
        if m:
            requests.get(m.group(1), timeout=10)  # 302 -> http://localhost:PORT/?code=...
            break
    seen.extend(proc.stdout)


def auth_google(cfg: Path, account: str, port: int) -> tuple[int, str, dict[str, str]]:
    """Run ``keepwarm auth google ACCOUNT`` and play the browser: (exit code, output, env)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "KEEPWARM_CONFIG": str(cfg)}
    proc = subprocess.Popen(
        [KEEPWARM, "auth", "google", account, "--port", str(port), "--timeout", "60"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    seen: list[str] = []
    t = threading.Thread(target=_consent, args=(proc, seen), daemon=True)
    t.start()
    code = proc.wait(timeout=90)
    t.join(5)
    assert proc.stdout is not None
    proc.stdout.close()
    return code, "".join(seen), env


def test_auth_google_runs_the_installed_flow_and_saves_a_private_token(
    tmp_path: Path, emu: GoogleEmulator
) -> None:
    cfg = write_config(tmp_path, emu)
    port = free_port()
    code, out, env = auth_google(cfg, "mail", port)
    assert code == 0, out
    assert f"ssh -N -L {port}:localhost:{port}" in out
    token = tmp_path / "google.json"
    assert token.stat().st_mode & 0o777 == 0o600
    saved = json.loads(token.read_text())
    assert saved["refresh_token"].startswith("1//rt-")
    asked = emu.auth_requests[-1]
    assert asked["scope"].split() == [GMAIL_METADATA, CALENDAR_READONLY]
    assert asked["access_type"] == "offline" and asked["code_challenge_method"] == "S256"
    # The saved token works for both accounts sharing the file.
    emu.add_mail(3)
    r = subprocess.run(
        [KEEPWARM, "sync", "mail", "cal"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "3 imported" in r.stdout


def test_auth_google_rejects_other_kinds_and_missing_secrets(
    tmp_path: Path, emu: GoogleEmulator
) -> None:
    from click.testing import CliRunner

    from keepwarm.daemon.cli import cli

    cfg = write_config(tmp_path, emu)
    r = CliRunner().invoke(cli, ["--config", str(cfg), "auth", "google", "nope"])
    assert r.exit_code == 2 and "no account named" in r.output
    (tmp_path / "client.json").unlink()
    r = CliRunner().invoke(cli, ["--config", str(cfg), "auth", "google", "cal"])
    assert r.exit_code == 2 and "not found" in r.output and "Traceback" not in r.output


def test_a_scope_unticked_at_consent_is_named_at_auth_time(
    tmp_path: Path, emu: GoogleEmulator
) -> None:
    """Google's consent page lets the user untick a permission; keepwarm must say so at once,
    not at the first API call, and keep the token's scopes honest."""
    emu.unticked = {CALENDAR_READONLY}
    cfg = write_config(tmp_path, emu)
    code, out, env = auth_google(cfg, "cal", free_port())
    assert code == 1, out
    assert "did not grant calendar.readonly" in out and "Traceback" not in out
    saved = json.loads((tmp_path / "google.json").read_text())
    assert saved["scopes"] == [GMAIL_METADATA]  # the mail account sharing the file still works
    emu.add_mail(2)
    r = subprocess.run(
        [KEEPWARM, "sync", "mail", "cal"], capture_output=True, text=True, env=env, timeout=120
    )
    assert "mail: 2 imported" in r.stdout, r.stdout + r.stderr
    assert "does not grant calendar.readonly" in r.stderr and "keepwarm auth google cal" in r.stderr
