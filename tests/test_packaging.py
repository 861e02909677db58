"""The package list in pyproject.toml must cover every folder (a missing one silently drops code
from the wheel), and our import names must not collide with python-daemon & co."""

from __future__ import annotations

import importlib.metadata
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ROOTS = {
    "core": "keepwarm.core",
    "daemon": "keepwarm.daemon",
    "connectors": "keepwarm.connectors",
    "digests": "keepwarm.digests",
}


def test_every_package_folder_is_listed() -> None:
    listed = set(
        tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    found = set()
    for folder, name in ROOTS.items():
        for init in (REPO / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(REPO / folder)
            found.add(".".join([name, *rel.parts]))
    assert found == listed


def test_package_dirs_map_to_namespaced_names() -> None:
    data = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert data["tool"]["setuptools"]["package-dir"] == {v: k for k, v in ROOTS.items()}


def test_no_top_level_name_collisions() -> None:
    dists = importlib.metadata.packages_distributions()
    for name in ("daemon", "connectors", "digests"):
        assert "keepwarm" not in dists.get(name, [])
    assert "keepwarm" in dists.get("keepwarm", [])


def test_typed_markers_and_templates_ship() -> None:
    for folder in ROOTS:
        assert (REPO / folder / "py.typed").exists()
