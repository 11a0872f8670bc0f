from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from carepath.content.loader import load_pathway_files

REPO = Path(__file__).resolve().parents[3]
PATHWAYS = REPO / "pathways"
PLAN_URL = "https://fhir.carepath.dev/PlanDefinition/chemo-failure-follow-up"


@pytest.fixture(scope="session")
def content() -> list[dict[str, Any]]:
    return load_pathway_files(PATHWAYS)


@pytest.fixture(scope="session")
def plan(content: list[dict[str, Any]]) -> dict[str, Any]:
    return next(r for r in content if r.get("url") == PLAN_URL)
