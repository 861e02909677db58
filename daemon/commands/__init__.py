"""CLI command modules; each adds its commands to the group in ``commands/base.py``, and
``daemon/cli.py`` imports them all."""

from __future__ import annotations
