"""The architecture's import rule (ARCHITECTURE.md): domain packages never import Dagster, so that they are
tested directly and GenFeed's rules do not depend on the orchestrator."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "genfeed_pipeline"
DOMAIN = ("fal", "mapping", "pricing", "sync", "usage", "db", "report", "admin", "alerts")
DOMAIN_MODULES = ("exact_json.py", "clock.py")


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_domain_packages_never_import_dagster() -> None:
    files = [path for package in DOMAIN for path in (PACKAGE / package).rglob("*.py")]
    files += [PACKAGE / name for name in DOMAIN_MODULES]
    assert len(files) > 50
    offenders = {
        str(path.relative_to(PACKAGE)): sorted(
            name for name in imported_modules(path) if name.split(".")[0].startswith("dagster")
        )
        for path in files
    }
    assert {path: names for path, names in offenders.items() if names} == {}
    assert any("sqlalchemy" in imported_modules(path) for path in files), "the scan reads real imports"
