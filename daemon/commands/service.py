"""keepwarm CLI commands: service (``run``, the daemon; ``doctor``, its health checks)."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from keepwarm.daemon import config as cfgmod
from keepwarm.daemon.commands.base import EXIT_FAIL, Ctx, UserError, cli, pass_ctx
from keepwarm.daemon.config import ConfigError
from keepwarm.daemon.words import plural

if TYPE_CHECKING:
    from keepwarm.daemon.packaged import Scope

__all__ = ["cli", "service"]


@cli.command()
@click.pass_context
def run(ctx: click.Context) -> None:
    """Run the daemon in the foreground (what the systemd unit starts).

    Syncs every account on its interval, sends the digest each morning, reloads the config on
    SIGHUP and stops cleanly on SIGTERM.
    """
    from keepwarm.daemon.logs import configure
    from keepwarm.daemon.service import Service
    from keepwarm.daemon.systemd import Notifier

    obj: Ctx = ctx.ensure_object(Ctx)
    verbose = int((ctx.parent.params.get("verbose") if ctx.parent else 0) or 0)
    notifier = Notifier.from_environment()
    config = obj.config
    if not verbose:
        configure(config.daemon["log_level"])
    service = Service(obj.config_path, config, notifier=notifier, log_level_fixed=bool(verbose))
    service.start()
    sys.exit(service.run())


@cli.command()
@click.option(
    "--timeout",
    default=5.0,
    show_default=True,
    metavar="SECONDS",
    help="Timeout of each network check.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON.")
@pass_ctx
def doctor(obj: Ctx, timeout: float, as_json: bool) -> None:
    """Check the config, file permissions, tokens, sources, SMTP login and schedule.

    Prints one line per check, with the fix for each failure; exits non-zero if any failed.
    """
    from keepwarm.daemon.doctor import Check, run_checks
    from keepwarm.daemon.lock import lock_path_for, running_daemon

    path = cfgmod.find_config(obj.config_path)
    checks: list[Check] = []
    try:
        config = cfgmod.load(obj.config_path)
    except ConfigError as exc:
        checks.append(
            Check(
                "config",
                False,
                f"{path}: {plural(len(exc.problems), 'problem')}: " + "; ".join(exc.problems),
                "edit the config (every key: `keepwarm init --example`)",
            )
        )
        _print_checks(checks, as_json)
        sys.exit(EXIT_FAIL)
    checks.append(Check("config", True, f"{path} ({plural(len(config.accounts), 'account')})"))
    checks.extend(run_checks(config, datetime.now(UTC), timeout))
    info = running_daemon(lock_path_for(config.store_path))
    if info is not None:
        checks.append(Check("daemon", True, f"running (pid {info.pid})"))
    else:
        checks.append(
            Check(
                "daemon",
                False,
                "not running",
                "keepwarm service install --user (then systemctl --user enable --now keepwarm), "
                "or keepwarm run",
                warning=True,
            )
        )
    _print_checks(checks, as_json)
    if any(not c.ok and not c.warning for c in checks):
        sys.exit(EXIT_FAIL)


def _print_checks(checks: list[Any], as_json: bool) -> None:
    failed = sum(1 for c in checks if not c.ok and not c.warning)
    if as_json:
        rows = [
            {
                "name": c.name,
                "ok": c.ok,
                "warning": c.warning and not c.ok,
                "detail": c.detail,
                "fix": c.fix if not c.ok else None,
            }
            for c in checks
        ]
        click.echo(json.dumps({"ok": failed == 0, "failed": failed, "checks": rows}, indent=2))
        return
    for c in checks:
        click.echo(c.line())
    if failed:
        click.echo(f"{plural(failed, 'check')} failed", err=True)


# -- service install -----------------------------------------------------------------------------
@cli.group()
def service() -> None:
    """Install keepwarm as a systemd service (user or system unit)."""


@service.command("install")
@click.option(
    "--user",
    "scope",
    flag_value="user",
    help="A user unit: runs as you, reads mail files in your home directory.",
)
@click.option(
    "--system",
    "scope",
    flag_value="system",
    help="The hardened system unit (run as root): config in /etc/keepwarm, state in "
    "/var/lib/keepwarm.",
)
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    metavar="DIR",
    help="Write the unit into DIR instead of systemd's folder (to review it, or for packaging).",
)
@click.option(
    "--template",
    "scope",
    flag_value="template",
    help="The system template keepwarm@.service: one instance per person (keepwarm@alice).",
)
@click.option("--force", is_flag=True, help="Overwrite an existing unit file.")
@pass_ctx
def install(obj: Ctx, scope: str | None, directory: Path | None, force: bool) -> None:
    """Write the systemd unit that runs this keepwarm, then say how to enable and check it.

    ExecStart points at the keepwarm you ran this with (a venv, pipx, a wheel install), so the
    service runs the same installation.
    """
    from keepwarm.daemon.packaged import UNIT_NAMES, render_unit, unit_dir

    chosen, command = _unit_scope(scope, force)
    config_path = cfgmod.find_config(obj.config_path)
    text = render_unit(chosen, command, config_path)
    target_dir = directory or unit_dir(chosen)
    target = target_dir / UNIT_NAMES[chosen]
    if target.exists() and not force:
        raise UserError(f"{target} already exists; pass --force to replace it")
    try:
        target_dir.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    except OSError as exc:
        hint = " (run it with sudo)" if scope != "user" and directory is None else ""
        raise UserError(f"cannot write {target}: {exc.strerror or exc}{hint}") from None
    exec_line = next(line for line in text.splitlines() if line.startswith("ExecStart="))
    click.echo(f"wrote {target}")
    click.echo(f"  {exec_line}")
    if chosen == "user":
        _user_next_steps(target, directory, config_path)
    else:
        _system_next_steps(target, directory, config_path, chosen)


def _unit_scope(scope: str | None, force: bool) -> tuple[Scope, list[str]]:
    """Which unit ``keepwarm service install`` writes, and the keepwarm command it runs (which a
    system unit must be able to see)."""
    from keepwarm.daemon.packaged import hidden_from_system_units, keepwarm_command

    if scope not in ("user", "system", "template"):
        raise UserError(
            "say which unit: --user (runs as you, reads mail files in your home), --system "
            "(hardened system service; run it as root) or --template (one instance per person)"
        )
    command = keepwarm_command()
    if scope != "user":
        hidden = hidden_from_system_units(command)
        if hidden and not force:
            raise UserError(
                f"this keepwarm is installed at {hidden}, which the hardened system unit cannot "
                "see (ProtectHome=yes); install keepwarm outside /home and /root (for example "
                "python3 -m venv /opt/keepwarm && /opt/keepwarm/bin/pip install keepwarm-*.whl) "
                "and run that one's `keepwarm service install --system`, or use --user"
            )
    chosen: Scope = "user" if scope == "user" else "system" if scope == "system" else "template"
    return chosen, command


def _user_next_steps(target: Path, directory: Path | None, config_path: Path) -> None:
    from keepwarm.daemon.packaged import unit_dir

    steps = []
    if directory is not None:
        steps.append(f"mkdir -p {unit_dir('user')} && cp {target} {unit_dir('user')}/")
    if not config_path.exists():
        click.echo(f"note: there is no config at {config_path} yet; run `keepwarm init` first")
    steps += [
        "systemctl --user daemon-reload",
        "systemctl --user enable --now keepwarm",
        'loginctl enable-linger "$USER"    # keep it running while you are logged out',
    ]
    click.echo("Enable it:")
    for s in steps:
        click.echo(f"  {s}")
    click.echo("Check it:")
    click.echo("  systemctl --user status keepwarm")
    click.echo("  journalctl --user -u keepwarm -f")
    click.echo("  keepwarm status")


def _system_next_steps(target: Path, directory: Path | None, config_path: Path, scope: str) -> None:
    from keepwarm.daemon.packaged import unit_dir

    unit, etc = (
        ("keepwarm@alice", "/etc/keepwarm/alice")
        if scope == "template"
        else ("keepwarm", "/etc/keepwarm")
    )
    steps = []
    if directory is not None:
        steps.append(f"cp {target} {unit_dir('system')}/")
    steps += [
        f"install -d -m 0700 {etc}",
        f"install -m 0600 {config_path} {etc}/config.toml",
        "systemctl daemon-reload",
        f"systemctl enable --now {unit}",
    ]
    click.echo(
        "Enable it (as root)"
        + (", one instance per person, e.g. alice:" if scope == "template" else ":")
    )
    for s in steps:
        click.echo(f"  {s}")
    click.echo("Check it:")
    click.echo(f"  systemctl status {unit}")
    click.echo(f"  journalctl -u {unit} -f")
    state = "/var/lib/keepwarm/alice" if scope == "template" else "/var/lib/keepwarm"
    click.echo(f"  STATE_DIRECTORY={state} keepwarm --config {etc}/config.toml status")
