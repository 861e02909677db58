"""Shell completion of the values only keepwarm knows: account names, people, suggestion kinds.

Each completer reads the config and, read-only, the database; it never prints, never creates a
database and returns nothing rather than fail (a completion must not break the shell).
"""

from __future__ import annotations

import sqlite3
from typing import Any

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


def _rows(config: Config, sql: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    path = config.store_path
    if not path.is_file():
        return []
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1)
        try:
            return [tuple(r) for r in conn.execute(sql, args).fetchmany(LIMIT)]
        finally:
            conn.close()
    except sqlite3.Error:
        return []


def accounts(ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """Configured accounts and those only in the database (imports)."""
    config = _config(ctx)
    if config is None:
        return []
    names = {a.name: a.kind for a in config.accounts}
    for name, kind in _rows(config, "SELECT name, kind FROM accounts", ()):
        names.setdefault(str(name), str(kind))
    return [CompletionItem(n, help=k) for n, k in sorted(names.items()) if n.startswith(incomplete)]


def people(ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """Addresses keepwarm has seen, most used first, with their display names as help."""
    config = _config(ctx)
    if config is None:
        return []
    rows = _rows(
        config,
        """SELECT a.email, a.name FROM addresses a
           LEFT JOIN message_addresses ma ON ma.address = a.id
           WHERE a.email LIKE ? ESCAPE '\\'
           GROUP BY a.id ORDER BY count(ma.message) DESC, a.email""",
        (incomplete.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%",),
    )
    return [CompletionItem(str(e), help=str(n or "")) for e, n in rows]


def kinds(_ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    from keepwarm.daemon.decisions import KINDS

    return [CompletionItem(k) for k in KINDS if k.startswith(incomplete)]
