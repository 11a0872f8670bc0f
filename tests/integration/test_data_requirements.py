"""`PlanDefinition/{id}/$data-requirements` and the record `$apply` hands the engine, through HTTP (both back ends).

The engine gets the clinical record its expressions read, not carepath's own earlier output: applying twice to a
patient gives the second Provenance the same inputs as the first, not the first call's CarePlan, Tasks, ...
"""

from __future__ import annotations

import httpx
from apply_support import PERSIST, apply_ok, ecog_observation, parameters, pathway, store_pathway, stored, subject
from rest_support import FHIR_JSON, assert_outcome, create, patient

from carepath.content import codes
from carepath.fhir.validation import validate_resource


async def test_data_requirements_is_a_module_definition_library(client: httpx.AsyncClient) -> None:
    plan = await store_pathway(client)
    response = await client.get(f"/fhir/PlanDefinition/{plan['id']}/$data-requirements", headers={"Accept": FHIR_JSON})
    assert response.status_code == 200, response.text
    library = response.json()
    validate_resource(library)
    assert library["type"]["coding"] == [
        {"system": "http://terminology.hl7.org/CodeSystem/library-type", "code": "module-definition"}]  # fmt: skip
    assert library["dataRequirement"] == [{"type": "Observation", "codeFilter": [
        {"path": "code", "code": [{"system": codes.LOINC, "code": codes.ECOG}]}]}]  # fmt: skip
    depends = [a["resource"] for a in library["relatedArtifact"]]
    assert depends[0] == f"{plan['url']}|{plan['version']}" and len(depends) == 4  # the plan and its 3 activities


async def test_data_requirements_of_an_unknown_plan_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/fhir/PlanDefinition/nope/$data-requirements", headers={"Accept": FHIR_JSON})
    assert_outcome(response, 404)


async def test_the_capability_statement_advertises_it(client: httpx.AsyncClient) -> None:
    metadata = (await client.get("/fhir/metadata")).json()
    plan = next(r for r in metadata["rest"][0]["resource"] if r["type"] == "PlanDefinition")
    assert {"name": "data-requirements",
            "definition": "http://hl7.org/fhir/OperationDefinition/PlanDefinition-data-requirements"} in plan[
        "operation"]  # fmt: skip


async def test_earlier_output_is_not_handed_to_the_engine_again(client: httpx.AsyncClient) -> None:
    plan = await store_pathway(client, pathway())
    patient_id = (await create(client, patient("Twice")))["id"]
    ecog = await create(client, ecog_observation(patient_id, 3))
    await create(client, {"resourceType": "Condition", "subject": {"reference": f"Patient/{patient_id}"}})
    body = parameters(subject(patient_id), PERSIST)
    for _ in range(2):
        await apply_ok(client, f"PlanDefinition/{plan['id']}", body)
    provenances = await stored(client, "Provenance")
    assert len(provenances) == 2
    inputs = [sorted(e["what"].get("reference", "") for e in p["entity"]) for p in provenances]
    assert inputs[0] == inputs[1]
    # The plan reads Observations only: neither the Condition nor the first call's output is an input.
    assert f"Observation/{ecog['id']}/_history/1" in inputs[0]
    assert [r for r in inputs[1] if r.split("/")[0] not in ("PlanDefinition", "Patient", "Observation", "")] == []
