"""Golden files of the demo digest: the product's face, pinned byte for byte.

Regenerate after an intended change with ``KEEPWARM_UPDATE_GOLDEN=1 .venv/bin/pytest
tests/test_digest_demo.py`` and review the diff (and refresh docs/digest-*.png with
``scripts/screenshot.py tests/golden/demo.html docs``).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from test_digest_render import _check_golden

from keepwarm.daemon.cli import Ctx
from keepwarm.daemon.commands.demo import import_demo
from keepwarm.daemon.demo import generate
from keepwarm.daemon.digest_job import digest_moment, run_digest
from keepwarm.digests.render import GMAIL_CLIP_BYTES, TEXT_WIDTH


@pytest.fixture(scope="module")
def demo_digest(tmp_path_factory: pytest.TempPathFactory) -> Any:
    manifest = generate(tmp_path_factory.mktemp("demo"))
    obj = Ctx(str(manifest.config_path))
    import_demo(obj, manifest)
    config = obj.config
    when = digest_moment(config, manifest.today)
    with obj.store() as store:
        # Freshness as of a fixed moment, whichever way the demo was imported.
        for account in config.accounts:
            store.set_account_state(
                account.name,
                account.kind,
                "ok",
                now=(when - timedelta(minutes=25)).timestamp(),
                ok=True,
            )
        outcome = run_digest(config, store, now=when, send=False)
    return outcome


def test_demo_digest_golden(demo_digest: Any) -> None:
    rendered = demo_digest.rendered
    _check_golden("demo.html", rendered.html)
    _check_golden("demo.txt", f"Subject: {rendered.subject}\n\n{rendered.text}")


def test_demo_digest_is_short_specific_and_small(demo_digest: Any) -> None:
    rendered = demo_digest.rendered
    assert 3 <= len(demo_digest.suggestions) <= 7
    assert all(s.reasons for s in demo_digest.suggestions)
    assert len({s.person_key for s in demo_digest.suggestions}) == len(demo_digest.suggestions)
    assert len({s.section for s in demo_digest.suggestions}) >= 3  # variety
    assert "replies owed" in rendered.subject and rendered.subject.endswith("Tue 17 Nov")
    assert len(rendered.html.encode()) < GMAIL_CLIP_BYTES
    assert max(len(line) for line in rendered.text.splitlines()) <= TEXT_WIDTH
    assert "Re:" not in rendered.text.split("YOUR NETWORK")[0]


def test_golden_demo_html_is_what_the_screenshots_show() -> None:
    assert (Path(__file__).parent / "golden" / "demo.html").exists()
