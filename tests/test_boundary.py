"""The protocol package must know nothing of the deliberation domain (DESIGN.md §2)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = ("federation", "aiosqlite")


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_activitypub_source_imports_nothing_from_the_domain() -> None:
    files = sorted((ROOT / "activitypub").rglob("*.py"))
    assert files, "activitypub/ has no modules"
    offenders = {
        str(f.relative_to(ROOT)): sorted(
            m for m in _imported_modules(f) if m.split(".")[0] in FORBIDDEN
        )
        for f in files
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_importing_every_protocol_module_loads_no_domain_module() -> None:
    code = (
        "import importlib, pkgutil, sys, activitypub\n"
        "for m in pkgutil.walk_packages(activitypub.__path__, 'activitypub.'):\n"
        "    importlib.import_module(m.name)\n"
        "bad = sorted(n for n in sys.modules if n.split('.')[0] in ('federation', 'aiosqlite'))\n"
        "print(bad)\n"
        "sys.exit(1 if bad else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
