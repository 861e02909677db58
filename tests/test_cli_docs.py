"""Every CLI command has help text."""

from __future__ import annotations

import click

from keepwarm.daemon.cli import cli


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
