"""`$apply` under SMART scopes: read on definitions, read + search on Patient and on the types the pathway
reads, create on what persist=true stores; patient/ tokens only for their own patient; one AuditEvent each."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.integration.auth_support import MakeClient, SigningKey, bearer, jwt_settings, rsa_key, token

from carepath.auth.apply_access import data_types
from carepath.auth.compartment import COMPARTMENT_PARAMS

PATHWAYS = Path(__file__).resolve().parents[2] / "pathways"
PLAN_ID: dict[str, str] = {}  # the loader versions ids ("chemo-failure-follow-up-1-0-0"): looked up once
FHIR = "application/fhir+json"


def parameters(subject: str, persist: bool = False) -> dict[str, Any]:
    params: list[dict[str, Any]] = [{"name": "subject", "valueString": subject}]
    if persist:
        params.append({"name": "persist", "valueBoolean": True})
    return {"resourceType": "Parameters", "parameter": params}


@pytest.fixture(scope="module")
def key() -> SigningKey:
    return rsa_key()


@pytest.fixture
async def http(tmp_path: Path, key: SigningKey, make_client: MakeClient) -> AsyncIterator[httpx.AsyncClient]:
    settings = jwt_settings(tmp_path, key, load_pathways_on_start=True, pathways_dir=PATHWAYS)
    async with make_client(settings) as client:
        admin = {**bearer(token(key)), "Content-Type": FHIR}
        for pid in ("p1", "p2"):
            answer = await client.put(
                f"/fhir/Patient/{pid}", json={"resourceType": "Patient", "id": pid}, headers=admin
            )
            assert answer.status_code == 201
        plans = (await client.get("/fhir/PlanDefinition", headers=admin)).json()["entry"]
        PLAN_ID["id"] = plans[0]["resource"]["id"]
        yield client


async def apply(client: httpx.AsyncClient, key: SigningKey, scope: str, subject: str = "Patient/p1",
                persist: bool = False, **claims: Any) -> httpx.Response:  # fmt: skip
    headers = {**bearer(token(key, scope, **claims)), "Content-Type": FHIR}
    return await client.post(
        f"/fhir/PlanDefinition/{PLAN_ID['id']}/$apply", json=parameters(subject, persist), headers=headers
    )


async def test_apply_needs_read_and_search_on_what_the_pathway_reads(http: httpx.AsyncClient, key: SigningKey) -> None:
    assert (await apply(http, key, "system/PlanDefinition.r system/Patient.rs")).status_code == 403
    narrow = "system/Patient.rs system/Observation.rs system/Condition.rs system/MedicationRequest.rs"
    assert (await apply(http, key, narrow)).status_code == 403  # MedicationAdministration missing
    assert (await apply(http, key, narrow + " system/MedicationAdministration.r")).status_code == 403  # no s
    assert (await apply(http, key, narrow + " system/MedicationAdministration.rs")).status_code == 200
    assert (await apply(http, key, "system/*.read")).status_code == 200  # v1


async def test_persisted_apply_needs_create_on_what_it_stores(http: httpx.AsyncClient, key: SigningKey) -> None:
    assert (await apply(http, key, "system/*.rs", persist=True)).status_code == 403
    stored = ("CarePlan", "RequestGroup", "Task", "ServiceRequest", "CommunicationRequest", "MedicationRequest", "Goal")
    almost = "system/*.rs " + " ".join(f"system/{t}.c" for t in stored)
    assert (await apply(http, key, almost, persist=True)).status_code == 403  # Provenance missing
    assert (await apply(http, key, almost + " system/Provenance.c", persist=True)).status_code in (200, 201)


async def test_patient_tokens_apply_only_to_their_patient(http: httpx.AsyncClient, key: SigningKey) -> None:
    assert (await apply(http, key, "patient/*.rs", patient="p1")).status_code == 200
    assert (await apply(http, key, "patient/*.rs", "Patient/p2", patient="p1")).status_code == 403
    assert (await apply(http, key, "patient/*.rs", "Patient/p1")).status_code == 403  # no patient claim
    assert (await apply(http, key, "patient/*.cruds", persist=True, patient="p1")).status_code in (200, 201)


async def test_apply_is_audited(http: httpx.AsyncClient, key: SigningKey) -> None:
    assert (await apply(http, key, "system/*.rs")).status_code == 200
    admin = bearer(token(key))
    for _ in range(50):
        found = (await http.get("/fhir/AuditEvent?subtype=operation&patient=Patient/p1", headers=admin)).json()
        if found.get("entry"):
            break
        await asyncio.sleep(0.1)
    event = found["entry"][0]["resource"]
    assert event["action"] == "E" and event["outcome"] == "0"
    assert {e["what"]["reference"] for e in event["entity"]} == {f"PlanDefinition/{PLAN_ID['id']}", "Patient/p1"}


def test_types_are_derived_conservatively() -> None:
    assert data_types({"resourceType": "PlanDefinition", "action": [{"input": [{"type": "Condition"}]}]}, None) == set()
    always = {"expression": {"language": "text/fhirpath", "expression": "true"}}
    action = {"condition": [always], "input": [{"type": "Condition"}], "dataRequirement": [{"type": "Goal"}]}
    with_requirement = {"resourceType": "PlanDefinition", "action": [action]}
    assert data_types(with_requirement, None) == {"Goal"}
    named = {
        "expression": {
            "language": "text/fhirpath",
            "expression": "%data.entry.resource.where(resourceType='Procedure')",
        }
    }
    assert data_types({"resourceType": "PlanDefinition", "action": [{"condition": [named]}]}, None) == {"Procedure"}
    url = "%data.entry.resource.where(resourceType='Goal').extension('http://example.org/fhir/Procedure-note')"
    literal = {"expression": {"language": "text/fhirpath", "expression": url}}
    assert data_types({"resourceType": "PlanDefinition", "action": [{"condition": [literal]}]}, None) == {"Goal"}
    typed = {"expression": {"language": "text/fhirpath", "expression": "%data.entry.resource.ofType(Condition)"}}
    assert data_types({"resourceType": "PlanDefinition", "action": [{"condition": [typed]}]}, None) == {"Condition"}
    blind = {"expression": {"language": "text/fhirpath", "expression": "%data.entry.resource.count() > 3"}}
    assert data_types({"resourceType": "PlanDefinition", "action": [{"condition": [blind]}]}, None) == set(
        COMPARTMENT_PARAMS
    )
    cql = {"expression": {"language": "text/cql", "expression": "exists [Procedure]"}}
    assert data_types({"resourceType": "PlanDefinition", "action": [{"condition": [cql]}]}, None) == set(
        COMPARTMENT_PARAMS
    )
