"""Batch and transaction Bundles through `POST /fhir` (R4 §3.1.0.11): atomicity, urn:uuid rewriting, order."""

from __future__ import annotations

from typing import Any

import httpx
from rest_support import HEADERS, MRN, assert_outcome, create, patient, search, task

PATIENT_URN = "urn:uuid:6f1c1a52-0c55-4b52-9a37-3c2f4c3b7a11"


def entry(method: str, url: str, resource: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"request": {"method": method, "url": url, **extra}}
    if resource is not None:
        out["resource"] = resource
    return out


async def post_bundle(client: httpx.AsyncClient, kind: str, entries: list[dict[str, Any]]) -> httpx.Response:
    bundle = {"resourceType": "Bundle", "type": kind, "entry": entries}
    return await client.post("/fhir", json=bundle, headers=HEADERS)


async def test_transaction_rewrites_urn_uuid_references(client: httpx.AsyncClient) -> None:
    response = await post_bundle(client, "transaction", [
        entry("POST", "Task", {**task("unused"), "for": {"reference": PATIENT_URN}}),
        {**entry("POST", "Patient", patient("Urn")), "fullUrl": PATIENT_URN},
    ])  # fmt: skip
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["type"] == "transaction-response"
    created = result["entry"]
    assert [e["response"]["status"] for e in created] == ["201 Created", "201 Created"]
    patient_id = created[1]["resource"]["id"]
    assert created[1]["fullUrl"] == f"http://testserver/fhir/Patient/{patient_id}"
    assert created[0]["resource"]["for"]["reference"] == f"Patient/{patient_id}"
    stored = (await client.get(f"/fhir/Task/{created[0]['resource']['id']}")).json()
    assert stored["for"]["reference"] == f"Patient/{patient_id}"


async def test_transaction_is_atomic_and_names_the_bad_entry(client: httpx.AsyncClient) -> None:
    response = await post_bundle(client, "transaction", [
        entry("POST", "Patient", patient("Atomic", mrn="atomic")),
        entry("POST", "Task", {"resourceType": "Task", "status": "bogus", "intent": "order"}),
    ])  # fmt: skip
    outcome = assert_outcome(response, 400)
    assert any("Bundle.entry[1]" in issue["diagnostics"] for issue in outcome["issue"])
    assert (await search(client, "Patient", identifier=f"{MRN}|atomic"))["total"] == 0
    assert (await search(client, "Task"))["total"] == 0


async def test_transaction_runs_delete_post_put_get_in_that_order(client: httpx.AsyncClient) -> None:
    doomed = await create(client, patient("Doomed", mrn="order"))
    kept = await create(client, patient("Kept"))
    response = await post_bundle(client, "transaction", [
        entry("GET", f"Patient?identifier={MRN}|order"),
        entry("PUT", f"Patient/{kept['id']}", {**kept, "active": True}),
        entry("POST", "Patient", patient("Fresh", mrn="order")),
        entry("DELETE", f"Patient/{doomed['id']}"),
    ])  # fmt: skip
    assert response.status_code == 200, response.text
    results = response.json()["entry"]
    assert [e["response"]["status"] for e in results] == ["200 OK", "200 OK", "201 Created", "200 OK"]
    found = results[0]["resource"]  # the search ran last: it sees the POST and not the DELETE
    assert [e["resource"]["name"][0]["family"] for e in found["entry"]] == ["Fresh"]
    assert results[1]["resource"]["meta"]["versionId"] == "2"
    assert_outcome(await client.get(f"/fhir/Patient/{doomed['id']}"), 410)


async def test_if_none_exist_inside_a_transaction(client: httpx.AsyncClient) -> None:
    existing = await create(client, patient("Known", mrn="known"))
    response = await post_bundle(client, "transaction", [
        entry("POST", "Task", {**task("x"), "for": {"reference": PATIENT_URN}}),
        {**entry("POST", "Patient", patient("Known again", mrn="known"), ifNoneExist=f"identifier={MRN}|known"),
         "fullUrl": PATIENT_URN},
        entry("POST", "Patient", patient("New", mrn="new"), ifNoneExist=f"identifier={MRN}|new"),
    ])  # fmt: skip
    results = response.json()["entry"]
    assert [e["response"]["status"] for e in results] == ["201 Created", "200 OK", "201 Created"]
    assert results[1]["resource"]["id"] == existing["id"]
    # the reference to the conditional entry points at the resource it matched (it once stayed a urn:uuid)
    assert results[0]["resource"]["for"]["reference"] == f"Patient/{existing['id']}"
    assert (await search(client, "Patient"))["total"] == 2


async def test_batch_reports_each_entry(client: httpx.AsyncClient) -> None:
    response = await post_bundle(client, "batch", [
        entry("POST", "Patient", patient("Batch", mrn="batch")),
        entry("GET", "Patient/does-not-exist"),
        entry("POST", "Task", {"resourceType": "Task", "status": "bogus", "intent": "order"}),
        entry("PATCH", "Patient/x", {"resourceType": "Parameters"}),
    ])  # fmt: skip
    assert response.status_code == 200
    results = response.json()["entry"]
    assert response.json()["type"] == "batch-response"
    # PATCH is supported now (test_rest_patch.py): patching a resource that does not exist is a 404
    assert [e["response"]["status"][:3] for e in results] == ["201", "404", "400", "404"]
    assert results[2]["response"]["outcome"]["issue"][0]["expression"] == ["Task.status"]
    assert (await search(client, "Patient", identifier=f"{MRN}|batch"))["total"] == 1


async def test_malformed_bundles_are_refused(client: httpx.AsyncClient) -> None:
    assert_outcome(await client.post("/fhir", json=patient("NotABundle"), headers=HEADERS), 400)
    collection = {"resourceType": "Bundle", "type": "collection"}
    assert_outcome(await client.post("/fhir", json=collection, headers=HEADERS), 400, expression="Bundle.type")
    no_request = await post_bundle(client, "transaction", [{"resource": patient("NoRequest")}])
    assert_outcome(no_request, 400, expression="Bundle.entry[0].request")


async def test_odd_entries_are_the_clients_error_never_a_500(client: httpx.AsyncClient) -> None:
    """Each of these once failed with a 500 (KeyError, AttributeError) or a misleading 409."""
    lower = await post_bundle(client, "transaction", [entry("post", "Patient", patient("Lower"))])
    assert lower.status_code == 200 and lower.json()["entry"][0]["response"]["status"] == "201 Created"
    numeric = await post_bundle(client, "transaction", [entry("POST", 5, patient("Numeric"))])  # type: ignore[arg-type]
    assert_outcome(numeric, 400, expression="Bundle.entry[0].request.url")
    if_match = await post_bundle(client, "transaction", [entry("PUT", "Patient/x", patient("X", id="x"), ifMatch=1)])
    assert_outcome(if_match, 400, expression="Bundle.entry[0].request.ifMatch")
    absolute = await post_bundle(client, "transaction", [entry("POST", "http://testserver/fhir/Patient", patient("A"))])
    assert_outcome(absolute, 400, expression="Bundle.entry[0].request.url")  # it was a 404 "type 'fhir' unknown"
    twice = {**entry("POST", "Patient", patient("Twice")), "fullUrl": PATIENT_URN}
    assert_outcome(await post_bundle(client, "transaction", [twice, twice]), 400, expression="Bundle.entry[1].fullUrl")
    assert [e["resource"]["name"][0]["family"] for e in (await search(client, "Patient"))["entry"]] == ["Lower"]
