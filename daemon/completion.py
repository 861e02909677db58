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
    from keepwarm.daemon.doctor import query_store

    config = _config(ctx)
    if config is None:
        return []
    names = {a.name: a.kind for a in config.accounts}
    for name, kind in query_store(config, "SELECT name, kind FROM accounts"):
        names.setdefault(str(name), str(kind))
    return [CompletionItem(n, help=k) for n, k in sorted(names.items()) if n.startswith(incomplete)]


def people(ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """Addresses keepwarm has seen that start with what is typed (a range over the address
    index: instant on a million messages), with their display names as help."""
    from keepwarm.daemon.doctor import query_store

    config = _config(ctx)
    if config is None:
        return []
    prefix = incomplete.lower()
    rows = query_store(
        config,
        "SELECT email, name FROM addresses WHERE email >= ? AND email < ? ORDER BY email",
        (prefix, prefix + "\U0010ffff"),
        limit=LIMIT,
    )
    return [CompletionItem(str(e), help=str(n or "")) for e, n in rows]


def kinds(_ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    from keepwarm.daemon.decisions import KINDS

    return [CompletionItem(k) for k in KINDS if k.startswith(incomplete)]
