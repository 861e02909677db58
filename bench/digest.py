"""Digest figures on the demo year: time to rank + render, time of a whole run, message sizes.

Usage: .venv/bin/python bench/digest.py
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from keepwarm.daemon.cli import Ctx
from keepwarm.daemon.commands.demo import import_demo
from keepwarm.daemon.demo import generate
from keepwarm.daemon.digest_job import compose, digest_moment, run_digest
from keepwarm.daemon.network import build_report
from keepwarm.digests.render import GMAIL_CLIP_BYTES, render


def main() -> None:
    with tempfile.TemporaryDirectory() as d:
        manifest = generate(Path(d))
        obj = Ctx(str(manifest.config_path))
        import_demo(obj, manifest)
        config = obj.config
        now = digest_moment(config, manifest.today)
        with obj.store() as store:
            t0 = time.perf_counter()
            report = build_report(config, store, now)
            t1 = time.perf_counter()
            runs = 50
            for _ in range(runs):
                model, suggestions = compose(config, store, report, now, manifest.today)
                rendered = render(model)
            t2 = time.perf_counter()
            outcome = run_digest(config, store, now=now, send=True)
            t3 = time.perf_counter()
        eml = Path(str(outcome.path))
        html_bytes = len(rendered.html.encode())
        print(
            f"demo: {len(report.people)} people, {len(report.signals)} signals -> {len(suggestions)} suggestions"
        )
        print(f"engine report:            {1000 * (t1 - t0):8.1f} ms")
        print(f"rank + render (mean):     {1000 * (t2 - t1) / runs:8.1f} ms")
        print(
            f"run_digest to the outbox: {1000 * (t3 - t2):8.1f} ms (report, render, ledger, files)"
        )
        print(
            f"HTML part: {html_bytes:,} bytes ({100 * html_bytes / GMAIL_CLIP_BYTES:.0f}% of Gmail's 102 KB clip)"
        )
        print(
            f"text part: {len(rendered.text.encode()):,} bytes; whole .eml: {eml.stat().st_size:,} bytes"
        )


if __name__ == "__main__":
    main()
