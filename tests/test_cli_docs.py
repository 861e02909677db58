"""Every CLI command has help text and is in the README (docs are executable)."""

from __future__ import annotations

from pathlib import Path

import click

from keepwarm.daemon.cli import cli

README = Path(__file__).resolve().parent.parent / "README.md"


def _commands(group: click.Group, prefix: str = "") -> list[tuple[str, click.Command]]:
    out: list[tuple[str, click.Command]] = []
    for name, cmd in group.commands.items():
        full = f"{prefix}{name}"
        out.append((full, cmd))
        if isinstance(cmd, click.Group):
            out.extend(_commands(cmd, full + " "))
    return out


def test_every_command_has_help() -> None:
    missing = [name for name, cmd in _commands(cli) if not (cmd.help or "").strip()]
    assert not missing, f"commands without help: {missing}"


def test_every_command_is_in_the_readme() -> None:
    text = README.read_text()
    missing = [name for name, _ in _commands(cli) if f"keepwarm {name}" not in text]
    assert not missing, f"commands not documented in README.md: {missing}"
