"""Build the connector for a configured account (lazy imports: only the kinds in use load)."""

from __future__ import annotations

from collections.abc import Callable

from keepwarm.connectors.base import Connector, SourceError
from keepwarm.daemon.config import Account, Config


def make_connector(account: Account, config: Config) -> Connector:
    """The connector for ``account``. Raises SourceError when the kind cannot be used here."""
    builder = _BUILDERS.get(account.kind)
    if builder is None:
        raise SourceError(
            f'account "{account.name}": kind "{account.kind}" is not supported by this version'
        )
    return builder(account, config)


Builder = Callable[[Account, Config], Connector]

# kind -> builder; each connector's builder is registered below it.
_BUILDERS: dict[str, Builder] = {}


def _build_imap(account: Account, config: Config) -> Connector:
    from keepwarm.connectors.imap import ImapConnector, ImapSettings
    from keepwarm.daemon.secrets import resolve_secret

    secret = account.secret()
    what = f'account "{account.name}"'
    if secret.file:
        hint = str(secret.file)
    elif secret.env:
        hint = f"the environment variable {secret.env}"
    else:
        hint = "the output of password_command"
    settings = ImapSettings(
        host=account.opt("host"),
        username=account.opt("username"),
        password=lambda: resolve_secret(secret, what),
        port=account.opt("port"),
        security=account.opt("security"),
        folders=tuple(account.opt("folders") or ()),
        exclude_folders=tuple(account.opt("exclude_folders") or ()),
        timeout=account.opt("timeout").total_seconds(),
        ca_file=account.opt("ca_file"),
        backfill=account.opt("backfill"),
        keep_subjects=config.store_subjects,
        password_hint=hint,
    )
    return ImapConnector(account.name, settings)


_BUILDERS["imap"] = _build_imap
