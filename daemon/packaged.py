"""Files shipped inside the package (the example config, the systemd units) and what this
installation is: the command a service should start.

They live in ``daemon/data/`` (package data), so a wheel installed anywhere has them; nothing
here assumes a checkout.
"""

from __future__ import annotations

import os
import shlex
import sys
from importlib import resources
from pathlib import Path
from typing import Literal

from keepwarm.daemon.config import default_config_path

Scope = Literal["user", "system", "template"]

UNIT_SOURCES: dict[Scope, str] = {
    "user": "keepwarm-user.service",
    "system": "keepwarm.service",
    "template": "keepwarm@.service",
}
UNIT_NAMES: dict[Scope, str] = {
    "user": "keepwarm.service",
    "system": "keepwarm.service",
    "template": "keepwarm@.service",
}
# The hardened system unit cannot see these (ProtectHome=yes), so a keepwarm installed there
# cannot be its ExecStart.
HIDDEN_FROM_SYSTEM_UNITS = ("/home", "/root", "/run/user")


def data_text(*parts: str) -> str:
    """A text file from ``daemon/data``."""
    node = resources.files("keepwarm.daemon").joinpath("data", *parts)
    return node.read_text(encoding="utf-8")


def example_config() -> str:
    """The fully commented example config: every option with its default."""
    return data_text("config.example.toml")


def unit_template(name: str) -> str:
    return data_text("systemd", name)


def keepwarm_command() -> list[str]:
    """The command that starts this installation of keepwarm, as absolute arguments.

    The ``keepwarm`` script next to this interpreter when there is one (a venv, pipx), else the
    script this process was started as, else ``python -m keepwarm.daemon``.
    """
    beside = Path(sys.executable).parent / "keepwarm"
    if _is_executable(beside):
        return [str(beside.absolute())]
    started = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if started is not None and started.name == "keepwarm" and _is_executable(started):
        return [str(started.absolute())]
    return [str(Path(sys.executable).absolute()), "-m", "keepwarm.daemon"]


def _is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def systemd_quote(arg: str) -> str:
    """One ExecStart argument: ``%`` escaped (specifiers), quoted when it has spaces or quotes."""
    arg = arg.replace("%", "%%")
    if arg and not any(c in arg for c in " \t\"'\\;$"):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


def unit_dir(scope: Scope) -> Path:
    """Where systemd reads units of this scope from."""
    if scope != "user":
        return Path("/etc/systemd/system")
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "systemd" / "user"


def hidden_from_system_units(command: list[str]) -> str | None:
    """The first path of ``command`` the hardened system unit cannot see, if any."""
    for arg in command:
        if arg.startswith("/") and any(
            arg == d or arg.startswith(d + "/") for d in HIDDEN_FROM_SYSTEM_UNITS
        ):
            return arg
    return None


def render_unit(scope: Scope, command: list[str], config_path: Path | None = None) -> str:
    """The unit for ``scope`` with ``ExecStart`` running ``command``.

    The user unit passes ``--config`` when the config is not at the default place (a unit does
    not inherit ``$KEEPWARM_CONFIG`` from your shell); the system unit always reads the config
    systemd hands over as a credential.
    """
    text = unit_template(UNIT_SOURCES[scope])
    if scope == "user":
        args = [*command]
        if config_path is not None and config_path.absolute() != default_config_path():
            args += ["--config", str(config_path.absolute())]
        exec_start = " ".join(systemd_quote(a) for a in [*args, "run"])
    else:
        exec_start = " ".join(systemd_quote(a) for a in command) + " --config %d/config.toml run"
    lines = []
    replaced = False
    for line in text.splitlines():
        if line.startswith("ExecStart="):
            line = f"ExecStart={exec_start}"
            replaced = True
        lines.append(line)
    if not replaced:  # pragma: no cover - guarded by the unit tests
        raise RuntimeError(f"{UNIT_SOURCES[scope]} has no ExecStart= line")
    return "\n".join(lines) + "\n"


def shell_command(args: list[str]) -> str:
    return " ".join(shlex.quote(a) for a in args)
