"""keepwarm CLI commands: microsoft (``keepwarm auth microsoft ACCOUNT``)."""

from __future__ import annotations

import click

from keepwarm.connectors.base import AuthRequired, ConnectorError
from keepwarm.daemon import completion
from keepwarm.daemon.commands.base import Ctx, UserError, auth, cli, pass_ctx

__all__ = ["cli", "microsoft"]


@auth.command("microsoft")
@click.argument("account", shell_complete=completion.accounts)
@pass_ctx
def microsoft(obj: Ctx, account: str) -> None:
    """Sign in to a Microsoft 365 / Outlook account with the device-code flow.

    Prints a code and a URL; open the URL on any device, enter the code and sign in. The token is
    saved (0600) in the state directory, and syncs then refresh it silently.
    """
    from keepwarm.daemon.accounts import microsoft_auth

    config = obj.config
    acct = config.account(account)
    if acct.spec.login != "microsoft":
        raise UserError(f'account "{account}" is of kind "{acct.kind}", not "microsoft"')
    try:
        with microsoft_auth(acct, config) as auth:
            flow = auth.start_device_flow()
            click.echo(str(flow.get("message") or _message(flow)))
            click.echo("Waiting for you to sign in (Ctrl-C to give up)...", err=True)
            who = auth.finish_device_flow(flow)
    except AuthRequired as exc:
        raise UserError(f"{exc}. Run 'keepwarm auth microsoft {account}' to try again") from None
    except ConnectorError as exc:
        raise UserError(str(exc)) from None
    path = config.token_path(acct)
    click.echo(f"Signed in{' as ' + who if who else ''}; token saved to {path}.")
    click.echo(f"Next: keepwarm sync {account}")


def _message(flow: dict[str, object]) -> str:
    return f"To sign in, open {flow.get('verification_uri')} and enter the code {flow.get('user_code')}"
