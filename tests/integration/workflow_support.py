"""Helpers for the Task workflow integration tests: a small care plan of Tasks built through the API, and the
outbound events the workflow queued (read from the outbox, as the relay would publish them)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from rest_support import create, put

from carepath import jsonutil
from carepath.content.samples import sample_case
from carepath.settings import Settings
from carepath.store import outbox
from carepath.store.database import create_engine
from carepath.store.repository import Repository
from carepath.workflow.tasks import WAITS_FOR

Resource = dict[str, Any]
FHIR_JSON = {"content-type": "application/fhir+json"}
PATHWAYS = Path(__file__).resolve().parents[2] / "pathways"
PLAN_URL = "https://fhir.carepath.dev/PlanDefinition/chemo-failure-follow-up"


async def start_pathway(client: httpx.AsyncClient, key: str) -> str:
    """Store the sample patient `key` and apply the shipped pathway with persist; returns Patient/<key>."""
    response = await client.post("/fhir", json=sample_case(key).upsert(datetime.now(UTC)), headers=FHIR_JSON)
    assert response.status_code == 200, response.text
    params = {"resourceType": "Parameters", "parameter": [{"name": "url", "valueUri": PLAN_URL},
                                                           {"name": "subject", "valueString": f"Patient/{key}"},
                                                           {"name": "persist", "valueBoolean": True}]}  # fmt: skip
    applied = await client.post("/fhir/PlanDefinition/$apply", json=params, headers=FHIR_JSON)
    assert applied.status_code == 200 and applied.json()["resourceType"] == "CarePlan", applied.text
    return f"Patient/{key}"


async def patient_tasks(client: httpx.AsyncClient, patient: str) -> list[Resource]:
    bundle = (await client.get(f"/fhir/Task?patient={patient}&_count=200")).json()
    return [e["resource"] for e in bundle.get("entry", [])]


async def careplan_with_tasks(client: httpx.AsyncClient) -> dict[str, Resource]:
    """Patient, CarePlan + RequestGroup, Tasks a and b (requested) and d (draft, waiting for a and b)."""
    patient = await create(client, {"resourceType": "Patient", "active": True})
    subject = {"reference": f"Patient/{patient['id']}"}
    group = await create(client, {"resourceType": "RequestGroup", "status": "active", "intent": "plan",
                                  "subject": subject})  # fmt: skip
    activity = [{"reference": {"reference": f"RequestGroup/{group['id']}"}}]
    plan = await create(client, {"resourceType": "CarePlan", "status": "active", "intent": "plan", "subject": subject,
                                 "activity": activity})  # fmt: skip
    common = {"resourceType": "Task", "intent": "order", "for": subject,
              "basedOn": [{"reference": f"CarePlan/{plan['id']}"}]}  # fmt: skip
    a = await create(client, {**common, "status": "requested", "description": "step a"})
    b = await create(client, {**common, "status": "requested", "description": "step b"})
    waits = [{"url": WAITS_FOR, "valueReference": {"reference": f"Task/{t['id']}"}} for t in (a, b)]
    d = await create(client, {**common, "status": "draft", "description": "step d", "extension": waits,
                              "businessStatus": {"text": "waiting for: step a, step b"}})  # fmt: skip
    return {"patient": patient, "plan": plan, "group": group, "a": a, "b": b, "d": d}


async def move(client: httpx.AsyncClient, task: Resource, *statuses: str) -> Resource:
    """PUT `task` through `statuses` in turn (each must be accepted); returns the last stored version."""
    current = task
    for status in statuses:
        response = await put(client, {**current, "status": status})
        assert response.status_code == 200, response.text
        current = response.json()
    return current


async def read(client: httpx.AsyncClient, reference: str) -> Resource:
    response = await client.get(f"/fhir/{reference}")
    assert response.status_code == 200, response.text
    body: Resource = response.json()
    return body


async def events(settings: Settings) -> list[tuple[str, Resource]]:
    """(type, data) of every outbound event in the outbox, in commit order."""
    engine = create_engine(settings.effective_database_url, schema=settings.database_schema)
    try:
        async with Repository(engine).reader() as tx:
            rows = await outbox.claim(tx.conn, 10_000) or []
    finally:
        await engine.dispose()
    return [(row.type, jsonutil.loads(row.data)) for row in rows if row.channel == outbox.OUTBOUND]
