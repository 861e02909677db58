"""keepwarm CLI commands: ``keepwarm auth google ACCOUNT`` (the ``auth`` group lives in cli.py)."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import click

from keepwarm.daemon import completion
from keepwarm.daemon.commands.base import EXIT_FAIL, Ctx, UserError, auth, pass_ctx
from keepwarm.daemon.config import Account, Config

PROMPT = """\
Open this address in a browser, sign in as the account to read, and allow access:

    {{url}}

No browser on this machine (a server over SSH)? On your own computer run
    ssh -N -L {port}:localhost:{port} {where}
keep it open, then open the address above there. Google redirects the browser to
http://localhost:{port}/, which reaches this command through the tunnel.
Waiting for Google's answer on port {port} (Ctrl-C to give up)..."""


def google_scopes(config: Config, account: Account) -> list[str]:
    """Scopes for every Google account sharing ``account``'s token file, plus send if delivering."""
    from keepwarm.connectors.google.auth import GMAIL_SEND, KIND_SCOPES

    path = config.token_path(account)
    sharing = [a for a in config.accounts if _google(a) and config.token_path(a) == path]
    scopes: list[str] = []
    for a in sharing:
        scopes += [s for s in KIND_SCOPES[a.kind] if s not in scopes]
    if config.delivery_method == "gmail" and config.delivery_account in {a.name for a in sharing}:
        scopes.append(GMAIL_SEND)
    return scopes


def _client_secrets(config: Config, account: Account, given: Path | None) -> Path:
    from keepwarm.connectors.google import GoogleOptions  # a kind's module: where it is used

    if given is not None:
        return given
    path = config.token_path(account)
    for a in (account, *config.accounts):
        options = a.options
        shared = a is account or config.token_path(a) == path
        if isinstance(options, GoogleOptions) and options.client_secrets and shared:
            return Path(options.client_secrets)
    raise UserError(
        f'account "{account.name}" has no client_secrets: pass --client-secrets FILE (the OAuth client '
        "JSON downloaded from the Google Cloud console, see docs/google.md) or set client_secrets "
        "in its [[accounts]] table"
    )


def _google(account: Account) -> bool:
    return account.spec.login == "google"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@auth.command("google")
@click.argument("account", shell_complete=completion.accounts)
@click.option(
    "--client-secrets",
    type=click.Path(dir_okay=False, path_type=Path),
    help="OAuth client JSON (Desktop app) from the Google Cloud console; default: the account's client_secrets.",
)
@click.option(
    "--port", type=int, default=0, help="Loopback port for Google's redirect (default: a free one)."
)
@click.option(
    "--bind",
    default=None,
    metavar="ADDR",
    help="Address to listen on (default localhost; 0.0.0.0 inside a container).",
)
@click.option(
    "--timeout", type=int, default=900, show_default=True, help="Seconds to wait for consent."
)
@pass_ctx
def google(
    obj: Ctx,
    account: str,
    client_secrets: Path | None,
    port: int,
    bind: str | None,
    timeout: int,
) -> None:
    """Authorise a gmail/gcal/gcontacts ACCOUNT: Google's consent in a browser, token saved 0600.

    Asks for gmail.metadata (headers and labels, never bodies), calendar.readonly and/or
    contacts.readonly for the Google accounts sharing the token file, and gmail.send only when
    the digest is delivered through that account.
    """
    from keepwarm.connectors.base import ConnectorError
    from keepwarm.connectors.google import GoogleOptions
    from keepwarm.connectors.google.auth import (
        missing_scopes,
        read_client_config,
        run_installed_flow,
        save_credentials,
    )

    config = obj.config
    acct = config.account(account)
    if not _google(acct) or not isinstance(acct.options, GoogleOptions):
        raise UserError(
            f'account "{account}" is of kind "{acct.kind}"; `keepwarm auth google` is for gmail, gcal and gcontacts accounts'
        )
    scopes = google_scopes(config, acct)
    token_path = config.token_path(acct)
    port = port or _free_port()
    try:
        client_config = read_client_config(_client_secrets(config, acct, client_secrets))
        if acct.options.token_uri:
            client_config["installed"]["token_uri"] = acct.options.token_uri
        click.echo("Requesting: " + ", ".join(s.rsplit("/", 1)[-1] for s in scopes))
        where = f"{_user()}@{socket.gethostname()}"
        creds = run_installed_flow(
            client_config,
            scopes,
            port=port,
            bind_addr=bind,
            prompt_message=PROMPT.format(port=port, where=where),
            timeout_seconds=timeout,
        )
        save_credentials(creds, token_path)
    except ConnectorError as exc:
        raise UserError(str(exc)) from None
    except OSError as exc:
        raise UserError(f"cannot listen on port {port} or save the token: {exc}") from None
    except Exception as exc:  # oauthlib / WSGI timeout / user denied access
        raise UserError(f"authorisation did not complete: {exc}") from None
    click.echo(f"Saved the token to {token_path} (readable only by you).")
    missing = missing_scopes(creds, scopes)
    if missing:
        click.echo(
            f"Error: Google did not grant {', '.join(missing)}: a permission was unticked on "
            f"the consent page. Run `keepwarm auth google {account}` again and tick every box "
            "(accounts that need only what was granted work meanwhile).",
            err=True,
        )
        sys.exit(EXIT_FAIL)
    click.echo(f"Next: keepwarm sync {account}")


def _user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "you"
