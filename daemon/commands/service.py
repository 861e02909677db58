"""keepwarm CLI commands: service (``run``, the daemon; ``doctor``, its health checks)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime

import click

from keepwarm.daemon import config as cfgmod
from keepwarm.daemon.cli import EXIT_FAIL, Ctx, UserError, cli, pass_ctx
from keepwarm.daemon.config import ConfigError

__all__ = ["cli"]


@cli.command()
@click.pass_context
def run(ctx: click.Context) -> None:
    """Run the daemon in the foreground (what the systemd unit starts).

    Syncs every account on its interval, sends the digest each morning, reloads the config on
    SIGHUP and stops cleanly on SIGTERM.
    """
    from keepwarm.daemon.lock import AlreadyRunning
    from keepwarm.daemon.logs import configure
    from keepwarm.daemon.service import Service, StartupError
    from keepwarm.daemon.systemd import Notifier

    obj: Ctx = ctx.ensure_object(Ctx)
    verbose = int((ctx.parent.params.get("verbose") if ctx.parent else 0) or 0)
    notifier = Notifier.from_environment()
    config = obj.config
    if not verbose:
        configure(config.daemon["log_level"])
    service = Service(obj.config_path, config, notifier=notifier, log_level_fixed=bool(verbose))
    try:
        service.start()
    except (AlreadyRunning, StartupError) as exc:
        raise UserError(str(exc)) from None
    sys.exit(service.run())


@cli.command()
@click.option(
    "--timeout",
    default=5.0,
    show_default=True,
    metavar="SECONDS",
    help="Timeout of each network check.",
)
@pass_ctx
def doctor(obj: Ctx, timeout: float) -> None:
    """Check the config, file permissions, tokens, sources, SMTP login and schedule.

    Prints one line per check, with the fix for each failure; exits non-zero if any failed.
    """
    from keepwarm.daemon.doctor import Check, run_checks
    from keepwarm.daemon.lock import lock_path_for, running_daemon

    path = cfgmod.find_config(obj.config_path)
    try:
        config = cfgmod.load(obj.config_path)
    except ConfigError as exc:
        click.echo(Check("config", False, f"{path}: {len(exc.problems)} problem(s)").line())
        for p in exc.problems:
            click.echo(f"       - {p}")
        click.echo("       fix: edit the config (every key is documented in config.example.toml)")
        sys.exit(EXIT_FAIL)
    click.echo(Check("config", True, f"{path} ({len(config.accounts)} account(s))").line())
    failed = 0
    for check in run_checks(config, datetime.now(UTC), timeout):
        click.echo(check.line())
        failed += 0 if check.ok or check.warning else 1
    info = running_daemon(lock_path_for(config.store_path))
    if info is not None:
        click.echo(Check("daemon", True, f"running (pid {info.pid})").line())
    else:
        click.echo(
            Check(
                "daemon",
                False,
                "not running",
                "systemctl --user start keepwarm (or systemctl start keepwarm, or keepwarm run)",
                warning=True,
            ).line()
        )
    if failed:
        click.echo(f"{failed} check(s) failed", err=True)
        sys.exit(EXIT_FAIL)
