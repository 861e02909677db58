"""Start-up stays light: the commands every user and script runs often (``--version``, ``--help``,
``status``) never import the heavy libraries (the engine's numpy, the templates, the calendar
parser, the Google and Microsoft SDKs, ssl...), which load only in the commands that use them.

This checks which modules a fresh process imported, never how long it took (bench/cli_scale.py
prints the times)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = (
    "numpy",
    "jinja2",
    "sqlite_utils",
    "icalendar",
    "recurring_ical_events",
    "googleapiclient",
    "google.auth",
    "google_auth_oauthlib",
    "httplib2",
    "msal",
    "caldav",
    "requests",
    "imapclient",
    "smtplib",
    "ssl",  # with urllib.request and http.client: only a network sync needs them
    "urllib.request",
    "keepwarm.daemon.packaged",  # importlib.resources and the packaged files: init and service
)

PROBE = """
import json, sys
from keepwarm.daemon.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
heavy = json.loads(HEAVY)
loaded = sorted(m for m in sys.modules if m in heavy or m.split(".")[0] in heavy)
print("\\nLOADED " + json.dumps(loaded))
"""


def loaded_by(args: list[str], tmp_path: Path, watched: tuple[str, ...] = HEAVY) -> list[str]:
    """Which of the ``watched`` modules (and, for a top-level name, its submodules) a fresh
    ``keepwarm ARGS`` imported."""
    probe = PROBE.replace("HEAVY", repr(json.dumps(watched)))
    proc = subprocess.run(
        [sys.executable, "-c", probe, *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
        timeout=60,
    )
    line = proc.stdout.rsplit("LOADED ", 1)
    assert len(line) == 2, proc.stdout + proc.stderr
    return list(json.loads(line[1]))


def config(tmp_path: Path) -> Path:
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        '[me]\nname = "Jane Doe"\naddresses = ["jane@example.com"]\ntimezone = "UTC"\n\n'
        f'[store]\npath = "{tmp_path / "keepwarm.db"}"\n\n'
        '[[accounts]]\nname = "work"\nkind = "gmail"\n\n'
        '[[accounts]]\nname = "office"\nkind = "microsoft"\nclient_id = "x"\n'
    )
    return cfg


@pytest.mark.parametrize("args", [["--version"], ["--help"], ["status"], ["status", "--json"]])
def test_light_commands_import_no_heavy_library(tmp_path: Path, args: list[str]) -> None:
    cfg = config(tmp_path)
    loaded_by(["--config", str(cfg), "status"], tmp_path)  # creates the database (migrations)
    # nor threads (the history commands' bulk reads: about 6 ms of every start otherwise)
    watched = (*HEAVY, "concurrent.futures")
    assert loaded_by(["--config", str(cfg), *args], tmp_path, watched) == []


KIND_MODULES = tuple(
    f"keepwarm.connectors.{m}" for m in ("local", "imap", "dav", "google", "microsoft")
)


@pytest.mark.parametrize(
    ("args", "kinds"),
    [
        (["--version"], []),
        (["--help"], []),
        (["status"], ["keepwarm.connectors.google", "keepwarm.connectors.microsoft"]),
    ],
)
def test_only_the_configured_kinds_modules_load(
    tmp_path: Path, args: list[str], kinds: list[str]
) -> None:
    """A connector kind's module loads when an account of that kind is configured (or
    ``keepwarm import`` needs its choices), not at every start-up."""
    cfg = config(tmp_path)  # a gmail and a microsoft account
    loaded_by(["--config", str(cfg), "status"], tmp_path)  # creates the database (migrations)
    assert loaded_by(["--config", str(cfg), *args], tmp_path, KIND_MODULES) == kinds


def test_the_engine_loads_where_it_runs(tmp_path: Path) -> None:
    """The check sees imports: the people command does load the engine's numpy."""
    cfg = config(tmp_path)
    assert "numpy" in loaded_by(["--config", str(cfg), "people"], tmp_path)


def test_a_mail_import_loads_no_calendar_parser(tmp_path: Path) -> None:
    """``keepwarm import maildir`` (run again by scripts after each mail fetch) loads neither the
    calendar parser nor the engine."""
    cfg = config(tmp_path)
    (tmp_path / "Mail" / "cur").mkdir(parents=True)
    (tmp_path / "Mail" / "cur" / "1.M1.host:2,S").write_bytes(
        b"From: a@example.com\nTo: jane@example.com\nDate: Mon, 1 Jun 2026 10:00:00 +0000\n"
        b"Message-ID: <1@example.com>\nSubject: hi\n\nhello\n"
    )
    loaded_by(["--config", str(cfg), "status"], tmp_path)  # creates the database (migrations)
    args = ["--config", str(cfg), "import", "maildir", str(tmp_path / "Mail")]
    assert loaded_by(args, tmp_path) == []
    assert loaded_by(args, tmp_path) == []  # again: nothing changed
