"""keepwarm CLI commands: local (``keepwarm import mbox|maildir|ics|vcard PATH``)."""

from __future__ import annotations

import hashlib
import json
import re
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from types import FrameType
from urllib.parse import urlsplit

import click

from keepwarm.connectors import registry
from keepwarm.connectors.base import ConnectorError
from keepwarm.daemon import completion
from keepwarm.daemon import config as cfgmod
from keepwarm.daemon.commands.base import EXIT_FAIL, Ctx, ProgressPrinter, UserError, cli, pass_ctx
from keepwarm.daemon.config import Account, Config
from keepwarm.daemon.words import plural

__all__ = ["cli", "default_account_name", "import_account"]


class ImportKinds(click.Choice[str]):
    """The kinds ``keepwarm import`` reads, as a choice found when first needed: finding them
    imports the module of every connector kind, which no other command needs (about 10 ms of
    every command's start-up)."""

    def __init__(self) -> None:
        super().__init__(())
        self._kinds: tuple[str, ...] | None = None

    @property  # type: ignore[override]
    def choices(self) -> tuple[str, ...]:
        if self._kinds is None:
            self._kinds = registry.kinds_where(lambda k: k.importable)
        return self._kinds

    @choices.setter
    def choices(self, value: tuple[str, ...]) -> None:  # click.Choice sets them: () here
        pass


def default_account_name(kind: str, path: Path | str) -> str:
    """A stable account name for an imported path (or a calendar's address): the same path
    always gets the same name."""
    if isinstance(path, str):  # an address: named after its host and file
        absolute = path
        parts = urlsplit(path)
        tail = (parts.path.rstrip("/").rsplit("/", 1)[-1] or "").removesuffix(".ics")
        slug = re.sub(r"[^a-z0-9]+", "-", f"{parts.hostname or ''} {tail}".lower())
        slug = slug.strip("-")[:32] or "feed"
    else:
        absolute = str(path.expanduser().absolute())
        slug = re.sub(r"[^a-z0-9]+", "-", path.name.lower()).strip("-")[:32] or "root"
    digest = hashlib.blake2b(absolute.encode("utf-8", "surrogateescape"), digest_size=4).hexdigest()
    return f"{kind}-{slug}-{digest}"


def import_account(kind: str, name: str, path: Path | str, config: Config) -> Account:
    """An account for ``keepwarm import`` with the kind's default options and ``path``."""
    options = registry.get(kind).options(path=path)
    interval = config.daemon.get("sync_interval") or timedelta(minutes=15)
    return Account(name, kind, True, interval, options)


def _load_config(obj: Ctx) -> Config:
    path = cfgmod.find_config(obj.config_path)
    if not path.exists():
        raise UserError(
            f"no keepwarm config at {path}: an import needs one (it says where the database lives "
            "and which addresses are yours). Run 'keepwarm init' first, or pass --config PATH."
        )
    return obj.config


