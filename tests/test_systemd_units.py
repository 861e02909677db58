"""The shipped units pass ``systemd-analyze verify`` and the hardened ones score <= 2.0 exposure."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from keepwarm.daemon.packaged import render_unit

UNITS = Path(__file__).resolve().parent.parent / "daemon" / "data" / "systemd"
KEEPWARM = Path(sys.executable).parent / "keepwarm"


def _analyze() -> str:
    exe = shutil.which("systemd-analyze")
    if exe is None:
        pytest.fail("systemd-analyze is missing: install Debian's systemd package (make test does)")
    return exe


@pytest.fixture
def units(tmp_path: Path) -> Path:
    """The units as `keepwarm service install` writes them, ExecStart pointing at this checkout's
    keepwarm (verify checks it exists)."""
    for scope, name in (
        ("user", "keepwarm-user.service"),
        ("system", "keepwarm.service"),
        ("template", "keepwarm@alice.service"),
    ):
        text = render_unit(scope, [str(KEEPWARM)], tmp_path / "config.toml")  # type: ignore[arg-type]
        assert f"ExecStart={KEEPWARM} " in text
        (tmp_path / name).write_text(text)
    return tmp_path


def test_the_three_units_are_shipped() -> None:
    names = {p.name for p in UNITS.glob("*.service")}
    assert names == {"keepwarm.service", "keepwarm-user.service", "keepwarm@.service"}
    system = (UNITS / "keepwarm.service").read_text()
    for line in (
        "Type=notify",
        "DynamicUser=yes",
        "StateDirectory=keepwarm",
        "ConfigurationDirectory=keepwarm",
        "LoadCredential=config.toml:/etc/keepwarm/config.toml",
        "UMask=0077",
        "WatchdogSec=5min",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "ProtectSystem=strict",
        "PrivateTmp=yes",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
        "SystemCallFilter=@system-service",
    ):
        assert line in system.splitlines(), line
    assert "loginctl enable-linger" in (UNITS / "keepwarm-user.service").read_text()


def test_units_verify(units: Path) -> None:
    names = ["keepwarm.service", "keepwarm-user.service", "keepwarm@alice.service"]
    res = subprocess.run(
        [_analyze(), "verify", *(str(units / n) for n in names)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    assert "keepwarm" not in res.stderr, res.stderr


def test_system_units_exposure_is_at_most_2(units: Path) -> None:
    for name in ("keepwarm.service", "keepwarm@alice.service"):
        res = subprocess.run(
            [_analyze(), "security", "--offline=yes", "--threshold=20", str(units / name)],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=units,
        )
        assert res.returncode == 0, res.stdout[-2000:] + res.stderr
        assert "Overall exposure level" in res.stdout
        score = float(
            res.stdout.rsplit("Overall exposure level for", 1)[1].split(":")[1].split()[0]
        )
        assert score <= 2.0
