"""CLI command modules; each registers its commands on ``keepwarm.daemon.cli.cli``."""

from __future__ import annotations