@contextmanager
def _stop_on_ctrl_c(stop: threading.Event) -> Iterator[None]:
    """The first Ctrl-C finishes the batch in hand and stops; a second one stops at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(_sig: int, _frame: FrameType | None) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        click.echo("\nstopping after the current batch (Ctrl-C again to stop now)", err=True)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _check_name(obj: Ctx, config: Config, name: str, kind: str) -> None:
    for acct in config.accounts:
        if acct.name == name and acct.kind != kind:
            raise UserError(
                f'account "{name}" is configured as kind "{acct.kind}", not "{kind}"; '
                "choose another name with --account NAME"
            )
    with obj.store() as store:
        for state in store.account_states():
            if state.name == name and state.kind != kind:
                raise UserError(
                    f'account "{name}" already holds {state.kind} data; '
                    "choose another name with --account NAME"
                )


@cli.command("import")
@click.argument("kind", type=ImportKinds())
@click.argument("path", type=click.Path())  # a string: for ics, also a calendar's address
@click.option(
    "--account",
    "account_name",
    metavar="NAME",
    shell_complete=completion.accounts,
    help="Account name to file the records under (default: derived from the path, so "
    "importing the same path again only adds what is new).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
@pass_ctx
def import_(obj: Ctx, kind: str, path: str, account_name: str | None, as_json: bool) -> None:
    """Import a Google Takeout mbox, a maildir (or Enron-style archive), .ics or .vcf files.

    For ics, PATH may also be a published calendar's https:// or webcal:// address. The config
    is not changed. Running the same import again reads only what changed since.
    """
    from keepwarm.daemon.accounts import make_connector
    from keepwarm.daemon.actions import ActionInbox
    from keepwarm.daemon.sync import run_account

    config = _load_config(obj)
    source = _import_source(kind, path)
    name = account_name or default_account_name(kind, source)
    _check_name(obj, config, name, kind)
    try:
        connector = make_connector(import_account(kind, name, source, config), config)
    except ConnectorError as exc:
        raise UserError(str(exc)) from None
    label = source if isinstance(source, str) else (source.name or str(source))
    printer = ProgressPrinter(f"importing {label}")
    stop = threading.Event()
    with obj.store() as store, _stop_on_ctrl_c(stop):
        existed = any(s.name == name for s in store.account_states())
        try:
            outcome = run_account(
                store, connector, on_batch=printer, stop=stop, intercept=ActionInbox(config, store)
            )
        finally:
            printer.close()
        if outcome.state not in ("ok", "interrupted") and not existed:
            store.forget_account(name)  # a failed first import leaves no account behind
    if as_json:
        click.echo(json.dumps({**outcome.to_json(), "kind": kind, "path": str(path)}, indent=2))
    elif outcome.state == "ok":
        click.echo(outcome.summary())
    elif outcome.state == "interrupted":
        click.echo(f"{outcome.summary()} (interrupted: run the same command again to continue)")
    else:
        click.echo(f"import failed: {outcome.error}", err=True)
    if outcome.state not in ("ok", "interrupted"):
        sys.exit(EXIT_FAIL)


def _import_source(kind: str, path: str) -> Path | str:
    """What ``keepwarm import`` reads: a published calendar's address, or an existing path."""
    if kind == "ics":  # only then may it be an address (the calendar parser loads with it)
        from keepwarm.connectors.local.ics import feed_url

        if feed_url(path):
            return path.strip()
    source = Path(path).expanduser().absolute()
    if not source.exists():
        raise UserError(f"{source} does not exist; check the path (nothing was imported)")
    return source


@cli.command()
@click.argument("account", shell_complete=completion.accounts)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_ctx
def forget(obj: Ctx, account: str, yes: bool) -> None:
    """Forget ACCOUNT and the mail and meetings seen only through it.

    Mail another account also saw stays, and so do your decisions. Use it for an import of the
    wrong folder, or an account you no longer use ('keepwarm status' lists every account).
    """
    config = obj.config
    with obj.store() as store:
        names = [s.name for s in store.account_states()]
        if account not in names:
            known = ", ".join(names) or "none"
            raise UserError(f'no account named "{account}" in the database; accounts: {known}')
        n_msg, n_ev = store.account_counts(account)
        what = f"{plural(n_msg, 'message')} and {plural(n_ev, 'event')}"
        if not yes:
            if not sys.stdin.isatty():
                raise UserError(f"forgetting {account} ({what}) needs --yes without a terminal")
            click.confirm(
                f"Forget {account} and what was seen only through it ({what})?", abort=True
            )
        store.forget_account(account)
    click.echo(f"forgot {account} ({what} were seen through it)")
    if any(a.name == account for a in config.accounts):
        click.echo(
            f"note: {account} is still in your config, so the next sync reads it again; "
            "remove its [[accounts]] table to stop that",
            err=True,
        )
