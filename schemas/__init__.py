"""The Barri vocabulary as data: JSON-LD contexts, JSON Schemas and examples."""

from __future__ import annotations

from pathlib import Path

SCHEMAS_DIR = Path(__file__).resolve().parent
CONTEXTS_DIR = SCHEMAS_DIR / "contexts"
