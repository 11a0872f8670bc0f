"""PATCH (JSON Patch and FHIRPath Patch), conditional update and conditional delete (R4 §3.1.0.4-7), over HTTP
and inside Bundles, all through the validated update path."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
from rest_support import HEADERS, MRN, assert_outcome, create, match_ids, patient, search, task

JSON_PATCH = {"Content-Type": "application/json-patch+json", "Accept": "application/fhir+json"}


def operation(kind: str, path: str, **parts: dict[str, Any]) -> dict[str, Any]:
    return {"name": "operation", "part": [{"name": "type", "valueCode": kind}, {"name": "path", "valueString": path},
                                          *({"name": k, **v} for k, v in parts.items())]}  # fmt: skip


def fhirpath_patch(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Parameters", "parameter": list(operations)}


async def test_json_patch_of_task_status_with_if_match(client: httpx.AsyncClient) -> None:
    pid = (await create(client, patient("Patchy")))["id"]
    created = await create(client, task(pid, status="requested"))
    url = f"/fhir/Task/{created['id']}"
    document = [{"op": "replace", "path": "/status", "value": "in-progress"}]
    response = await client.patch(url, content=json.dumps(document), headers={**JSON_PATCH, "If-Match": 'W/"1"'})
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "in-progress" and response.headers["etag"] == 'W/"2"'
    stale = await client.patch(url, content=json.dumps(document), headers={**JSON_PATCH, "If-Match": 'W/"1"'})
    assert_outcome(stale, 412)
    assert match_ids(await search(client, "Task", status="in-progress")) == [created["id"]]  # re-indexed


async def test_a_patch_producing_an_invalid_resource_is_refused_and_nothing_stored(client: httpx.AsyncClient) -> None:
    created = await create(client, patient("Invalid"))
    url = f"/fhir/Patient/{created['id']}"
    bad = [{"op": "add", "path": "/gender", "value": "bogus"}]  # R4 required binding
    assert_outcome(await client.patch(url, content=json.dumps(bad), headers=JSON_PATCH), 400)
    failed_test = [{"op": "test", "path": "/gender", "value": "female"}, {"op": "remove", "path": "/name"}]
    assert_outcome(await client.patch(url, content=json.dumps(failed_test), headers=JSON_PATCH), 422)
    assert_outcome(await client.patch(url, content=b'{"op": "x"}', headers=JSON_PATCH), 400)
    assert_outcome(await client.patch(url, content=b"[]", headers={"Content-Type": "text/plain"}), 415)
    move_id = [{"op": "replace", "path": "/id", "value": "other"}]
    assert_outcome(await client.patch(url, content=json.dumps(move_id), headers=JSON_PATCH), 400)
    assert (await client.get(url)).json()["meta"]["versionId"] == "1"


async def test_fhirpath_patch_add_insert_delete_replace_move(client: httpx.AsyncClient) -> None:
    names = [{"use": "official", "family": "Fhirpath", "given": ["A", "B"]}, {"use": "nickname", "given": ["Fifi"]}]
    created = await create(client, {**patient("Fhirpath"), "name": names})
    body = fhirpath_patch(
        operation("add", "Patient", name={"valueString": "birthDate"}, value={"valueDate": "1960-02-03"}),
        operation(
            "add",
            "Patient",
            name={"valueString": "identifier"},
            value={
                "name": "value",
                "part": [{"name": "system", "valueUri": MRN}, {"name": "value", "valueString": "M-77"}],
            },
        ),
        operation("insert", "Patient.name[0].given", index={"valueInteger": 0}, value={"valueString": "Z"}),
        operation("replace", "Patient.name.where(use='official').family", value={"valueString": "Renamed"}),
        operation("move", "Patient.name", source={"valueInteger": 1}, destination={"valueInteger": 0}),
        operation("delete", "Patient.name[1].given[2]"),
        operation("delete", "Patient.deceased"),  # absent: nothing to do
    )
    response = await client.patch(f"/fhir/Patient/{created['id']}", json=body, headers=HEADERS)
    assert response.status_code == 200, response.text
    stored = response.json()
    assert stored["birthDate"] == "1960-02-03"
    assert stored["identifier"] == [{"system": MRN, "value": "M-77"}]
    assert stored["name"] == [{"use": "nickname", "given": ["Fifi"]},
                              {"use": "official", "family": "Renamed", "given": ["Z", "A"]}]  # fmt: skip
    assert match_ids(await search(client, "Patient", identifier=f"{MRN}|M-77")) == [created["id"]]
    two = fhirpath_patch(operation("replace", "Patient.name.given", value={"valueString": "x"}))
    assert_outcome(await client.patch(f"/fhir/Patient/{created['id']}", json=two, headers=HEADERS), 422)
    unknown = fhirpath_patch(operation("frobnicate", "Patient.name"))
    assert_outcome(await client.patch(f"/fhir/Patient/{created['id']}", json=unknown, headers=HEADERS), 400)


async def test_conditional_update_creates_updates_and_refuses_ambiguity(client: httpx.AsyncClient) -> None:
    body = {**patient("Cond"), "identifier": [{"system": MRN, "value": "C-1"}]}
    created = await client.put("/fhir/Patient", params={"identifier": f"{MRN}|C-1"}, json=body, headers=HEADERS)
    assert created.status_code == 201, created.text
    pid = created.json()["id"]
    updated = await client.put("/fhir/Patient", params={"identifier": f"{MRN}|C-1"},
                               json={**body, "active": True}, headers=HEADERS)  # fmt: skip
    assert updated.status_code == 200 and updated.json()["id"] == pid and updated.json()["meta"]["versionId"] == "2"
    await create(client, {**body, "identifier": [{"system": MRN, "value": "C-1"}]})
    ambiguous = await client.put("/fhir/Patient", params={"identifier": f"{MRN}|C-1"}, json=body, headers=HEADERS)
    assert_outcome(ambiguous, 412)
    assert_outcome(await client.put("/fhir/Patient", json=body, headers=HEADERS), 400)  # no criteria
    misspelt = await client.put("/fhir/Patient", params={"identifer": f"{MRN}|C-1"}, json=body, headers=HEADERS)
    assert_outcome(misspelt, 400)  # never ignored: it would update whatever matched the rest


async def test_conditional_delete_single_match_and_412_for_several(client: httpx.AsyncClient) -> None:
    one = (await create(client, {**patient("Del"), "identifier": [{"system": MRN, "value": "D-1"}]}))["id"]
    for _ in range(2):
        await create(client, {**patient("Del"), "identifier": [{"system": MRN, "value": "D-2"}]})
    assert_outcome(await client.delete("/fhir/Patient", params={"identifier": f"{MRN}|D-2"}), 412)
    assert (await client.delete("/fhir/Patient", params={"identifier": f"{MRN}|D-1"})).status_code == 200
    assert_outcome(await client.get(f"/fhir/Patient/{one}"), 410)
    assert (await client.delete("/fhir/Patient", params={"identifier": f"{MRN}|none"})).status_code == 204


async def test_patch_and_conditional_entries_in_a_transaction(client: httpx.AsyncClient) -> None:
    pid = (await create(client, {**patient("Bundled"), "identifier": [{"system": MRN, "value": "B-1"}]}))["id"]
    tid = (await create(client, task(pid, status="requested")))["id"]
    json_patch = base64.b64encode(json.dumps([{"op": "replace", "path": "/status", "value": "cancelled"}]).encode())
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": {"resourceType": "Binary", "contentType": "application/json-patch+json",
                      "data": json_patch.decode()}, "request": {"method": "PATCH", "url": f"Task/{tid}"}},
        {"resource": fhirpath_patch(operation("add", "Patient", name={"valueString": "active"},
                                              value={"valueBoolean": False})),
         "request": {"method": "PATCH", "url": f"Patient?identifier={MRN}|B-1"}},
    ]}  # fmt: skip
    response = await client.post("/fhir", json=bundle, headers=HEADERS)
    assert response.status_code == 200, response.text
    assert [e["response"]["status"] for e in response.json()["entry"]] == ["200 OK", "200 OK"]
    assert (await client.get(f"/fhir/Task/{tid}")).json()["status"] == "cancelled"
    assert (await client.get(f"/fhir/Patient/{pid}")).json()["active"] is False
    entry = {"resource": {"resourceType": "Patient"}, "request": {"method": "PATCH", "url": f"Patient/{pid}"}}
    bad = {"resourceType": "Bundle", "type": "transaction", "entry": [entry]}
    assert_outcome(await client.post("/fhir", json=bad, headers=HEADERS), 400, expression="Bundle.entry[0].resource")


async def test_capability_statement_advertises_patch_and_conditional_interactions(client: httpx.AsyncClient) -> None:
    rest = (await client.get("/fhir/metadata")).json()["rest"][0]
    task_entry = next(r for r in rest["resource"] if r["type"] == "Task")
    assert {"read", "vread", "update", "patch", "delete", "create", "search-type"} <= {
        i["code"] for i in task_entry["interaction"]
    }
    assert task_entry["conditionalUpdate"] is True and task_entry["conditionalDelete"] == "single"
