"""read, vread, create, update, delete through HTTP (R4 §3.1.0), on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

import httpx
from rest_support import HEADERS, assert_outcome, create, patient, put


async def test_create_assigns_id_version_and_headers(client: httpx.AsyncClient) -> None:
    response = await client.post("/fhir/Patient", json={**patient("Durand"), "id": "client-id"}, headers=HEADERS)
    assert response.status_code == 201
    body = response.json()
    assert body["id"] != "client-id"  # the server assigns ids on create
    assert body["meta"]["versionId"] == "1"
    assert body["name"] == [{"family": "Durand", "given": ["Test"]}]
    assert response.headers["etag"] == 'W/"1"'
    assert response.headers["location"] == f"http://testserver/fhir/Patient/{body['id']}/_history/1"
    assert response.headers["last-modified"].endswith(" GMT")
    assert response.headers["content-type"].startswith("application/fhir+json")


async def test_read_and_vread(client: httpx.AsyncClient) -> None:
    created = await create(client, patient("Martin"))
    read = await client.get(f"/fhir/Patient/{created['id']}")
    assert read.status_code == 200
    assert read.json() == created
    assert read.headers["etag"] == 'W/"1"'
    vread = await client.get(f"/fhir/Patient/{created['id']}/_history/1")
    assert vread.status_code == 200
    assert vread.json() == created
    assert_outcome(await client.get(f"/fhir/Patient/{created['id']}/_history/7"), 404)
    assert_outcome(await client.get("/fhir/Patient/unknown-id"), 404)


async def test_update_makes_a_new_version_and_keeps_the_old(client: httpx.AsyncClient) -> None:
    created = await create(client, patient("Petit"))
    response = await put(client, {**created, "gender": "female"})
    assert response.status_code == 200
    assert response.json()["meta"]["versionId"] == "2"
    assert response.headers["etag"] == 'W/"2"'
    assert (await client.get(f"/fhir/Patient/{created['id']}")).json()["gender"] == "female"
    first = (await client.get(f"/fhir/Patient/{created['id']}/_history/1")).json()
    assert "gender" not in first and first["meta"]["versionId"] == "1"


async def test_update_with_a_new_client_id_creates(client: httpx.AsyncClient) -> None:
    response = await put(client, {**patient("Bernard"), "id": "chosen-by-client"})
    assert response.status_code == 201
    assert response.headers["location"].endswith("/fhir/Patient/chosen-by-client/_history/1")
    assert (await client.get("/fhir/Patient/chosen-by-client")).json()["name"][0]["family"] == "Bernard"


async def test_if_match_guards_the_update(client: httpx.AsyncClient) -> None:
    created = await create(client, patient("Thomas"))
    ok = await put(client, {**created, "active": True}, **{"If-Match": 'W/"1"'})
    assert ok.status_code == 200 and ok.headers["etag"] == 'W/"2"'
    stale = await put(client, {**created, "active": False}, **{"If-Match": 'W/"1"'})
    assert_outcome(stale, 412)
    assert (await client.get(f"/fhir/Patient/{created['id']}")).json()["active"] is True  # the stale write lost


async def test_delete_then_read_is_gone_and_delete_again_is_fine(client: httpx.AsyncClient) -> None:
    created = await create(client, patient("Robert"))
    deleted = await client.delete(f"/fhir/Patient/{created['id']}")
    assert deleted.status_code in (200, 204)
    assert deleted.headers["etag"] == 'W/"2"'
    assert_outcome(await client.get(f"/fhir/Patient/{created['id']}"), 410)
    assert_outcome(await client.get(f"/fhir/Patient/{created['id']}/_history/2"), 410)
    assert (await client.get(f"/fhir/Patient/{created['id']}/_history/1")).status_code == 200
    assert (await client.delete(f"/fhir/Patient/{created['id']}")).status_code in (200, 204)
    assert (await client.delete("/fhir/Patient/never-existed")).status_code in (200, 204)


async def test_update_after_delete_revives_the_resource(client: httpx.AsyncClient) -> None:
    created = await create(client, patient("Richard"))
    await client.delete(f"/fhir/Patient/{created['id']}")
    revived = await put(client, created)
    assert revived.status_code == 201
    assert revived.json()["meta"]["versionId"] == "3"
    assert (await client.get(f"/fhir/Patient/{created['id']}")).status_code == 200


async def test_parallel_updates_each_get_their_own_version(client: httpx.AsyncClient) -> None:
    """Concurrent transactions on PostgreSQL (row lock on the current version); queued writers on SQLite."""
    created = await create(client, patient("Parallel"))
    guarded = await asyncio.gather(
        *(put(client, {**created, "birthDate": f"19{n:02d}-01-01"}, **{"If-Match": 'W/"1"'}) for n in range(6))
    )
    assert sorted(r.status_code for r in guarded) == [200] + [412] * 5
    free = await asyncio.gather(*(put(client, {**created, "birthDate": f"20{n:02d}-01-01"}) for n in range(6)))
    assert sorted(int(r.json()["meta"]["versionId"]) for r in free) == [3, 4, 5, 6, 7, 8]
    history = (await client.get(f"/fhir/Patient/{created['id']}/_history")).json()
    assert history["total"] == 8
    assert [e["response"]["etag"] for e in history["entry"]] == [f'W/"{v}"' for v in range(8, 0, -1)]
