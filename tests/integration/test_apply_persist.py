"""`$apply` with `persist=true` through HTTP, on SQLite and PostgreSQL: what is stored, how it is linked, that it
is all or nothing, and that a retried call with the same `Idempotency-Key` creates nothing new."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from apply_support import (
    ASSESS,
    INFORM,
    PERSIST,
    PLAN_URL,
    REFER,
    apply_ok,
    canonical,
    contained,
    ecog_observation,
    parameters,
    pathway,
    post_apply,
    references,
    store_pathway,
    stored,
    subject,
)
from rest_support import FHIR_JSON, assert_outcome, create, patient

from carepath.engine.explain import WAITS_FOR

CQF_MESSAGES = "http://hl7.org/fhir/StructureDefinition/cqf-messages"
STORED_TYPES = ("CarePlan", "RequestGroup", "Task", "ServiceRequest", "CommunicationRequest", "Provenance")


async def _frail_patient(client: httpx.AsyncClient) -> str:
    created = await create(client, patient("Persist"))
    await create(client, ecog_observation(created["id"], 3))
    return str(created["id"])


async def _counts(client: httpx.AsyncClient) -> dict[str, int]:
    return {res_type: len(await stored(client, res_type)) for res_type in STORED_TYPES}


async def _persisted(client: httpx.AsyncClient, **headers: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    plan = await store_pathway(client)
    patient_id = await _frail_patient(client)
    body = parameters(subject(patient_id), PERSIST)
    return plan, await apply_ok(client, f"PlanDefinition/{plan['id']}", body, **headers), patient_id


async def test_persist_stores_every_resource_once(client: httpx.AsyncClient) -> None:
    _, careplan, _ = await _persisted(client)
    assert careplan["meta"]["versionId"] == "1"
    read = await client.get(f"/fhir/CarePlan/{careplan['id']}", headers={"Accept": FHIR_JSON})
    assert read.json() == careplan  # the stored CarePlan is what was returned
    assert "contained" not in careplan  # no warnings here, and every generated resource is stored on its own
    counts = {"CarePlan": 1, "RequestGroup": 1, "Task": 3, "ServiceRequest": 1, "CommunicationRequest": 1,
              "Provenance": 1}  # fmt: skip
    assert await _counts(client) == counts


async def test_persisted_references_resolve_to_stored_resources(client: httpx.AsyncClient) -> None:
    _, careplan, _ = await _persisted(client)
    everything = [r for res_type in STORED_TYPES for r in await stored(client, res_type)]
    for resource in everything:
        for reference in references(resource):
            assert not reference.startswith(("#", "urn:uuid:")), (resource["resourceType"], reference)
            response = await client.get(f"/fhir/{reference}", headers={"Accept": FHIR_JSON})
            assert response.status_code == 200, (resource["resourceType"], reference)
    group_ref = careplan["activity"][0]["reference"]["reference"]
    group = (await client.get(f"/fhir/{group_ref}")).json()
    assert [a["resource"]["reference"].split("/")[0] for a in group["action"]] == [
        "Task", "ServiceRequest", "CommunicationRequest"]  # fmt: skip


async def test_tasks_point_to_the_careplan_and_wait_for_stored_tasks(client: httpx.AsyncClient) -> None:
    _, careplan, _ = await _persisted(client)
    tasks = await stored(client, "Task")
    assert all(t["basedOn"] == [{"reference": f"CarePlan/{careplan['id']}"}] for t in tasks)
    by_description = {t["description"]: t for t in tasks}
    letter = by_description["Write to the GP"]
    waits = [e["valueReference"]["reference"] for e in letter["extension"] if e["url"] == WAITS_FOR]
    assert waits == [f"Task/{by_description['Reassess performance status']['id']}"]
    assert letter["status"] == "draft"  # held until the reassessment is done
    assert (await stored(client, "Task", _id=waits[0].split("/")[1]))[0]["status"] == "requested"
    referral_task = by_description["Refer to palliative care"]
    assert referral_task["focus"]["reference"].startswith("ServiceRequest/")


async def test_provenance_targets_everything_and_names_the_plan_version(client: httpx.AsyncClient) -> None:
    plan, careplan, patient_id = await _persisted(client)
    provenance = (await stored(client, "Provenance"))[0]
    created = {f"{r['resourceType']}/{r['id']}" for t in STORED_TYPES[:-1] for r in await stored(client, t)}
    assert {target["reference"] for target in provenance["target"]} == created
    entities = [entity["what"] for entity in provenance["entity"]]
    assert {"reference": f"PlanDefinition/{plan['id']}/_history/1", "display": f"{PLAN_URL}|1.0.0"} in entities
    assert {"reference": f"Patient/{patient_id}"} in entities
    ecog = (await stored(client, "Observation"))[0]
    assert {"reference": f"Observation/{ecog['id']}/_history/1"} in entities  # the stored record the engine saw
    assert careplan["instantiatesCanonical"] == [f"{PLAN_URL}|1.0.0"]


async def test_a_failure_midway_stores_nothing(client: httpx.AsyncClient) -> None:
    """The referral (the fourth resource written) gets an invalid status: nothing at all may remain."""
    await store_pathway(client)
    broken = pathway(version="3.0.0")
    broken["action"][1]["dynamicValue"] = [{"path": "status", "expression": {"language": "text/fhirpath",
                                                                            "expression": "'bogus'"}}]  # fmt: skip
    plan = await create(client, broken)
    patient_id = await _frail_patient(client)
    response = await post_apply(client, f"PlanDefinition/{plan['id']}", parameters(subject(patient_id), PERSIST))
    outcome = assert_outcome(response, 422)
    assert "refer" in outcome["issue"][0]["diagnostics"]  # the action that produced the invalid resource
    assert any("status" in e for issue in outcome["issue"] for e in issue.get("expression", []))
    assert await _counts(client) == dict.fromkeys(STORED_TYPES, 0)


async def test_same_idempotency_key_returns_the_first_careplan(client: httpx.AsyncClient) -> None:
    plan, first, patient_id = await _persisted(client, **{"Idempotency-Key": "retry-1"})
    body = parameters(subject(patient_id), PERSIST)
    again = await apply_ok(client, f"PlanDefinition/{plan['id']}", body, **{"Idempotency-Key": "retry-1"})
    assert again == first
    assert len(await stored(client, "CarePlan")) == 1
    assert len(await stored(client, "Task")) == 3
    other = await apply_ok(client, f"PlanDefinition/{plan['id']}", body, **{"Idempotency-Key": "retry-2"})
    assert other["id"] != first["id"]  # a new key is a new request
    assert len(await stored(client, "CarePlan")) == 2


async def test_a_key_reused_for_another_request_is_refused(client: httpx.AsyncClient) -> None:
    plan, first, _ = await _persisted(client, **{"Idempotency-Key": "reused"})
    other_patient = await _frail_patient(client)
    response = await post_apply(client, f"PlanDefinition/{plan['id']}", parameters(subject(other_patient), PERSIST),
                                **{"Idempotency-Key": "reused"})  # fmt: skip
    outcome = assert_outcome(response, 422)
    assert "Idempotency-Key" in outcome["issue"][0]["diagnostics"]
    assert [c["id"] for c in await stored(client, "CarePlan")] == [first["id"]]  # nothing new for the 2nd patient


async def test_concurrent_calls_with_one_key_store_one_careplan(client: httpx.AsyncClient) -> None:
    plan = await store_pathway(client)
    patient_id = await _frail_patient(client)
    body = parameters(subject(patient_id), PERSIST)
    calls = [post_apply(client, f"PlanDefinition/{plan['id']}", body, **{"Idempotency-Key": "same"}) for _ in range(6)]
    responses = await asyncio.gather(*calls)
    assert [r.status_code for r in responses] == [200] * 6, [r.text for r in responses]
    assert len({r.json()["id"] for r in responses}) == 1
    assert len(await stored(client, "CarePlan")) == 1
    assert len(await stored(client, "Provenance")) == 1


async def test_engine_warnings_come_back_in_a_referenced_outcome(client: httpx.AsyncClient) -> None:
    """A relatedAction naming no action of the plan is a warning: the CarePlan still applies and says so."""
    for definition in (ASSESS, REFER, INFORM):
        await create(client, definition)
    odd = pathway(version="4.0.0")
    odd["action"][2]["relatedAction"][0]["actionId"] = "no-such-action"
    plan = await create(client, odd)
    patient_id = await _frail_patient(client)
    for body in (parameters(subject(patient_id)), parameters(subject(patient_id), PERSIST)):
        careplan = await apply_ok(client, f"PlanDefinition/{plan['id']}", body)
        messages = [e["valueReference"]["reference"] for e in careplan["extension"] if e["url"] == CQF_MESSAGES]
        outcome = next(r for r in contained(careplan, "OperationOutcome") if f"#{r['id']}" == messages[0])
        warning = next(i for i in outcome["issue"] if i["severity"] == "warning")
        assert "no-such-action" in warning["diagnostics"]
        assert warning["expression"] == ["PlanDefinition.action[2].relatedAction[0]"]
    assert len(await stored(client, "CarePlan")) == 1
    assert canonical(ASSESS) in {t.get("instantiatesCanonical") for t in await stored(client, "Task")}


async def test_categorised_goals_and_actions_without_definition_can_be_persisted(client: httpx.AsyncClient) -> None:
    """A PlanDefinition goal with a category (R4: Goal.category is a list) used to make persist answer 422; an
    action with neither definition nor sub-actions was stored as a RequestGroup action breaking rqg-1."""
    await store_pathway(client)
    goal = {"id": "comfort", "category": {"text": "symptom control"}, "description": {"text": "Pain under control"},
            "start": {"text": "pathway start"}, "target": [{"measure": {"text": "pain score"},
            "detailRange": {"high": {"value": 3}}, "due": {"value": 2, "unit": "weeks",
            "system": "http://unitsofmeasure.org", "code": "wk"}}]}  # fmt: skip
    plan = pathway(version="4.0.0")
    plan["goal"] = [goal]
    plan["action"].append({"id": "talk", "title": "Discuss goals of care", "goalId": ["comfort"]})
    stored_plan = await create(client, plan)
    patient_id = await _frail_patient(client)
    careplan = await apply_ok(client, f"PlanDefinition/{stored_plan['id']}", parameters(subject(patient_id), PERSIST))
    (goal_ref,) = careplan["goal"]
    stored_goal = (await client.get(f"/fhir/{goal_ref['reference']}")).json()
    assert stored_goal["category"] == [{"text": "symptom control"}] and "startDate" not in stored_goal
    assert stored_goal["target"][0]["dueDuration"]["code"] == "wk"
    group = (await client.get(f"/fhir/{careplan['activity'][0]['reference']['reference']}")).json()
    assert all(("resource" in a) != ("action" in a) for a in group["action"])
    talk = next(a for a in group["action"] if a["id"] == "talk")
    task = (await client.get(f"/fhir/{talk['resource']['reference']}")).json()
    assert task["description"] == "Discuss goals of care" and (task["status"], task["intent"]) == ("requested", "order")


async def test_persisted_requests_stay_proposals_and_tasks_are_orders(client: httpx.AsyncClient) -> None:
    _, careplan, _ = await _persisted(client)
    tasks = await stored(client, "Task", **{"based-on": f"CarePlan/{careplan['id']}"})
    assert {t["intent"] for t in tasks} == {"order"} and {t["status"] for t in tasks} <= {"requested", "draft"}
    held = [t for t in tasks if t["status"] == "draft"]
    assert held and all(any(e["url"] == WAITS_FOR for e in t["extension"]) for t in held)
    (referral,) = await stored(client, "ServiceRequest")
    assert (referral["status"], referral["intent"]) == ("draft", "option")
    (letter,) = await stored(client, "CommunicationRequest")
    assert letter["status"] == "draft" and "intent" not in letter
