"""`$apply` through HTTP, not persisted (R4 §12.18.20, §12.19.20), on SQLite and PostgreSQL: the ways to call it,
which data it sees, parameters, and its answers to mistakes."""

from __future__ import annotations

from typing import Any

import httpx
from apply_support import (
    ASSESS,
    PLAN_URL,
    REFER,
    applicability,
    apply_ok,
    contained,
    ecog_observation,
    parameters,
    pathway,
    post_apply,
    store_pathway,
    stored,
    subject,
)
from rest_support import FHIR_JSON, HEADERS, assert_outcome, create, patient

from carepath.content import codes


async def _patient(client: httpx.AsyncClient, ecog: int | None = None) -> str:
    created = await create(client, patient("Apply"))
    if ecog is not None:
        await create(client, ecog_observation(created["id"], ecog))
    return str(created["id"])


def _action_ids(careplan: dict[str, Any]) -> list[str]:
    group = contained(careplan, "RequestGroup")[0]
    return [action["id"] for action in group.get("action", [])]


async def test_instance_post_returns_a_careplan_and_stores_nothing(client: httpx.AsyncClient) -> None:
    plan = await store_pathway(client)
    patient_id = await _patient(client, ecog=3)
    careplan = await apply_ok(client, f"PlanDefinition/{plan['id']}", parameters(subject(patient_id)))
    assert careplan["resourceType"] == "CarePlan"
    assert careplan["instantiatesCanonical"] == [f"{PLAN_URL}|1.0.0"]
    assert careplan["subject"] == {"reference": f"Patient/{patient_id}"}
    group = contained(careplan, "RequestGroup")[0]
    assert careplan["activity"] == [{"reference": {"reference": f"#{group['id']}"}}]
    assert _action_ids(careplan) == ["assess", "refer", "inform"]
    assert [r["resourceType"] for r in contained(careplan, "ServiceRequest")] == ["ServiceRequest"]
    assert len(contained(careplan, "CommunicationRequest")) == 1
    assert len(contained(careplan, "Task")) == 3  # the assessment Task and one companion Task per request
    assert "id" not in careplan  # transient: nothing stored, so no server id
    assert await stored(client, "CarePlan") == []
    assert await stored(client, "Task") == []


async def test_get_with_simple_parameters(client: httpx.AsyncClient) -> None:
    plan = await store_pathway(client)
    patient_id = await _patient(client, ecog=3)
    response = await client.get(
        f"/fhir/PlanDefinition/{plan['id']}/$apply", params={"subject": f"Patient/{patient_id}"},
        headers={"Accept": FHIR_JSON},
    )  # fmt: skip
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith(FHIR_JSON)
    careplan = response.json()
    assert careplan["subject"] == {"reference": f"Patient/{patient_id}"}
    assert _action_ids(careplan) == ["assess", "refer", "inform"]


async def test_get_cannot_persist(client: httpx.AsyncClient) -> None:
    plan = await store_pathway(client)
    patient_id = await _patient(client)
    response = await client.get(
        f"/fhir/PlanDefinition/{plan['id']}/$apply", params={"subject": f"Patient/{patient_id}", "persist": "true"},
        headers={"Accept": FHIR_JSON},
    )  # fmt: skip
    assert_outcome(response, 405)
    assert await stored(client, "CarePlan") == []


async def test_type_level_with_a_plan_definition_resource(client: httpx.AsyncClient) -> None:
    await store_pathway(client)
    patient_id = await _patient(client, ecog=1)
    inline = {**pathway(version="9.9.9"), "title": "Sent inline"}
    body = parameters(("planDefinition", {"resource": inline}), subject(patient_id))
    careplan = await apply_ok(client, "PlanDefinition", body)
    assert careplan["title"] == "Sent inline"
    assert careplan["instantiatesCanonical"] == [f"{PLAN_URL}|9.9.9"]
    assert _action_ids(careplan) == ["assess", "inform"]  # ECOG 1: not frail, no referral


async def test_type_level_with_url_and_version(client: httpx.AsyncClient) -> None:
    await store_pathway(client)
    await create(client, {**pathway(version="1.2.0"), "title": "Version 1.2.0"})
    patient_id = await _patient(client)
    by_url = await apply_ok(client, "PlanDefinition", parameters(("url", {"valueUri": PLAN_URL}), subject(patient_id)))
    assert by_url["instantiatesCanonical"] == [f"{PLAN_URL}|1.2.0"]  # no version: the highest one
    pinned = parameters(("url", {"valueUri": PLAN_URL}), ("version", {"valueString": "1.0.0"}), subject(patient_id))
    careplan = await apply_ok(client, "PlanDefinition", pinned)
    assert careplan["instantiatesCanonical"] == [f"{PLAN_URL}|1.0.0"]
    assert careplan["title"] == "Apply test pathway"


