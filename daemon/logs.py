"""Logging to stderr in a journald-friendly form.

Under systemd (``$JOURNAL_STREAM`` set) lines carry ``<N>`` syslog priority prefixes and no
timestamps (journald adds its own); on a terminal they carry a time and the level name.
Addresses, subjects and tokens are never logged at INFO or above (callers log account names and
counts only).
"""

from __future__ import annotations

import logging
import os
import sys

_PRIORITY = {
    logging.DEBUG: 7,
    logging.INFO: 6,
    logging.WARNING: 4,
    logging.ERROR: 3,
    logging.CRITICAL: 2,
}


class JournalFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        prio = _PRIORITY.get(record.levelno, 6)
        return f"<{prio}>{super().format(record)}"


def configure(level: str = "info") -> None:
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    handler = logging.StreamHandler(sys.stderr)
    if os.environ.get("JOURNAL_STREAM"):
        handler.setFormatter(JournalFormatter("%(name)s: %(message)s"))
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S")
        )
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    for noisy in ("googleapiclient.discovery_cache", "urllib3", "msal"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
