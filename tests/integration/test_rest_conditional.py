"""Conditional create (`If-None-Exist`, R4 §3.1.0.8): 0 matches create, 1 returns it, 2 refuse; no race duplicates."""

from __future__ import annotations

import asyncio

import httpx
from rest_support import HEADERS, MRN, assert_outcome, create, patient, search

CRITERIA = f"identifier={MRN}|cond-1"


async def conditional(client: httpx.AsyncClient, body: dict[str, object], criteria: str) -> httpx.Response:
    return await client.post("/fhir/Patient", json=body, headers={**HEADERS, "If-None-Exist": criteria})


async def test_no_match_creates_then_one_match_returns_it(client: httpx.AsyncClient) -> None:
    first = await conditional(client, patient("Dubois", mrn="cond-1"), CRITERIA)
    assert first.status_code == 201
    again = await conditional(client, patient("Dubois-Changed", mrn="cond-1"), CRITERIA)
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["name"][0]["family"] == "Dubois"  # the existing one, untouched
    assert (await search(client, "Patient", identifier=f"{MRN}|cond-1"))["total"] == 1


async def test_the_claimed_key_does_not_outlive_its_match(client: httpx.AsyncClient) -> None:
    first = (await conditional(client, patient("Vincent", mrn="stale"), f"identifier={MRN}|stale")).json()
    await client.delete(f"/fhir/Patient/{first['id']}")
    second = await conditional(client, patient("Vincent", mrn="stale"), f"identifier={MRN}|stale")
    assert second.status_code == 201 and second.json()["id"] != first["id"]
    moved = {**second.json(), "identifier": [{"system": MRN, "value": "moved"}]}
    assert (await client.put(f"/fhir/Patient/{moved['id']}", json=moved, headers=HEADERS)).status_code == 200
    third = await conditional(client, patient("Vincent", mrn="stale"), f"identifier={MRN}|stale")
    assert third.status_code == 201 and third.json()["id"] not in (first["id"], moved["id"])
    assert (await search(client, "Patient", identifier=f"{MRN}|stale"))["total"] == 1


async def test_two_matches_are_a_precondition_failure(client: httpx.AsyncClient) -> None:
    await create(client, patient("Leroy", mrn="twin"))
    await create(client, patient("Leroy", mrn="twin"))
    refused = await conditional(client, patient("Leroy", mrn="twin"), f"identifier={MRN}|twin")
    assert_outcome(refused, 412)
    assert (await search(client, "Patient", identifier=f"{MRN}|twin"))["total"] == 2


async def test_bad_criteria_are_the_clients_error(client: httpx.AsyncClient) -> None:
    assert_outcome(await conditional(client, patient("Roux"), "no-such-param=1"), 400)
    assert (await search(client, "Patient"))["total"] == 0


async def test_parallel_conditional_creates_make_exactly_one(client: httpx.AsyncClient) -> None:
    """Separate requests through the app's connection pool: concurrent transactions on PostgreSQL (on SQLite
    BEGIN IMMEDIATE queues them, and the outcome must be the same)."""
    responses = await asyncio.gather(
        *(conditional(client, patient("Fournier", mrn="race"), f"identifier={MRN}|race") for _ in range(8))
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * 7 + [201], [r.text for r in responses]
    assert len({r.json()["id"] for r in responses}) == 1
    assert (await search(client, "Patient", identifier=f"{MRN}|race"))["total"] == 1


async def test_parallel_reclaims_of_a_stale_key_make_exactly_one(client: httpx.AsyncClient) -> None:
    """Once the match is gone, every parallel request finds the key taken and no match: they must queue on the
    key's row lock (without it, each of them created its own Patient on PostgreSQL)."""
    for round_ in range(3):
        criteria = f"identifier={MRN}|stale-race-{round_}"
        gone = await conditional(client, patient("Gone", mrn=f"stale-race-{round_}"), criteria)
        await client.delete(f"/fhir/Patient/{gone.json()['id']}")
        responses = await asyncio.gather(
            *(conditional(client, patient("Again", mrn=f"stale-race-{round_}"), criteria) for _ in range(12))
        )
        assert sorted(r.status_code for r in responses) == [200] * 11 + [201]
        assert (await search(client, "Patient", identifier=f"{MRN}|stale-race-{round_}"))["total"] == 1
