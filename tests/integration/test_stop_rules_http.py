"""The spec's stop rules as behaviour: events written through the API change the patient's pathway Tasks."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
from workflow_support import FHIR_JSON, patient_tasks, start_pathway

from carepath.content import codes

THERAPY_CODES = {"183541002", "306313008", "306318004", "306256000", "immunotherapy-eligibility-review",
                 "targeted-therapy-review", "clinical-trial-screening"}  # fmt: skip


async def _requests(client: httpx.AsyncClient, patient: str) -> dict[str, dict[str, Any]]:
    bundle = (await client.get(f"/fhir/ServiceRequest?patient={patient}&_count=200")).json()
    return {f"ServiceRequest/{e['resource']['id']}": e["resource"] for e in bundle.get("entry", [])}


def _codes_of(task: dict[str, Any], requests: dict[str, dict[str, Any]]) -> set[str]:
    work = requests.get(task.get("focus", {}).get("reference", ""), task)
    return {c.get("code") for c in work.get("code", {}).get("coding", [])}


async def test_death_cancels_every_open_task(pathway_client: httpx.AsyncClient) -> None:
    patient = await start_pathway(pathway_client, "P01")
    before = await patient_tasks(pathway_client, patient)
    assert before and all(t["status"] in ("requested", "draft") for t in before)
    current = (await pathway_client.get(f"/fhir/{patient}")).json()
    response = await pathway_client.put(
        f"/fhir/{patient}", json={**current, "deceasedBoolean": True}, headers=FHIR_JSON
    )
    assert response.status_code == 200
    after = await patient_tasks(pathway_client, patient)
    assert len(after) == len(before)
    assert {t["status"] for t in after} == {"cancelled"}
    assert all(t["statusReason"]["coding"][0]["code"] == codes.DEATH for t in after)


async def test_refusal_suspends_therapy_assessments_and_keeps_supportive_care(
    pathway_client: httpx.AsyncClient,
) -> None:
    patient = await start_pathway(pathway_client, "P01")
    refusal = {
        "resourceType": "MedicationRequest", "status": "stopped", "intent": "order", "subject": {"reference": patient},
        "medicationCodeableConcept": {"text": "second-line chemotherapy"},
        "statusReason": {"coding": [{"system": codes.SNOMED, "code": codes.PATIENT_REFUSAL}]},
    }  # fmt: skip
    assert (await pathway_client.post("/fhir/MedicationRequest", json=refusal, headers=FHIR_JSON)).status_code == 201
    requests = await _requests(pathway_client, patient)
    tasks = await patient_tasks(pathway_client, patient)
    therapy = [t for t in tasks if _codes_of(t, requests) & THERAPY_CODES]
    others = [t for t in tasks if not _codes_of(t, requests) & THERAPY_CODES]
    assert therapy and others
    assert {t["status"] for t in therapy} == {"on-hold"}
    assert "on-hold" not in {t["status"] for t in others}


async def test_improvement_asks_the_coordinator_and_cancels_nothing(pathway_client: httpx.AsyncClient) -> None:
    patient = await start_pathway(pathway_client, "P02")
    before = {t["id"]: t["status"] for t in await patient_tasks(pathway_client, patient)}
    improved = {
        "resourceType": "Observation", "status": "final", "subject": {"reference": patient},
        "code": {"coding": [{"system": codes.LOINC, "code": codes.DISEASE_STATUS}]},
        "effectiveDateTime": datetime.now(UTC).isoformat(),
        "valueCodeableConcept": {"coding": [{"system": codes.SNOMED, "code": codes.IMPROVED}]},
    }  # fmt: skip
    created = await pathway_client.post("/fhir/Observation", json=improved, headers=FHIR_JSON)
    assert created.status_code == 201
    after = {t["id"]: t for t in await patient_tasks(pathway_client, patient)}
    assert {i: after[i]["status"] for i in before} == before  # nothing changed status
    review = [t for i, t in after.items() if i not in before]
    assert len(review) == 1
    assert review[0]["focus"]["reference"] == f"Observation/{created.json()['id']}"
    assert "improved" in review[0]["description"]
    # Writing the same event again does not pile up review Tasks.
    again = {**created.json()}
    assert (
        await pathway_client.put(f"/fhir/Observation/{again['id']}", json=again, headers=FHIR_JSON)
    ).status_code == 200
    assert len(await patient_tasks(pathway_client, patient)) == len(after)
