"""History interactions (R4 §3.1.0.9): instance, type and system, newest first, with deletions and `_since`."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from rest_support import assert_outcome, create, follow_pages, patient, put, search


def methods(bundle: dict[str, Any]) -> list[tuple[str, str]]:
    return [(e["request"]["method"], e["response"]["etag"]) for e in bundle["entry"]]


async def test_instance_history_newest_first_with_the_deletion(client: httpx.AsyncClient) -> None:
    created = await create(client, patient("Moreau"))
    await put(client, {**created, "active": True})
    await client.delete(f"/fhir/Patient/{created['id']}")
    bundle = await search(client, f"Patient/{created['id']}/_history")
    assert bundle["type"] == "history"
    assert bundle["total"] == 3
    assert methods(bundle) == [("DELETE", 'W/"3"'), ("PUT", 'W/"2"'), ("POST", 'W/"1"')]
    deletion, update, first = bundle["entry"]
    assert "resource" not in deletion
    assert update["resource"]["active"] is True and update["resource"]["meta"]["versionId"] == "2"
    assert first["resource"]["meta"]["versionId"] == "1"


async def test_type_and_system_history(client: httpx.AsyncClient) -> None:
    first = await create(client, patient("Laurent"))
    await create(client, {"resourceType": "Practitioner", "name": [{"family": "Simon"}]})
    await put(client, {**first, "active": False})
    patients = await search(client, "Patient/_history")
    assert patients["total"] == 2
    assert [e["resource"]["meta"]["versionId"] for e in patients["entry"]] == ["2", "1"]
    system = await search(client, "_history")
    assert system["total"] == 3
    assert [e["resource"]["resourceType"] for e in system["entry"]] == ["Patient", "Practitioner", "Patient"]


async def test_history_pages_follow_links(client: httpx.AsyncClient) -> None:
    created = await create(client, patient("Michel"))
    for n in range(4):
        await put(client, {**created, "birthDate": f"198{n}-01-01"})
    pages = await follow_pages(client, await search(client, f"Patient/{created['id']}/_history", _count=2))
    versions = [e["resource"]["meta"]["versionId"] for page in pages for e in page["entry"]]
    assert versions == ["5", "4", "3", "2", "1"]


async def test_since_keeps_only_later_versions(client: httpx.AsyncClient) -> None:
    created = await create(client, patient("Garcia"))
    await asyncio.sleep(0.01)  # two distinct lastUpdated instants on both databases
    updated = (await put(client, {**created, "active": True})).json()
    since = updated["meta"]["lastUpdated"]
    bundle = await search(client, f"Patient/{created['id']}/_history", _since=since)
    assert bundle["total"] == 1
    assert bundle["entry"][0]["resource"]["meta"]["versionId"] == "2"
    assert (await search(client, "_history", _since="2999-01-01T00:00:00Z"))["total"] == 0


async def test_history_errors(client: httpx.AsyncClient) -> None:
    assert_outcome(await client.get("/fhir/Patient/nobody/_history"), 404)
    assert_outcome(await client.get("/fhir/Patient/_history", params={"_since": "yesterday"}), 400)
    assert_outcome(await client.get("/fhir/Patient/_history", params={"name": "x"}), 400)
