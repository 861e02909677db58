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
