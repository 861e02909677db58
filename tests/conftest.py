"""Shared fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import settings

settings.register_profile("ci", max_examples=200, deadline=None)
settings.register_profile("dev", max_examples=60, deadline=None)
settings.load_profile("ci" if __import__("os").environ.get("CI") else "dev")

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """The real corpora beside the checkout (present in CI)."""
    if not SHARED_DATA.is_dir():
        pytest.fail(
            f"the real-mail corpora are missing: expected the folder {SHARED_DATA} beside the "
            "checkout (SpamAssassin ham, Enron maildir and PST samples, .ics files)"
        )
    return SHARED_DATA
