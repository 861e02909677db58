"""The shape the code keeps (CONTRIBUTING.md): the dependency direction between the packages and
a repository that stands alone."""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def python_files(*folders: str) -> list[Path]:
    return sorted(p for f in folders for p in (REPO / f).rglob("*.py"))


def imported_packages(path: Path) -> set[str]:
    """The keepwarm packages a module imports (``keepwarm.X...`` -> ``X``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "keepwarm" and len(parts) > 1:
                found.add(parts[1])
    return found


def test_connectors_and_digests_import_nothing_of_each_other_nor_of_the_daemon_and_core_is_a_leaf() -> (
    None
):
    wrong = []
    for package, forbidden in (
        ("core", {"connectors", "digests", "daemon"}),
        ("connectors", {"digests", "daemon"}),
        ("digests", {"connectors", "daemon"}),
    ):
        for path in python_files(package):
            bad = imported_packages(path) & forbidden
            if bad:
                wrong.append(f"{path.relative_to(REPO)} imports {', '.join(sorted(bad))}")
    assert not wrong, wrong


def test_no_file_refers_outside_the_repository() -> None:
    """Docs and comments never send a reader to files that are not in the repository (tests and
    benchmarks may read the real-mail corpora in ../shared/data)."""
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    words = tuple(f"{w}.md" for w in ("DESIGN", "STYLE", "API_FACTS", "USERS"))
    wrong = []
    for name in tracked:
        path = REPO / name
        if path.suffix in (".png", ".jsonl") or not path.is_file():
            continue
        for n, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines()):
            outside = "../shared" in line and "../shared/data" not in line
            if outside or any(w in line for w in words):
                wrong.append(f"{name}:{n + 1}: {line.strip()[:90]}")
    assert not wrong, "\n".join(wrong)
