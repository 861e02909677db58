"""Shell completion (commands, account names, people) and the man page, both generated from the
CLI, so nothing in them can drift from the commands."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from keepwarm.connectors.base import Address, Batch, MessageMeta
from keepwarm.daemon.cli import cli
from keepwarm.daemon.commands.manual import man_page
from keepwarm.daemon.store import Store

KEEPWARM = Path(sys.executable).parent / "keepwarm"


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    store = Store.open(tmp_path / "kw.db")
    store.apply_batch(
        "imported-archive",
        "maildir",
        Batch(
            messages=[
                MessageMeta(
                    account="imported-archive",
                    provider_id="1",
                    date=__import__("datetime").datetime(
                        2025, 1, 1, tzinfo=__import__("datetime").UTC
                    ),
                    sender=Address("maya.lopez@example.org", "Maya Lopez"),
                    to=(Address("me@example.com"),),
                )
            ]
        ),
    )
    store.close()
    path = tmp_path / "config.toml"
    path.write_text(
        '[me]\nname = "J"\naddresses = ["me@example.com"]\ntimezone = "UTC"\n'
        f'[store]\npath = "{tmp_path / "kw.db"}"\n'
        f'[[accounts]]\nname = "work"\nkind = "maildir"\npath = "{tmp_path}"\n'
    )
    return path


def complete(cfg: Path, words: str) -> list[str]:
    """What bash would offer after ``words`` (the last word is the one being typed)."""
    parts = ["keepwarm", "--config", str(cfg), *words.split(" ")]
    env = {
        **os.environ,
        "_KEEPWARM_COMPLETE": "bash_complete",
        "COMP_WORDS": " ".join(parts),
        "COMP_CWORD": str(len(parts) - 1),
    }
    res = subprocess.run([str(KEEPWARM)], env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    return [line.split(",", 1)[1] for line in res.stdout.splitlines() if "," in line]


def test_completion_of_commands_accounts_people_and_kinds(cfg: Path) -> None:
    assert {"done", "dismiss", "doctor", "decisions", "demo", "digest"} <= set(complete(cfg, "d"))
    assert complete(cfg, "sync ") == ["imported-archive", "work"]
    assert complete(cfg, "forget imp") == ["imported-archive"]
    assert complete(cfg, "person maya") == ["maya.lopez@example.org"]
    assert complete(cfg, "done ma") == ["maya.lopez@example.org"]
    assert complete(cfg, "dismiss maya.lopez@example.org rec") == ["reconnect"]


def test_completion_scripts_for_each_shell() -> None:
    for shell in ("bash", "zsh", "fish"):
        res = CliRunner().invoke(cli, ["completion", shell])
        assert res.exit_code == 0 and "_KEEPWARM_COMPLETE" in res.output, shell


def test_the_man_page_lists_every_command_and_option_and_renders_cleanly(tmp_path: Path) -> None:
    page = man_page()

    def commands(group: click.Group, prefix: str = "") -> list[tuple[str, click.Command]]:
        out = []
        for name, cmd in group.commands.items():
            if isinstance(cmd, click.Group):
                out += commands(cmd, f"{prefix}{name} ")
            else:
                out.append((prefix + name, cmd))
        return out

    for name, cmd in commands(cli):
        assert f".SS keepwarm {name}".replace("-", "\\-") in page, name
        for p in cmd.params:
            if isinstance(p, click.Option):
                assert p.opts[-1].replace("-", "\\-") in page, (name, p.opts)
    groff = shutil.which("groff")
    assert groff, "groff is missing: install Debian's groff-base (make test does)"
    (tmp_path / "keepwarm.1").write_text(page)
    res = subprocess.run(
        [groff, "-man", "-Tutf8", "-ww", "-z", str(tmp_path / "keepwarm.1")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0 and not res.stderr, res.stderr
