"""Ordinary mistakes end in one clear line with the fix and exit 2 (or 1 when something failed),
never a traceback: the real command, run as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

KEEPWARM = Path(sys.executable).parent / "keepwarm"

CASES: list[tuple[str, list[str], str]] = [
    ("unknown account", ["sync", "wrok"], 'no account named "wrok"'),
    ("--out into a missing folder", ["digest", "--out", "missing/dir/x.html"], "does not exist"),
    ("a date that is not one", ["digest", "--as-of", "2026-13-45"], "--as-of"),
    ("an unknown tier", ["people", "--tier", "nope"], 'no tier named "nope"'),
    ("an unknown address", ["person", "nobody@example.org"], "is not in your mail"),
    ("an unknown name", ["person", "Zed Nobody"], 'nobody named "Zed Nobody"'),
    ("a mistyped import path", ["import", "maildir", "/no/such/Mail"], "does not exist"),
    ("forgetting what is not there", ["forget", "nope", "--yes"], 'no account named "nope"'),
    ("a snooze of nobody", ["snooze", "x@example.org", "30d"], "is not in your mail"),
    ("undoing what is not there", ["decisions", "--undo", "99"], "no decision #99"),
    ("dismiss without a kind", ["dismiss", "x@example.org"], "give a PERSON and a KIND"),
    ("merge with one person", ["merge", "x@example.org"], "give two people"),
    ("a note without text", ["note", "x@example.org"], "give a PERSON and the TEXT"),
    (
        "init over a config",
        ["init", "--no-input", "--name", "J", "--address", "j@x.org"],
        "already exists",
    ),
    ("service without a scope", ["service", "install"], "--user"),
    ("auth of an unknown account", ["auth", "google", "nope"], 'no account named "nope"'),
    ("a shell keepwarm has no script for", ["completion", "tcsh"], "tcsh"),
    ("--force without --send", ["digest", "--force"], "--force only makes sense with --send"),
]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("home")
    cfg = root / "config.toml"
    cfg.write_text(
        '[me]\nname = "Jane"\naddresses = ["jane@example.com"]\ntimezone = "UTC"\n'
        f'[store]\npath = "{root / "kw.db"}"\n'
    )
    cfg.chmod(0o600)
    return root


def keepwarm(
    home: Path, *args: str, config: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "XDG_STATE_HOME": str(home / "state"), "KEEPWARM_DEBUG": ""}
    return subprocess.run(
        [str(KEEPWARM), "--config", str(config or home / "config.toml"), *args],
        capture_output=True,
        text=True,
        cwd=home,
        env=env,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )


@pytest.mark.parametrize(("what", "args", "says"), CASES, ids=[c[0] for c in CASES])
def test_one_line_no_traceback(home: Path, what: str, args: list[str], says: str) -> None:
    res = keepwarm(home, *args)
    out = res.stdout + res.stderr
    assert res.returncode == 2, f"{what}: exit {res.returncode}\n{out}"
    assert "Traceback" not in out and says in out, out


def test_a_broken_config_is_every_problem_no_traceback(home: Path) -> None:
    bad = home / "bad.toml"
    bad.write_text('[me]\nname = "J"\naddresses = ["nope"\n')
    res = keepwarm(home, "status", config=bad)
    assert res.returncode == 2 and "not valid TOML" in res.stderr and "Traceback" not in res.stderr
    res = keepwarm(home, "status", config=home / "missing.toml")
    assert res.returncode == 2 and "keepwarm init" in res.stderr
