"""Run the real ``keepwarm`` CLI in a subprocess, with test-only slow-downs of the maildir source.

Used as ``python -m fakes.daemon_process run`` (PYTHONPATH=tests). Production code is not
changed: this module only wraps the maildir kind's build (its registry declaration) before handing
over to the CLI.

- ``KEEPWARM_TEST_BATCH_DELAY`` (seconds) slows every batch of the maildir connector (and makes
  its batches 10 messages), so a test can stop or kill the process in the middle of a sync.
- ``KEEPWARM_TEST_WEDGE=1`` makes a sync hang after its first batch (a wedged connector).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from typing import Any

from keepwarm.connectors.base import Batch, Connector

BATCH = 10


class Slowed:
    def __init__(self, inner: Connector, delay: float, wedge: bool) -> None:
        self.inner = inner
        self.kind = inner.kind
        self.account = inner.account
        self.delay = delay
        self.wedge = wedge

    def sync(self, cursor: str | None) -> Iterator[Batch]:
        for n, batch in enumerate(self.inner.sync(cursor)):
            if self.wedge and n == 1:
                while True:
                    time.sleep(3600)
            time.sleep(self.delay)
            yield batch


def install_connector() -> None:
    import dataclasses

    from keepwarm.connectors import local

    real = local.MAILDIR.build
    delay = float(os.environ.get("KEEPWARM_TEST_BATCH_DELAY", "0") or 0)
    wedge = os.environ.get("KEEPWARM_TEST_WEDGE") == "1"
    if not (delay or wedge):
        return

    def build(options: Any, context: Any) -> Connector:
        inner = real(options, context)
        if hasattr(inner, "batch_size"):
            inner.batch_size = BATCH  # small batches, so a sync has many
        return Slowed(inner, delay, wedge)

    local.MAILDIR = dataclasses.replace(local.MAILDIR, build=build)


def main() -> None:
    install_connector()
    from keepwarm.daemon.cli import main as cli_main

    sys.argv = ["keepwarm", *sys.argv[1:]]
    cli_main()


if __name__ == "__main__":
    main()