async def test_activity_definition_apply_returns_the_request(client: httpx.AsyncClient) -> None:
    definition = await create(client, REFER)
    patient_id = await _patient(client)
    request = await apply_ok(client, f"ActivityDefinition/{definition['id']}", parameters(subject(patient_id)))
    assert request["resourceType"] == "ServiceRequest"
    assert request["subject"] == {"reference": f"Patient/{patient_id}"}
    assert request["code"] == {"coding": [{"system": codes.SNOMED, "code": "306237005"}]}
    assert request["instantiatesCanonical"] == [f"{REFER['url']}|{REFER['version']}"]
    assert await stored(client, "ServiceRequest") == []


async def test_several_subjects_get_one_result_each(client: httpx.AsyncClient) -> None:
    plan = await store_pathway(client)
    frail, fit = await _patient(client, ecog=4), await _patient(client, ecog=0)
    bundle = await apply_ok(client, f"PlanDefinition/{plan['id']}", parameters(subject(frail), subject(fit)))
    assert bundle["resourceType"] == "Bundle"
    assert bundle["type"] == "collection"
    careplans = [entry["resource"] for entry in bundle["entry"]]
    assert [c["subject"]["reference"] for c in careplans] == [f"Patient/{frail}", f"Patient/{fit}"]
    assert [_action_ids(c) for c in careplans] == [["assess", "refer", "inform"], ["assess", "inform"]]


async def test_server_data_is_used_unless_switched_off(client: httpx.AsyncClient) -> None:
    """The referral needs an ECOG >= 3, which only the stored record holds."""
    plan = await store_pathway(client)
    patient_id = await _patient(client, ecog=3)
    path = f"PlanDefinition/{plan['id']}"
    assert "refer" in _action_ids(await apply_ok(client, path, parameters(subject(patient_id))))
    no_server_data = ("useServerData", {"valueBoolean": False})
    assert "refer" not in _action_ids(await apply_ok(client, path, parameters(subject(patient_id), no_server_data)))


async def test_data_bundle_is_used_without_server_data(client: httpx.AsyncClient) -> None:
    plan = await store_pathway(client)
    patient_id = await _patient(client)  # nothing stored about the ECOG
    data = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": ecog_observation(patient_id, 4)}]}
    body = parameters(subject(patient_id), ("data", {"resource": data}), ("useServerData", {"valueBoolean": False}))
    careplan = await apply_ok(client, f"PlanDefinition/{plan['id']}", body)
    assert "refer" in _action_ids(careplan)


async def test_parameters_override_a_plan_variable(client: httpx.AsyncClient) -> None:
    plan = await store_pathway(client)
    patient_id = await _patient(client, ecog=2)
    path = f"PlanDefinition/{plan['id']}"
    assert "refer" not in _action_ids(await apply_ok(client, path, parameters(subject(patient_id))))
    threshold = {"resourceType": "Parameters", "parameter": [{"name": "frailEcog", "valueInteger": 2}]}
    overridden = parameters(subject(patient_id), ("parameters", {"resource": threshold}))
    assert "refer" in _action_ids(await apply_ok(client, path, overridden))


async def test_not_applicable_pathway_is_an_informational_outcome(client: httpx.AsyncClient) -> None:
    plan = {**pathway(), "action": [{**pathway()["action"][0], "condition": [applicability("false")]}]}
    await create(client, ASSESS)
    stored_plan = await create(client, plan)
    patient_id = await _patient(client)
    body = parameters(subject(patient_id), ("persist", {"valueBoolean": True}))
    outcome = await apply_ok(client, f"PlanDefinition/{stored_plan['id']}", body)
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["severity"] == "information"
    assert f"Patient/{patient_id}" in outcome["issue"][0]["diagnostics"]
    assert await stored(client, "CarePlan") == []
    assert await stored(client, "Provenance") == []


