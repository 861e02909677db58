"""Shell completion of the values only keepwarm knows: account names, people, suggestion kinds.

Each completer reads the config and, read-only, the database; it never prints, never creates a
database and returns nothing rather than fail (a completion must not break the shell).
"""

from __future__ import annotations

import click
from click.shell_completion import CompletionItem

from keepwarm.daemon import config as cfgmod
from keepwarm.daemon.config import Config, ConfigError

LIMIT = 200


def _config(ctx: click.Context) -> Config | None:
    root = ctx.find_root()
    path = root.params.get("config_path")
    try:
        return cfgmod.load(path)
    except (ConfigError, OSError):
        return None


def accounts(ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """Configured accounts and those only in the database (imports)."""
    from keepwarm.daemon.store import reads

    config = _config(ctx)
    if config is None:
        return []
    names = {a.name: a.kind for a in config.accounts}
    for name, kind in reads.readonly(config.store_path, reads.accounts) or []:
        names.setdefault(name, kind)
    return [CompletionItem(n, help=k) for n, k in sorted(names.items()) if n.startswith(incomplete)]


def people(ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """Addresses keepwarm has seen that start with what is typed (a range over the address
    index: instant on a million messages), with their display names as help."""
    from keepwarm.daemon.store import reads

    config = _config(ctx)
    if config is None:
        return []
    prefix = incomplete.lower()
    rows = reads.readonly(config.store_path, lambda c: reads.addresses_from(c, prefix, LIMIT))
    return [CompletionItem(e, help=n) for e, n in rows or []]


def kinds(_ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    from keepwarm.daemon.decisions import KINDS

    return [CompletionItem(k) for k in KINDS if k.startswith(incomplete)]
