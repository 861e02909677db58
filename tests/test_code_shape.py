"""The shape the code keeps (CONTRIBUTING.md): the dependency direction between the packages and
a repository that stands alone."""

from __future__ import annotations

import ast
import re
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


# A reference to something outside the repository: a path into the folder beside it other than the
# real-mail corpora themselves, a document there (even inside the corpora), an absolute path of
# this machine, or the design notes that used to live outside.
OUTSIDE = re.compile(
    r"\.\./shared(?!/data\b)|shared/(?!data\b)[\w.-]+/|shared/data/[\w./-]*\.(?:md|txt|csv)\b"
    r"|/work/|\b(?:DESIGN|STYLE|API_FACTS|USERS)\.md\b"
)


def outside_references(text: str) -> list[tuple[int, str]]:
    return [
        (n + 1, line.strip()[:90])
        for n, line in enumerate(text.splitlines())
        if OUTSIDE.search(line)
    ]


def test_the_outside_reference_check_finds_what_it_should() -> None:
    found = outside_references(
        "see ../shared/DESIGN.md\n(see shared/data/README.md)\n/work/shared/STYLE.md\n"
        "reads ../shared/data\nDATA = REPO.parent / 'shared' / 'data'\nin ../shared/data/ics\n"
    )
    assert [n for n, _ in found] == [1, 2, 3]


def test_command_modules_do_not_import_the_entry_point() -> None:
    """daemon/cli.py imports every command module; they import the group from commands/base.py,
    never cli.py (no hidden import cycle)."""
    wrong = []
    for path in python_files("daemon/commands"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            if any(n == "keepwarm.daemon.cli" for n in names):
                wrong.append(str(path.relative_to(REPO)))
    assert not wrong, wrong


def test_no_file_refers_outside_the_repository() -> None:
    """Docs and comments never send a reader to files that are not in the repository (tests and
    benchmarks may read the real-mail corpora in ../shared/data)."""
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    wrong = []
    for name in tracked:
        path = REPO / name
        if path.suffix in (".png", ".jsonl") or not path.is_file() or path == Path(__file__):
            continue  # (this file holds the patterns it looks for)
        for n, line in outside_references(path.read_text(encoding="utf-8", errors="replace")):
            wrong.append(f"{name}:{n}: {line}")
    assert not wrong, "\n".join(wrong)


# -- SQL lives in daemon/store/ -----------------------------------------------------------------
SQL = re.compile(
    r"\b(?:SELECT\s+[\w*(]|INSERT\s+(?:OR\s+\w+\s+)?INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|"
    r"CREATE\s+(?:TABLE|INDEX)|ALTER\s+TABLE|PRAGMA\s+\w)"
)
_DB_CALLS = {"execute", "executemany", "executescript", "create_function"}
_DB_NAMES = re.compile(r"(?:^|_)(?:conn|connection|cursor|cur|db)$")


def sql_outside_the_store(text: str) -> list[str]:
    """Where a module holds a SQL statement (a string literal, f-string parts included) or runs
    one on a database connection (``conn.execute(...)``, ``store.conn.executemany(...)`` ...)."""
    found = []
    for node in ast.walk(ast.parse(text)):
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and SQL.search(node.value)
        ):
            found.append(f"line {node.lineno}: SQL text")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in _DB_CALLS
            and _DB_NAMES.search(ast.unparse(node.func.value).rsplit(".", 1)[-1])
        ):
            found.append(f"line {node.lineno}: {ast.unparse(node.func)}(...)")
    return sorted(found, key=lambda f: int(f.split(":")[0].split()[1]))


def test_the_sql_check_finds_what_it_should() -> None:
    text = (
        'Q = f"SELECT id FROM {t}"\n'
        "store.conn.execute(q)\n"
        "cur.executemany(q, rows)\n"
        "self.client.execute(request)\n"  # an HTTP client, not a database
        'note = "select the ones you want"\n'
    )
    assert [f.split(":")[0] for f in sql_outside_the_store(text)] == ["line 1", "line 2", "line 3"]


def test_sql_lives_in_the_store() -> None:
    """Every SQL statement is in daemon/store/: a schema change touches one package."""
    wrong = []
    for path in python_files("daemon", "connectors", "digests", "core"):
        rel = str(path.relative_to(REPO))
        if not rel.startswith("daemon/store/"):
            wrong += [f"{rel} {w}" for w in sql_outside_the_store(path.read_text(encoding="utf-8"))]
    assert not wrong, "SQL outside daemon/store/ (move it into a store function):\n" + "\n".join(
        wrong
    )


# -- small functions ----------------------------------------------------------------------------
MAX_COMPLEXITY = 15  # radon's cyclomatic complexity (decisions + boolean operators + 1)
COMPLEXITY_FILE = Path(__file__).with_name("complexity_debt.txt")


def complexities() -> dict[str, int]:
    from radon.complexity import cc_visit

    out: dict[str, int] = {}
    for path in python_files("core", "daemon", "connectors", "digests"):
        rel = str(path.relative_to(REPO))
        for block in cc_visit(path.read_text(encoding="utf-8")):
            for item in [block, *getattr(block, "methods", [])]:
                if item.complexity > MAX_COMPLEXITY:
                    name = (
                        f"{item.classname}.{item.name}"
                        if getattr(item, "classname", None)
                        else item.name
                    )
                    out[f"{rel}:{name}"] = item.complexity
    return out


def test_no_function_grows_past_the_complexity_limit() -> None:
    """No function above 15, except those in complexity_debt.txt (the functions that were over it
    when the limit came; each may only get simpler, and leaves the file when it is 15 or less)."""
    debt: dict[str, int] = {}
    for line in COMPLEXITY_FILE.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            where, n = line.rsplit(" ", 1)
            debt[where] = int(n)
    found = complexities()
    over = {k: v for k, v in found.items() if v > debt.get(k, MAX_COMPLEXITY)}
    assert not over, f"functions above their limit (split them): {over}"
    paid = sorted(set(debt) - set(found))
    assert not paid, f"no longer above {MAX_COMPLEXITY}: remove from complexity_debt.txt: {paid}"
