"""Install anywhere: a wheel built from this source, installed into a fresh venv, works as the
README says (the PATH step included) with nothing from the checkout.

The venv gets keepwarm's dependencies from the wheelhouse ``make test`` prepares
(``.venv/wheelhouse``), offline: only the keepwarm wheel is built here.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from localmail import T0, make_message, write_maildir_message

REPO = Path(__file__).resolve().parent.parent
WHEELHOUSE = REPO / ".venv" / "wheelhouse"
SOURCES = ("core", "daemon", "connectors", "digests", "pyproject.toml", "README.md")


def _run(args: list[str], env: dict[str, str] | None = None, **kw: object) -> str:
    res = subprocess.run(args, capture_output=True, text=True, env=env, timeout=600, **kw)  # type: ignore[call-overload]
    assert res.returncode == 0, f"{args}: exit {res.returncode}\n{res.stdout}\n{res.stderr}"
    return str(res.stdout)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh venv holding the keepwarm wheel built from this source; yields its bin/."""
    stamp = WHEELHOUSE / ".complete"
    if not stamp.exists() or stamp.stat().st_mtime < (REPO / "pyproject.toml").stat().st_mtime:
        pytest.fail(
            f"{WHEELHOUSE} is missing or older than pyproject.toml: `make test` prepares it "
            "(make .venv/wheelhouse/.complete)"
        )
    root = tmp_path_factory.mktemp("install")
    src = root / "src"
    src.mkdir()
    for name in SOURCES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, src / name)
    dist = root / "dist"
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(dist),
            str(src),
        ]
    )
    wheels = list(dist.glob("keepwarm-*.whl"))
    assert len(wheels) == 1, wheels
    venv = root / "venv"
    _run([sys.executable, "-m", "venv", str(venv)])
    _run(
        [
            str(venv / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "-q",
            "--no-index",
            "--find-links",
            str(WHEELHOUSE),
            str(wheels[0]),
        ]
    )
    yield venv / "bin"


def _env(bin_dir: Path, home: Path) -> dict[str, str]:
    """A user's shell after the README's PATH step, in an empty home directory."""
    return {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_STATE_HOME": str(home / ".local" / "state"),
        "LANG": "C.UTF-8",
        "TZ": "UTC",
    }


def _maildir(root: Path) -> Path:
    """A small conversation: Maya writes, I answer, twice."""
    box = root / "Mail"
    n = 0
    for week in range(6):
        when = T0 + timedelta(weeks=week)
        for sender, to, minutes in (
            ("Maya Lopez <maya@example.org>", "jane@example.com", 0),
            ("Jane Doe <jane@example.com>", "maya@example.org", 90),
        ):
            n += 1
            msg = make_message(
                n,
                sender=sender,
                to=to,
                subject=f"Plans {week}",
                date=when + timedelta(minutes=minutes),
            )
            write_maildir_message(box, f"{n}.eml", msg.as_bytes())
    return box


def test_the_wheel_works_in_a_fresh_venv(installed: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = _env(installed, home)
    out = _run(
        [
            "keepwarm",
            "init",
            "--name",
            "Jane Doe",
            "--address",
            "jane@example.com",
            "--timezone",
            "Europe/Berlin",
        ],
        env,
    )
    config = home / ".config" / "keepwarm" / "config.toml"
    assert f"wrote {config}" in out and "keepwarm import maildir" in out
    assert (config.stat().st_mode & 0o777) == 0o600
    # the example config ships inside the wheel
    assert "[[accounts]]" in _run(["keepwarm", "init", "--example"], env)

    out = _run(["keepwarm", "import", "maildir", str(_maildir(tmp_path))], env)
    assert "12 imported" in out
    out = _run(["keepwarm", "people", "--as-of", "2024-05-01"], env)
    assert "Maya Lopez" in out and "maya@example.org" in out
    out = _run(["keepwarm", "digest", "--as-of", "2024-05-01"], env)
    assert out.startswith("Subject: ")

    units = tmp_path / "units"
    out = _run(["keepwarm", "service", "install", "--user", "--dir", str(units)], env)
    unit = (units / "keepwarm.service").read_text()
    assert f"ExecStart={installed / 'keepwarm'} run" in unit.splitlines()
    assert "network-online.target" not in "\n".join(
        line for line in unit.splitlines() if not line.startswith("#")
    )
    assert "systemctl --user enable --now keepwarm" in out
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is missing: install Debian's systemd package (make test does)"
    res = subprocess.run(
        [analyze, "verify", "--user", str(units / "keepwarm.service")],
        capture_output=True,
        text=True,
        env={**env, "XDG_RUNTIME_DIR": str(tmp_path)},
        timeout=120,
    )
    assert res.returncode == 0, res.stderr

    res = subprocess.run(
        ["keepwarm", "doctor", "--json"], capture_output=True, text=True, env=env, timeout=120
    )
    report = json.loads(res.stdout)
    failed = [c for c in report["checks"] if not c["ok"] and not c["warning"]]
    assert report["ok"] and res.returncode == 0 and not failed, res.stdout
    assert {c["name"] for c in report["checks"]} >= {"config", "permissions", "schedule", "daemon"}


def test_python_m_runs_it_without_the_script(installed: Path) -> None:
    out = _run(
        [str(installed / "python"), "-m", "keepwarm.daemon", "--version"], {"PATH": "/usr/bin:/bin"}
    )
    assert "keepwarm" in out