async def test_cql_condition_is_not_supported_and_named(client: httpx.AsyncClient) -> None:
    await store_pathway(client)
    cql = pathway(version="2.0.0")
    cql["action"][1]["condition"] = [applicability('"Is frail"', "text/cql")]
    plan = await create(client, cql)
    patient_id = await _patient(client)
    response = await post_apply(client, f"PlanDefinition/{plan['id']}", parameters(subject(patient_id)))
    outcome = assert_outcome(response, 422, expression="PlanDefinition.action[1].condition[0].expression")
    assert outcome["issue"][0]["code"] == "not-supported"
    assert "text/cql" in outcome["issue"][0]["diagnostics"]


async def test_an_expression_naming_an_undefined_variable_is_a_422_naming_it(client: httpx.AsyncClient) -> None:
    """The content's fault, not the request's (it used to be a 400)."""
    await store_pathway(client)
    broken = pathway(version="3.0.0", frail_condition="%noSuchVariable >= 3")
    plan = await create(client, broken)
    patient_id = await _patient(client)
    response = await post_apply(client, f"PlanDefinition/{plan['id']}", parameters(subject(patient_id)))
    outcome = assert_outcome(response, 422, expression="PlanDefinition.action[1].condition[0]")
    assert "noSuchVariable" in outcome["issue"][0]["diagnostics"]


async def test_missing_subject_is_400(client: httpx.AsyncClient) -> None:
    plan = await store_pathway(client)
    response = await post_apply(client, f"PlanDefinition/{plan['id']}", parameters())
    outcome = assert_outcome(response, 400)
    assert "subject" in outcome["issue"][0]["diagnostics"]
    response = await post_apply(client, f"ActivityDefinition/{plan['id']}", parameters())
    assert_outcome(response, 400)


async def test_unknown_plan_definition_is_404(client: httpx.AsyncClient) -> None:
    patient_id = await _patient(client)
    assert_outcome(await post_apply(client, "PlanDefinition/no-such-plan", parameters(subject(patient_id))), 404)
    unknown_url = parameters(("url", {"valueUri": f"{PLAN_URL}-missing"}), subject(patient_id))
    assert_outcome(await post_apply(client, "PlanDefinition", unknown_url), 404)
    assert_outcome(await post_apply(client, "ActivityDefinition/no-such-one", parameters(subject(patient_id))), 404)


async def test_malformed_parameters_are_400(client: httpx.AsyncClient) -> None:
    plan = await store_pathway(client)
    path = f"PlanDefinition/{plan['id']}"
    assert_outcome(await post_apply(client, path, {"resourceType": "Patient"}), 400, expression="resourceType")
    nameless = {"resourceType": "Parameters", "parameter": [{"valueString": "Patient/1"}]}
    assert_outcome(await post_apply(client, path, nameless), 400, expression="Parameters.parameter[0].name")
    two_values = {"resourceType": "Parameters",
                  "parameter": [{"name": "subject", "valueString": "Patient/1", "valueUri": "Patient/2"}]}  # fmt: skip
    assert_outcome(await post_apply(client, path, two_values), 400, expression="Parameters.parameter[0]")
    not_a_reference = parameters(("subject", {"valueString": "nobody"}))
    assert_outcome(await post_apply(client, path, not_a_reference), 400)
    not_boolean = parameters(subject("1"), ("persist", {"valueString": "perhaps"}))
    assert_outcome(await post_apply(client, path, not_boolean), 400)
    not_a_bundle = parameters(subject("1"), ("data", {"resource": {"resourceType": "Patient"}}))
    assert_outcome(await post_apply(client, path, not_a_bundle), 400)
    response = await client.post(f"/fhir/{path}/$apply", content=b"{not json", headers=HEADERS)
    assert_outcome(response, 400)
    assert_outcome(await post_apply(client, "PlanDefinition", parameters(subject("1"))), 400)  # no plan given


async def test_an_edited_plan_is_applied_as_edited(client: httpx.AsyncClient) -> None:
    """Definitions are cached per PlanDefinition version: an update must be seen by the next call."""
    plan = await store_pathway(client)
    patient_id = await _patient(client, ecog=3)
    path = f"PlanDefinition/{plan['id']}"
    first, second = [await apply_ok(client, path, parameters(subject(patient_id))) for _ in range(2)]  # 2nd: cached
    assert [r["id"] for r in first["contained"]] == [r["id"] for r in second["contained"]]
    assert _action_ids(second) == ["assess", "refer", "inform"]
    edited = {**plan, "action": plan["action"][:1]}
    response = await client.put(f"/fhir/{path}", json=edited, headers=HEADERS)
    assert response.status_code == 200, response.text
    assert _action_ids(await apply_ok(client, path, parameters(subject(patient_id)))) == ["assess"]
