"""keepwarm CLI commands: google."""

from __future__ import annotations

from keepwarm.daemon.cli import cli

__all__ = ["cli"]
