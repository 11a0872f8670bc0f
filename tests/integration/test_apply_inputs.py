"""`$apply` inputs checked before use (on SQLite and PostgreSQL): every shape a client can send is a 400 naming the
element, inline resources are validated like stored ones, and an unknown subject is a 404 naming `subject`."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from apply_support import ecog_observation, parameters, pathway, post_apply, store_pathway, subject
from rest_support import HEADERS, assert_outcome, create, patient


async def _plan_path(client: httpx.AsyncClient) -> str:
    return f"PlanDefinition/{(await store_pathway(client))['id']}"


def _bundle(*entries: Any) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "collection", "entry": list(entries)}


@pytest.mark.parametrize("value", [5, True, "subject", {"name": "subject"}])
async def test_a_parameters_body_whose_parameter_is_not_a_list_is_a_400(client: httpx.AsyncClient, value: Any) -> None:
    path = await _plan_path(client)
    response = await post_apply(client, path, {"resourceType": "Parameters", "parameter": value})
    assert_outcome(response, 400, expression="Parameters.parameter")


async def test_a_parameter_that_is_not_an_object_is_a_400(client: httpx.AsyncClient) -> None:
    response = await post_apply(client, await _plan_path(client), {"resourceType": "Parameters", "parameter": [3]})
    assert_outcome(response, 400, expression="Parameters.parameter[0]")


async def test_a_data_bundle_is_checked_entry_by_entry(client: httpx.AsyncClient) -> None:
    path = await _plan_path(client)
    patient_id = (await create(client, patient("Inputs")))["id"]
    for data, expression in [
        (_bundle("Patient/1"), "Bundle.entry[0]"),
        ({**_bundle(), "entry": "everything"}, "Bundle.entry"),
        (_bundle({"resource": {**ecog_observation(patient_id, 2), "valueInteger": "2"}}),
         "Bundle.entry[0].resource.valueInteger"),
        (_bundle({"resource": {**ecog_observation(patient_id, 2), "bogus": 1}}), "Bundle.entry[0].resource.bogus"),
        (_bundle({"resource": {"resourceType": "Patient", "id": "a b"}}), "Bundle.entry[0].resource.id"),
        ({"resourceType": "Bundle", "entry": []}, "Bundle.type"),
    ]:  # fmt: skip
        body = parameters(subject(patient_id), ("data", {"resource": data}))
        outcome = assert_outcome(await post_apply(client, path, body), 400, expression=expression)
        assert "'data'" in outcome["issue"][0]["diagnostics"], outcome


async def test_a_parameters_resource_is_validated(client: httpx.AsyncClient) -> None:
    path = await _plan_path(client)
    patient_id = (await create(client, patient("Inputs")))["id"]
    for value, expression in [
        ({"resourceType": "Parameters", "parameter": "frailEcog"}, "Parameters.parameter"),
        ({"resourceType": "Parameters", "parameter": [{"name": "frailEcog", "valueInteger": "2"}]},
         "Parameters.parameter[0].valueInteger"),
    ]:  # fmt: skip
        body = parameters(subject(patient_id), ("parameters", {"resource": value}))
        assert_outcome(await post_apply(client, path, body), 400, expression=expression)


async def test_an_inline_plan_definition_is_validated_like_a_stored_one(client: httpx.AsyncClient) -> None:
    await store_pathway(client)
    patient_id = (await create(client, patient("Inputs")))["id"]
    good = pathway(version="9.0.0")
    for plan, expression in [
        ({**good, "status": "bogus"}, "PlanDefinition.status"),
        ({**good, "id": "not an id"}, "PlanDefinition.id"),
        ({**good, "action": "do everything"}, "PlanDefinition.action"),
        ({**good, "action": [{**good["action"][0], "unknownElement": True}]},
         "PlanDefinition.action[0].unknownElement"),
        ({**good, "action": [{**good["action"][0], "timingDuration": {"value": 1e300, "unit": "d",
          "system": "http://unitsofmeasure.org", "code": "d"}}]}, "PlanDefinition.action[0].timingDuration"),
    ]:  # fmt: skip
        body = parameters(subject(patient_id), ("planDefinition", {"resource": plan}))
        outcome = assert_outcome(await post_apply(client, "PlanDefinition", body), 400, expression=expression)
        assert "'planDefinition'" in outcome["issue"][0]["diagnostics"]
    not_a_resource = parameters(subject(patient_id), ("planDefinition", {"valueString": "PlanDefinition/x"}))
    assert_outcome(await post_apply(client, "PlanDefinition", not_a_resource), 400)


async def test_a_duration_out_of_range_is_refused_when_stored(client: httpx.AsyncClient) -> None:
    """A timingDuration of 1e300 days was stored (201), then made $apply overflow (500)."""
    huge = {"value": 1e300, "unit": "days", "system": "http://unitsofmeasure.org", "code": "d"}
    plan = pathway(version="9.1.0")
    plan["action"][0]["timingDuration"] = huge
    response = await client.post("/fhir/PlanDefinition", json=plan, headers=HEADERS)
    assert_outcome(response, 400, expression="PlanDefinition.action[0].timingDuration")


async def test_an_unknown_subject_is_a_404_naming_subject(client: httpx.AsyncClient) -> None:
    """It used to answer 200 "does not apply": a mistyped id looked like a patient who does not qualify."""
    path = await _plan_path(client)
    for extra in ([], [("useServerData", {"valueBoolean": False})]):
        response = await post_apply(client, path, parameters(subject("no-such-patient"), *extra))
        assert_outcome(response, 404, expression="subject")
    response = await post_apply(client, "ActivityDefinition/x", parameters(subject("no-such-patient")))
    assert response.status_code == 404


async def test_a_subject_given_only_in_data_or_only_stored_is_found(client: httpx.AsyncClient) -> None:
    path = await _plan_path(client)
    inline = {"resourceType": "Patient", "id": "only-inline"}
    body = parameters(subject("only-inline"), ("data", {"resource": _bundle({"resource": inline})}))
    assert (await post_apply(client, path, body)).status_code == 200
    stored_id = (await create(client, patient("Stored")))["id"]
    no_server_data = parameters(subject(stored_id), ("useServerData", {"valueBoolean": False}))
    assert (await post_apply(client, path, no_server_data)).status_code == 200


async def test_type_level_activity_definition_apply_takes_a_validated_inline_definition(
    client: httpx.AsyncClient,
) -> None:
    patient_id = (await create(client, patient("Inputs")))["id"]
    review = {"resourceType": "ActivityDefinition", "status": "active", "kind": "Task", "title": "Review"}
    body = parameters(subject(patient_id), ("activityDefinition", {"resource": review}))
    response = await post_apply(client, "ActivityDefinition", body)
    assert response.status_code == 200, response.text
    assert (response.json()["resourceType"], response.json()["status"]) == ("Task", "requested")
    bad = parameters(subject(patient_id), ("activityDefinition", {"resource": {**review, "kind": "Nonsense"}}))
    assert_outcome(await post_apply(client, "ActivityDefinition", bad), 400, expression="ActivityDefinition.kind")
    assert_outcome(await post_apply(client, "ActivityDefinition", parameters(subject(patient_id))), 400)
