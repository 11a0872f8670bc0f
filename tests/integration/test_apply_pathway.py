"""The shipped chemotherapy-failure pathway (`pathways/`, loaded at start-up) applied through HTTP with persist, to
the clinical spec's sample patient P01, on SQLite and PostgreSQL. Which steps P01 gets is the spec's §5."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from apply_support import PERSIST, apply_ok, parameters, references, stored, subject
from rest_support import HEADERS

from carepath.canonical import BASE
from carepath.content.samples import sample_case
from carepath.engine.explain import GENERATED_BY
from carepath.settings import Settings

PATHWAYS = Path(__file__).resolve().parents[2] / "pathways"
PLAN_URL = f"{BASE}/PlanDefinition/chemo-failure-follow-up"
# §5: every scenario gets S01, S02, S05-S10, S12, S13, S19; P01 (EGFR driver, PD-L1 20 %) also S16, S17, S18.
P01_STEPS = {"S01", "S02", "S05", "S06", "S07", "S08", "S09", "S10", "S12", "S13", "S19", "S16", "S17", "S18"}


def _action_id(resource: dict[str, Any]) -> str:
    extension = next(e for e in resource["extension"] if e["url"] == GENERATED_BY)
    return str(next(p["valueString"] for p in extension["extension"] if p["url"] == "actionId"))


async def test_shipped_pathway_for_a_sample_patient(
    settings: Settings, make_client: Callable[[Settings], AbstractAsyncContextManager[httpx.AsyncClient]]
) -> None:
    with_pathways = settings.model_copy(update={"load_pathways_on_start": True, "pathways_dir": PATHWAYS})
    async with make_client(with_pathways) as client:
        response = await client.post("/fhir", json=sample_case("P01").upsert(datetime.now(UTC)), headers=HEADERS)
        assert response.status_code == 200, response.text
        body = parameters(("url", {"valueUri": PLAN_URL}), subject("P01"), PERSIST)
        careplan = await apply_ok(client, "PlanDefinition", body)

        assert careplan["resourceType"] == "CarePlan"
        assert careplan["instantiatesCanonical"][0].startswith(f"{PLAN_URL}|")
        tasks = await stored(client, "Task", subject="Patient/P01")
        assert {_action_id(t) for t in tasks} == P01_STEPS
        assert all(t["basedOn"] == [{"reference": f"CarePlan/{careplan['id']}"}] for t in tasks)
        assert not [r for t in tasks for r in references(t) if r.startswith(("#", "urn:uuid:"))]
        provenance = await stored(client, "Provenance", target=f"CarePlan/{careplan['id']}")
        assert len(provenance) == 1
        assert provenance[0]["entity"][0]["what"]["display"] == careplan["instantiatesCanonical"][0]
