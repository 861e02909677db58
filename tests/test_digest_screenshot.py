from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "screenshot.py"


def _load() -> object:
    spec = importlib.util.spec_from_file_location("kw_screenshot", SCRIPT)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules["kw_screenshot"] = mod
    spec.loader.exec_module(mod)
    return mod


def test_chromium_renders_the_digest_at_phone_and_desktop_width(tmp_path: Path) -> None:
    shot = _load()
    chromium = shot.find_chromium()  # type: ignore[attr-defined]
    if chromium is None:
        pytest.fail("chromium is not installed: run `make test`, which installs the Debian package")
    # The demo digest pinned by tests/test_digest_demo.py (what docs/digest-*.png show).
    html = Path(__file__).parent / "golden" / "demo.html"
    assert shot.main([str(html), str(tmp_path), "--name", "d"]) == 0  # type: ignore[attr-defined]
    for label, (width, height) in shot.WIDTHS.items():  # type: ignore[attr-defined]
        png = tmp_path / f"d-{label}.png"
        w, h, distinct = shot.png_stats(png)  # type: ignore[attr-defined]
        assert (w, h) == (width, height)
        assert distinct > 20, f"{png} looks blank"
