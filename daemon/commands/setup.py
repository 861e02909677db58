"""keepwarm CLI commands: init (the first config)."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import click

from keepwarm.connectors.headers import normalize_address
from keepwarm.daemon import config as cfgmod
from keepwarm.daemon.commands.base import Ctx, UserError, cli, pass_ctx

__all__ = ["STARTER", "cli", "local_zone_name", "this_command"]

STARTER = """\
# keepwarm configuration, written by `keepwarm init`.
# Every option, with its default and what it does: `keepwarm init --example`.
# Durations are written like "30s", "15m", "6h", "90d", "2w", "6mo", "3y".

[me]
name = {name}
addresses = [{addresses}]   # every address you send from
timezone = "{timezone}"      # the digest's days and times are in this zone

# Mail and calendar files need no account here: `keepwarm import maildir ~/Mail` (or mbox, ics).
# Accounts the daemon keeps in sync (gmail, gcal, microsoft, imap, or files), for example:
# [[accounts]]
# name = "work"
# kind = "imap"             # every kind and its keys: keepwarm init --example
# host = "imap.example.com"
# username = "{first_address}"
# password_file = "~/.config/keepwarm/imap-password"   # never the password itself

[digest]
time = "07:30"              # when the morning digest is made, in your time zone
max_items = 7

[delivery]
method = "file"             # file (an outbox folder) | smtp | gmail | microsoft
"""


def local_zone_name() -> str:
    """This machine's IANA time zone ($TZ, /etc/timezone, /etc/localtime), else UTC."""
    candidates: list[str] = []
    tz = os.environ.get("TZ", "").lstrip(":")
    if tz:
        candidates.append(tz.split("zoneinfo/", 1)[1] if "zoneinfo/" in tz else tz)
    with contextlib.suppress(OSError):
        candidates.append(Path("/etc/timezone").read_text(encoding="utf-8").strip())
    try:
        link = os.readlink("/etc/localtime")
        if "zoneinfo/" in link:
            candidates.append(link.split("zoneinfo/", 1)[1])
    except OSError:
        pass
    for name in candidates:
        if _valid_zone(name):
            return name
    return "UTC"


def _valid_zone(name: str) -> bool:
    if not name or name.startswith("/"):
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _zone(value: str) -> str:
    name = value.strip()
    if not _valid_zone(name):
        raise click.BadParameter(
            f'"{name}" is not an IANA time zone; use a name such as Europe/Berlin or '
            "America/New_York (see `timedatectl list-timezones`)"
        )
    return name


def _addresses(value: str | tuple[str, ...]) -> tuple[str, ...]:
    parts = value.split(",") if isinstance(value, str) else [p for v in value for p in v.split(",")]
    out = tuple(p.strip() for p in parts if p.strip())
    if not out:
        raise click.BadParameter("give at least one email address")
    bad = [p for p in out if normalize_address(p) is None]
    if bad:
        raise click.BadParameter(f"not an email address: {', '.join(bad)}")
    return out


def this_command(obj: Ctx) -> str:
    """``keepwarm`` plus ``--config PATH`` when the config is not at the default place."""
    from keepwarm.daemon.packaged import shell_command  # importlib.resources: not at start-up

    path = cfgmod.find_config(obj.config_path)
    if path.absolute() == cfgmod.default_config_path() or not obj.config_path:
        return "keepwarm"
    return shell_command(["keepwarm", "--config", str(path)])


@cli.command()
@click.option("--name", metavar="NAME", help="Your name (asked when not given).")
@click.option(
    "--address",
    "addresses",
    multiple=True,
    metavar="ADDRESS",
    help="An address you send from (repeatable; asked when not given).",
)
@click.option(
    "--timezone",
    metavar="ZONE",
    help="Your IANA time zone, e.g. Europe/Berlin (asked when not given; default: this "
    "machine's zone).",
)
@click.option(
    "--no-input",
    "no_input",
    is_flag=True,
    help="Never ask: take the flags, and this machine's time zone when --timezone is not given.",
)
@click.option(
    "--example",
    is_flag=True,
    help="Print the fully commented example config (every option, with its default) and exit.",
)
@click.option("--force", is_flag=True, help="Overwrite an existing config file.")
@pass_ctx
def init(
    obj: Ctx,
    name: str | None,
    addresses: tuple[str, ...],
    timezone: str | None,
    no_input: bool,
    example: bool,
    force: bool,
) -> None:
    """Write a commented starter config (your name, addresses and time zone).

    Asks for what the flags do not give; with --no-input it never asks (for scripts):
    'keepwarm init --name "Jane Doe" --address jane@example.com --timezone Europe/Berlin'.
    """
    from keepwarm.core.files import write_private
    from keepwarm.daemon.packaged import example_config

    if example:
        click.echo(example_config(), nl=False)
        return
    path = cfgmod.find_config(obj.config_path)
    if path.exists() and not force:
        raise UserError(f"{path} already exists; edit it, or pass --force to overwrite it")
    if not name:
        if no_input:
            raise UserError('--no-input needs --name, e.g. --name "Jane Doe"')
        name = click.prompt("Your name", value_proc=_nonempty)
    try:
        addrs = _addresses(addresses) if addresses else ()
    except click.BadParameter as exc:
        raise UserError(f"--address: {exc.message}") from None
    if not addrs:
        if no_input:
            raise UserError("--no-input needs --address, e.g. --address jane@example.com")
        addrs = click.prompt("Your email address(es), comma separated", value_proc=_addresses)
    zone = _init_zone(timezone, no_input)
    text = STARTER.format(
        name=json.dumps(name.strip(), ensure_ascii=False),
        addresses=", ".join(json.dumps(a) for a in addrs),
        first_address=addrs[0],
        timezone=zone,
    )
    cfgmod.loads(text)
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_private(path, text.encode("utf-8"))
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}") from None
    kw = this_command(obj)
    click.echo(f"wrote {path} (readable only by you; time zone {zone})")
    click.echo("Next, add your mail and calendar. Files (a maildir, an mbox, or .ics):")
    click.echo(f"  {kw} import maildir ~/Mail")
    click.echo(
        "Gmail, Outlook or IMAP: add an [[accounts]] table to the config "
        f"(`{kw} init --example` shows every kind), then:"
    )
    click.echo(f"  {kw} sync")
    click.echo(
        f"Then `{kw} people` lists your relationships and `{kw} digest` previews the digest."
    )


def _init_zone(timezone: str | None, no_input: bool) -> str:
    """The time zone for ``keepwarm init``: --timezone, else asked, else this machine's."""
    default_zone = local_zone_name()
    if timezone:
        try:
            return _zone(timezone)
        except click.BadParameter as exc:
            raise UserError(f"--timezone: {exc.message}") from None
    if no_input:
        return default_zone
    return str(click.prompt("Your time zone", default=default_zone, value_proc=_zone))


def _nonempty(value: str) -> str:
    if not value.strip():
        raise click.BadParameter("give a name")
    return value.strip()
