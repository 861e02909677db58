"""The first day: init (asked or from flags), the service unit for this installation, private files
and errors that say what to do instead of a traceback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from digest_fixtures import builder

from keepwarm.connectors import registry
from keepwarm.daemon import config as cfgmod
from keepwarm.daemon import digest_job, packaged
from keepwarm.daemon.cli import cli
from keepwarm.daemon.commands import setup

KEEPWARM = Path(sys.executable).parent / "keepwarm"


def _env(tmp_path: Path) -> dict[str, str]:
    return {
        "XDG_CONFIG_HOME": str(tmp_path / "cfg"),
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "KEEPWARM_CONFIG": "",
        "STATE_DIRECTORY": "",
        "CONFIGURATION_DIRECTORY": "",
    }


# -- init -----------------------------------------------------------------------------------------
def test_init_asks_with_the_machines_zone_as_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(setup, "local_zone_name", lambda: "America/Chicago")
    res = CliRunner().invoke(
        cli, ["init"], input="Jane Doe\njane@example.com\n\n", env=_env(tmp_path)
    )
    assert res.exit_code == 0, res.output
    assert "Your time zone [America/Chicago]:" in res.output
    path = tmp_path / "cfg" / "keepwarm" / "config.toml"
    cfg = cfgmod.load(path)
    assert cfg.timezone == "America/Chicago" and cfg.name == "Jane Doe"
    assert (path.stat().st_mode & 0o777) == 0o600
    assert "keepwarm import maildir ~/Mail" in res.output and "keepwarm sync" in res.output


def test_init_asks_again_for_a_zone_that_does_not_exist(tmp_path: Path) -> None:
    res = CliRunner().invoke(
        cli,
        ["init", "--name", "Jane", "--address", "jane@example.com"],
        input="Mars/Base\nEurope/Lisbon\n",
        env=_env(tmp_path),
    )
    assert res.exit_code == 0, res.output
    assert '"Mars/Base" is not an IANA time zone' in res.output
    assert cfgmod.load(tmp_path / "cfg" / "keepwarm" / "config.toml").timezone == "Europe/Lisbon"


def test_init_without_input_takes_flags_and_the_machine_zone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(setup, "local_zone_name", lambda: "Asia/Tokyo")
    env = _env(tmp_path)
    res = CliRunner().invoke(cli, ["init", "--no-input", "--name", "Jane"], env=env)
    assert res.exit_code == 2 and "--no-input needs --address" in res.output
    res = CliRunner().invoke(
        cli,
        ["init", "--no-input", "--name", 'Jane "JD" Doe', "--address", "a@x.org,b@y.org"],
        env=env,
    )
    assert res.exit_code == 0, res.output
    cfg = cfgmod.load(tmp_path / "cfg" / "keepwarm" / "config.toml")
    assert cfg.timezone == "Asia/Tokyo" and cfg.addresses == ("a@x.org", "b@y.org")
    assert cfg.name == 'Jane "JD" Doe'
    again = CliRunner().invoke(
        cli, ["init", "--no-input", "--name", "J", "--address", "a@x.org"], env=env
    )
    assert again.exit_code == 2 and "already exists" in again.output


def test_init_rejects_bad_flags_in_one_line(tmp_path: Path) -> None:
    env = _env(tmp_path)
    res = CliRunner().invoke(
        cli, ["init", "--name", "J", "--address", "nope", "--timezone", "UTC"], env=env
    )
    assert res.exit_code == 2 and "--address: not an email address: nope" in res.output
    res = CliRunner().invoke(
        cli, ["init", "--name", "J", "--address", "j@x.org", "--timezone", "Mars/Base"], env=env
    )
    assert res.exit_code == 2 and "--timezone:" in res.output


def test_init_prints_the_whole_example(tmp_path: Path) -> None:
    res = CliRunner().invoke(cli, ["init", "--example"], env=_env(tmp_path))
    assert res.exit_code == 0
    cfg = cfgmod.loads(res.output)
    assert {a.kind for a in cfg.accounts} == set(registry.KINDS)


def test_local_zone_name_follows_tz(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", ":Pacific/Auckland")
    assert setup.local_zone_name() == "Pacific/Auckland"
    monkeypatch.setenv("TZ", "/usr/share/zoneinfo/Europe/Oslo")
    assert setup.local_zone_name() == "Europe/Oslo"


# -- service install ------------------------------------------------------------------------------
def test_service_install_user_points_at_this_keepwarm(tmp_path: Path) -> None:
    cfg = tmp_path / "elsewhere.toml"
    env = {**_env(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "home-config")}
    res = CliRunner().invoke(cli, ["--config", str(cfg), "service", "install", "--user"], env=env)
    assert res.exit_code == 0, res.output
    unit = tmp_path / "home-config" / "systemd" / "user" / "keepwarm.service"
    lines = unit.read_text().splitlines()
    assert f"ExecStart={KEEPWARM} --config {cfg} run" in lines
    assert not [line for line in lines if "network-online" in line and not line.startswith("#")]
    assert "systemctl --user enable --now keepwarm" in res.output
    assert "there is no config" in res.output  # and it says to run init first
    again = CliRunner().invoke(cli, ["--config", str(cfg), "service", "install", "--user"], env=env)
    assert again.exit_code == 2 and "--force" in again.output


def test_service_install_needs_a_scope(tmp_path: Path) -> None:
    res = CliRunner().invoke(cli, ["service", "install"], env=_env(tmp_path))
    assert res.exit_code == 2 and "--user" in res.output and "--system" in res.output


def test_service_install_system_refuses_a_keepwarm_it_cannot_see(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(packaged, "keepwarm_command", lambda: ["/home/jane/venv/bin/keepwarm"])
    res = CliRunner().invoke(
        cli, ["service", "install", "--system", "--dir", str(tmp_path)], env=_env(tmp_path)
    )
    assert res.exit_code == 2 and "ProtectHome" in res.output and "/opt/keepwarm" in res.output
    monkeypatch.setattr(packaged, "keepwarm_command", lambda: ["/opt/kw/bin/keepwarm"])
    res = CliRunner().invoke(
        cli, ["service", "install", "--system", "--dir", str(tmp_path)], env=_env(tmp_path)
    )
    assert res.exit_code == 0, res.output
    lines = (tmp_path / "keepwarm.service").read_text().splitlines()
    assert "ExecStart=/opt/kw/bin/keepwarm --config %d/config.toml run" in lines
    assert "Wants=network-online.target" in lines  # the system manager has that target


def test_unit_arguments_are_quoted_for_systemd() -> None:
    assert packaged.systemd_quote("/opt/my kw/keepwarm") == '"/opt/my kw/keepwarm"'
    assert packaged.systemd_quote("/x/100%") == "/x/100%%"


def test_python_m_keepwarm_daemon_is_the_cli() -> None:
    res = subprocess.run(
        [sys.executable, "-m", "keepwarm.daemon", "--version"], capture_output=True, text=True
    )
    assert res.returncode == 0 and "keepwarm" in res.stdout


# -- private files and errors without tracebacks --------------------------------------------------
def _config(tmp_path: Path) -> Path:
    p = tmp_path / "config.toml"
    p.write_text(
        f"""
