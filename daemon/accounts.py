"""Build the connector of a configured account from its kind's declaration
(``connectors/registry.py``): the account's options plus the :class:`Context` the config gives it.
Only the kinds in use are imported."""

from __future__ import annotations

from typing import TYPE_CHECKING

from keepwarm.connectors.base import Connector, SourceError
from keepwarm.connectors.registry import Context
from keepwarm.daemon.config import Account, Config, Secret

if TYPE_CHECKING:
    from keepwarm.connectors.google.client import GoogleClient
    from keepwarm.connectors.microsoft.auth import MicrosoftAuth
    from keepwarm.connectors.microsoft.graph import GraphClient


def password_hint(secret: Secret) -> str:
    """Where a password comes from, for messages ("check the password in ...")."""
    if secret.file:
        return f"the password file {secret.file}"
    if secret.env:
        return f"the environment variable {secret.env}"
    return "the output of password_command"


def context(account: Account, config: Config) -> Context:
    """What the account's connector needs from the rest of the config."""
    from keepwarm.daemon.secrets import resolve_secret

    spec = account.spec
    secret = account.secret
    password = None
    if spec.login == "password":

        def password() -> str:
            return resolve_secret(secret, f'account "{account.name}"')

    return Context(
        account=account.name,
        zone=config.zone,
        me=config.addresses,
        keep_subjects=config.store_subjects,
        token_path=config.token_path(account) if spec.oauth else None,
        password=password,
        password_hint=password_hint(secret),
        sends_digest=config.delivery_account == account.name
        and config.delivery_method in ("gmail", "microsoft")
        and spec.oauth,
    )


def make_connector(account: Account, config: Config) -> Connector:
    """The connector for ``account``. Raises SourceError when the kind cannot be used here."""
    try:
        spec = account.spec
    except (KeyError, ImportError):
        raise SourceError(
            f'account "{account.name}": kind "{account.kind}" is not supported by this version'
        ) from None
    return spec.build(account.options, context(account, config))


def google_client(account: Account, config: Config, *, scopes: tuple[str, ...]) -> GoogleClient:
    """The API client of a gmail/gcal/gcontacts account asking for ``scopes`` (digest sending)."""
    from keepwarm.connectors.google import GoogleOptions, api_client

    assert isinstance(account.options, GoogleOptions)
    return api_client(account.kind, account.options, context(account, config), scopes=scopes)


def microsoft_auth(account: Account, config: Config) -> MicrosoftAuth:
    from keepwarm.connectors.microsoft import MicrosoftOptions, sign_in

    assert isinstance(account.options, MicrosoftOptions)
    return sign_in(account.options, context(account, config))


def microsoft_client(account: Account, config: Config) -> GraphClient:
    """The Graph client of a ``microsoft`` account (sync, and sendMail delivery)."""
    from keepwarm.connectors.microsoft import MicrosoftOptions, graph_client

    assert isinstance(account.options, MicrosoftOptions)
    return graph_client(account.options, context(account, config))
