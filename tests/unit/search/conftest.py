"""Shared helpers of the search unit tests: the official R4 examples (CC0), when the folder is present."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from carepath import jsonutil

EXAMPLES = Path(__file__).resolve().parents[3] / ".." / "shared" / "fixtures" / "fhir-r4-examples"


@pytest.fixture(scope="session")
def examples() -> list[dict[str, Any]]:
    """Every official example resource, parsed as the API parses bodies (decimals as Decimal)."""
    if not EXAMPLES.is_dir():
        pytest.skip(f"fixtures folder absent: {EXAMPLES}")
    return [jsonutil.loads(p.read_bytes()) for p in sorted(EXAMPLES.glob("*.json"))]
