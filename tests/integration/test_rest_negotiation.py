"""Content negotiation, Prefer, size limits and error statuses: every failure is an OperationOutcome."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager

import httpx
import pytest
from rest_support import HEADERS, assert_outcome, create, patient, search

from carepath.settings import Settings

MakeClient = Callable[[Settings], AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.mark.parametrize("media", ["application/json", "application/fhir+json", "application/fhir+json; charset=utf-8"])
async def test_json_media_types_are_accepted(client: httpx.AsyncClient, media: str) -> None:
    response = await client.post(
        "/fhir/Patient", content=b'{"resourceType":"Patient"}', headers={"Content-Type": media, "Accept": media}
    )
    assert response.status_code == 201
    read = await client.get(f"/fhir/Patient/{response.json()['id']}", params={"_format": "json"})
    assert read.status_code == 200


async def test_xml_is_not_acceptable(client: httpx.AsyncClient) -> None:
    assert_outcome(await client.get("/fhir/Patient", params={"_format": "xml"}), 406)
    assert_outcome(await client.get("/fhir/metadata", headers={"Accept": "application/fhir+xml"}), 406)


async def test_prefer_return(client: httpx.AsyncClient) -> None:
    minimal = await client.post("/fhir/Patient", json=patient("A"), headers={**HEADERS, "Prefer": "return=minimal"})
    assert minimal.status_code == 201 and minimal.content == b""
    assert minimal.headers["location"] and minimal.headers["etag"] == 'W/"1"'
    full = await client.post("/fhir/Patient", json=patient("B"), headers={**HEADERS, "Prefer": "return=representation"})
    assert full.status_code == 201 and full.json()["name"][0]["family"] == "B"
    outcome = await client.post(
        "/fhir/Patient", json=patient("C"), headers={**HEADERS, "Prefer": "return=OperationOutcome"}
    )
    assert outcome.status_code == 201
    assert outcome.json()["resourceType"] == "OperationOutcome"
    assert outcome.json()["issue"][0]["severity"] == "information"
    stored = full.json()
    updated = await client.put(
        f"/fhir/Patient/{stored['id']}", json=stored, headers={**HEADERS, "Prefer": "return=minimal"}
    )
    assert updated.status_code == 200 and updated.content == b"" and updated.headers["etag"] == 'W/"2"'


async def test_request_errors_are_operation_outcomes(client: httpx.AsyncClient) -> None:
    stored = await create(client, patient("Blanc"))
    assert_outcome(await client.post("/fhir/Patient", content=b"{not json", headers=HEADERS), 400)
    assert_outcome(await client.post("/fhir/Patient", content=b"[1, 2]", headers=HEADERS), 400)
    assert_outcome(await client.post("/fhir/Patient", content=b"", headers=HEADERS), 400)
    text = {"Content-Type": "text/plain"}
    assert_outcome(await client.post("/fhir/Patient", content=b'{"resourceType":"Patient"}', headers=text), 415)
    assert_outcome(await client.get("/fhir/Spaceship/1"), 404)
    assert_outcome(await client.get("/fhir/Spaceship"), 404)
    # FHIR JSON PATCH bodies are FHIRPath Patch Parameters; a JSON array needs application/json-patch+json
    assert_outcome(await client.patch(f"/fhir/Patient/{stored['id']}", json=[], headers=HEADERS), 400)
    mismatch = await client.put(f"/fhir/Patient/{stored['id']}", json={**stored, "id": "other"}, headers=HEADERS)
    assert_outcome(mismatch, 400, expression="Patient.id")
    wrong_type = await client.post("/fhir/Patient", json={"resourceType": "Practitioner"}, headers=HEADERS)
    assert_outcome(wrong_type, 400, expression="resourceType")
    assert_outcome(await client.get("/fhir/Patient/not_a valid id"), 400)


async def test_invalid_resources_name_the_element(client: httpx.AsyncClient) -> None:
    bogus = {"resourceType": "Task", "status": "bogus", "intent": "order"}
    assert_outcome(await client.post("/fhir/Task", json=bogus, headers=HEADERS), 400, expression="Task.status")
    bad_date = patient("Noir", birth_date="1970-02-30")
    response = await client.post("/fhir/Patient", json=bad_date, headers=HEADERS)
    assert_outcome(response, 400, expression="Patient.birthDate")
    unknown = {**patient("Noir"), "favouriteColour": "blue"}
    response = await client.post("/fhir/Patient", json=unknown, headers=HEADERS)
    assert_outcome(response, 400, expression="Patient.favouriteColour")
    assert (await search(client, "Patient"))["total"] == 0  # nothing half-written


async def test_hostile_input_is_the_clients_error_never_a_500(client: httpx.AsyncClient) -> None:
    """Each of these once escaped as a 500 (RecursionError, PostgreSQL refusing U+0000, integer overflow)."""
    deep = b"[" * 100_000 + b"]" * 100_000
    assert_outcome(await client.post("/fhir/Patient", content=deep, headers=HEADERS), 400)
    nul = patient("Nul\u0000Byte")
    assert_outcome(
        await client.post("/fhir/Patient", json=nul, headers=HEADERS), 400, expression="Patient.name[0].family"
    )
    huge = "99999999999999999999"
    assert_outcome(await client.get("/fhir/Patient", params={"_offset": huge}), 400)
    assert_outcome(await client.get("/fhir/Patient/_history", params={"_offset": huge}), 400)
    assert_outcome(await client.get("/fhir/Patient", params={"_count": "\u00b2"}), 400)
    stored = await create(client, patient("Versions"))
    assert_outcome(await client.get(f"/fhir/Patient/{stored['id']}/_history/{huge}"), 404)
    assert_outcome(await client.get(f"/fhir/Patient/{stored['id']}/_history/\u00b2"), 404)
    assert (await search(client, "Patient"))["total"] == 1


async def test_body_over_the_limit_is_413(settings: Settings, make_client: MakeClient) -> None:
    async with make_client(settings.model_copy(update={"max_request_bytes": 200})) as client:
        small = await client.post("/fhir/Patient", json=patient("Small"), headers=HEADERS)
        assert small.status_code == 201
        big = patient("Big", text={"status": "generated", "div": "<div>" + "x" * 400 + "</div>"})
        assert_outcome(await client.post("/fhir/Patient", json=big, headers=HEADERS), 413)
        chunked = await client.post("/fhir/Patient", content=_chunks(b"{" + b" " * 400 + b"}"), headers=HEADERS)
        assert_outcome(chunked, 413)  # no Content-Length: the limit holds while streaming
        assert (await search(client, "Patient"))["total"] == 1


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), 64):
        yield data[start : start + 64]
