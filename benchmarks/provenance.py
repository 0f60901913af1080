"""Which code a benchmark measured: the commit, importable both as ``provenance`` (the
script-style harnesses) and as ``benchmarks.provenance`` (citysim)."""

from __future__ import annotations

import subprocess
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parent.parent


def code_version() -> str:
    """The commit measured, with ``+dirty`` when tracked files differ from it (others may be
    editing the same tree while a benchmark runs)."""

    def git(*args: str) -> str:
        found = subprocess.run(["git", *args], cwd=CHECKOUT, capture_output=True,
                               text=True, check=False)  # fmt: skip
        return found.stdout.strip()

    dirty = "+dirty" if git("status", "--porcelain", "--untracked-files=no") else ""
    return (git("rev-parse", "--short", "HEAD") or "unknown") + dirty