[me]
name = "Jane Doe"
addresses = ["jane@example.com"]
timezone = "Europe/Berlin"
[store]
path = "{tmp_path}/kw.db"
"""
    )
    return p


def test_digest_out_is_private_and_a_missing_folder_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(digest_job, "_default_builder", lambda: builder())
    cfg = _config(tmp_path)
    out = tmp_path / "d.txt"
    res = CliRunner().invoke(
        cli, ["--config", str(cfg), "digest", "--as-of", "2026-11-24", "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    assert (out.stat().st_mode & 0o777) == 0o600
    missing = tmp_path / "missing" / "dir" / "x.html"
    res = CliRunner().invoke(cli, ["--config", str(cfg), "digest", "--out", str(missing)])
    assert res.exit_code == 2
    assert f"the folder {missing.parent} does not exist" in res.output
    assert "Traceback" not in res.output


def test_sync_of_an_unknown_account_is_one_line(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    res = CliRunner().invoke(cli, ["--config", str(cfg), "sync", "wrok"])
    assert res.exit_code == 2
    assert 'no account named "wrok"' in res.output and "Traceback" not in res.output


def test_demo_config_is_private(tmp_path: Path) -> None:
    from keepwarm.daemon.demo import generate

    manifest = generate(tmp_path / "demo")
    assert (manifest.config_path.stat().st_mode & 0o777) == 0o600
    # so `keepwarm --config DEMO/config.toml run` passes its start-up permission check
    from keepwarm.daemon.doctor import permission_problems
    from keepwarm.daemon.store import Store

    config = cfgmod.load(manifest.config_path)
    Store.open(config.store_path).close()
    assert permission_problems(config) == []


def _keepwarm(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(KEEPWARM), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


def test_ctrl_c_at_a_prompt_exits_130(tmp_path: Path) -> None:
    # As in a terminal, Ctrl-C is not ignored (a suite started in the background of a script
    # would pass SIGINT ignored down to keepwarm, and Python then leaves it ignored).
    proc = subprocess.Popen(
        [str(KEEPWARM), "--config", str(tmp_path / "c.toml"), "init"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert proc.stdout is not None
    shown = ""
    while "name" not in shown:  # the prompt is waiting for input (however slow the start-up)
        char = proc.stdout.read(1)
        assert char, "keepwarm init ended before asking"
        shown += char
    time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    # Wait before stdin closes: an end of input that came with the signal could win the race.
    proc.wait(timeout=30)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "interrupted" in err


def test_input_ending_at_a_prompt_is_one_line(tmp_path: Path) -> None:
    proc = _keepwarm("--config", str(tmp_path / "c.toml"), "init")
    _out, err = proc.communicate(input="", timeout=30)
    assert proc.returncode == 2, err
    assert "pass the values as flags" in err and "Traceback" not in err


def test_service_install_template_is_one_instance_per_person(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(packaged, "keepwarm_command", lambda: ["/opt/kw/bin/keepwarm"])
    res = CliRunner().invoke(
        cli, ["service", "install", "--template", "--dir", str(tmp_path)], env=_env(tmp_path)
    )
    assert res.exit_code == 0, res.output
    lines = (tmp_path / "keepwarm@.service").read_text().splitlines()
    assert "ExecStart=/opt/kw/bin/keepwarm --config %d/config.toml run" in lines
    assert "systemctl enable --now keepwarm@alice" in res.output
