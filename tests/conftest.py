"""Shared fixtures: paths to the published vectors and the bundled contexts."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
VECTORS = Path(__file__).resolve().parent / "vectors"


@pytest.fixture
def vectors() -> Path:
    """The published test vectors, copied into tests/vectors so a clone is self-contained."""
    return VECTORS
