"""The test configuration turns a leaked resource into a failure: pytest, run with this
repository's pyproject.toml on a file of tests that leak, fails exactly the tests that leak."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

LEAKY_TESTS = """
import socket
import sqlite3


def test_closes_what_it_opens():
    conn = sqlite3.connect(":memory:")
    conn.execute("select 1")
    conn.close()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))


def test_leaves_a_connection_open():
    conn = sqlite3.connect(":memory:")
    conn.execute("select 1")


def test_leaves_a_connection_open_in_a_context_manager():
    with sqlite3.connect(":memory:") as conn:  # commits, but does not close
        conn.execute("select 1")


class Holder:
    def __init__(self):
        self.me = self
        self.conn = sqlite3.connect(":memory:")


def test_leaves_a_connection_open_in_a_reference_cycle():
    Holder()


def test_leaves_a_socket_open():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))


def test_leaves_a_file_open(tmp_path):
    (tmp_path / "f").write_text("x")
    open(tmp_path / "f").read()
"""


def test_a_leaked_connection_socket_or_file_fails_the_test_that_leaked_it(tmp_path: Path) -> None:
    path = tmp_path / "test_leaky.py"
    path.write_text(LEAKY_TESTS)
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-c",
            str(REPO / "pyproject.toml"),
            "--rootdir",
            str(REPO),
            "-p",
            "no:cacheprovider",
            "-q",
            "-rA",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=600,  # a pytest run of its own: minutes on a loaded 2-core machine
        cwd=tmp_path,
    )
    summary = run.stdout
    failed = set(re.findall(r"^(?:FAILED|ERROR) \S+::(\w+)", summary, re.MULTILINE))
    passed = set(re.findall(r"^PASSED \S+::(\w+)", summary, re.MULTILINE))
    assert run.returncode == 1, summary + run.stderr
    assert failed == {
        "test_leaves_a_connection_open",
        "test_leaves_a_connection_open_in_a_context_manager",
        "test_leaves_a_connection_open_in_a_reference_cycle",
        "test_leaves_a_socket_open",
        "test_leaves_a_file_open",
    }, summary
    assert "test_closes_what_it_opens" in passed, summary
    assert "unclosed database" in summary, summary
