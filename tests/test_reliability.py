"""The reliability defects a fault campaign found (issue 15), through the real ``keepwarm`` CLI:
concurrent senders, a damaged or read-only database, broken configs. Each must end in one clear
line (no traceback) and never in a digest delivered twice or a record lost."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from fakes.smtp import PASSWORD, USER, smtp_server

KEEPWARM = str(Path(sys.executable).parent / "keepwarm")


def write_config(tmp: Path, extra: str = "") -> Path:
    cfg = tmp / "config.toml"
    cfg.write_text(
        textwrap.dedent(
            f"""\
            [me]
            name = "Jane Doe"
            addresses = ["jane@example.com"]
            timezone = "Europe/Berlin"
            [store]
            path = "{tmp / "state" / "kw.db"}"
            """
        )
        + textwrap.dedent(extra)
    )
    cfg.chmod(0o600)
    return cfg


def keepwarm(cfg: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KEEPWARM_CONFIG": str(cfg), "KW_TEST_SMTP_PASSWORD": PASSWORD}
    return subprocess.run(
        [KEEPWARM, *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def no_traceback(proc: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr


# -- item 1 -----------------------------------------------------------------------------------------
def test_concurrent_digest_send_processes_deliver_once(tmp_path: Path) -> None:
    with smtp_server(tmp_path) as srv:
        cfg = write_config(
            tmp_path,
            f"""\
            [delivery]
            method = "smtp"
            [delivery.smtp]
            host = "127.0.0.1"
            port = {srv.port}
            username = "{USER}"
            password_env = "KW_TEST_SMTP_PASSWORD"
            ca_file = "{srv.ca_file}"
            """,
        )
        assert keepwarm(cfg, "status").returncode == 0  # creates the database
        env = {**os.environ, "KEEPWARM_CONFIG": str(cfg), "KW_TEST_SMTP_PASSWORD": PASSWORD}
        procs = [
            subprocess.Popen(
                [KEEPWARM, "digest", "--send", "--as-of", "2026-11-24"],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(8)
        ]
        outs = [p.communicate(timeout=120) for p in procs]
        assert [p.returncode for p in procs] == [0] * 8, outs
        assert len(srv.handler.received) == 1
    lines = sorted(o[0].strip() for o in outs)
    delivered = [x for x in lines if x.endswith("delivered")]
    assert len(delivered) == 1, lines
    for line in lines:
        assert line in (
            "digest for 2026-11-24 delivered",
            "digest for 2026-11-24 was already delivered; use --force to send it again",
            "digest for 2026-11-24 is already being delivered by another keepwarm process; "
            "not sending it twice",
        ), line
