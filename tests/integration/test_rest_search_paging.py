"""Search result parameters through HTTP: paging links, `_id`, `_lastUpdated`, `_sort`, `_summary`, `_total`."""

from __future__ import annotations

import asyncio

import httpx
from rest_support import assert_outcome, create, follow_pages, link, match_ids, patient, search, task


async def test_paging_links_walk_every_match_once(client: httpx.AsyncClient) -> None:
    ids = [(await create(client, patient(f"Page{n}")))["id"] for n in range(7)]
    pages = await follow_pages(client, await search(client, "Patient", _count=3, _sort="_id"))
    assert len(pages) == 3
    assert [i for page in pages for i in match_ids(page)] == sorted(ids)
    page = pages[-1]
    previous = await client.get(link(page, "previous") or "")
    assert match_ids(previous.json()) == sorted(ids)[3:6]


async def test_id_and_total(client: httpx.AsyncClient) -> None:
    a, b, _ = [(await create(client, patient(name)))["id"] for name in ("Ida", "Idb", "Idc")]
    assert sorted(match_ids(await search(client, "Patient", _id=f"{a},{b}"))) == sorted([a, b])
    counted = await search(client, "Patient", _summary="count")
    assert counted["total"] == 3 and "entry" not in counted
    assert link(counted, "self") == "http://testserver/fhir/Patient?_summary=count"  # the query it answered
    accurate = await search(client, "Patient", _count=1, _total="accurate")
    assert accurate["total"] == 3 and len(accurate["entry"]) == 1
    assert_outcome(await client.get("/fhir/Patient", params={"_count": "many"}), 400)


async def test_count_zero_is_a_count_without_a_next_page(client: httpx.AsyncClient) -> None:
    """R4 §3.1.1.5.4: `_count=0` is treated as `_summary=count` (it once linked `next` to itself, forever)."""
    for name in ("Zero", "Zeta"):
        await create(client, patient(name))
    bundle = await search(client, "Patient", _count=0)
    assert bundle["total"] == 2 and "entry" not in bundle
    assert link(bundle, "next") is None
    history = await search(client, "Patient/_history", _count=0)
    assert history["total"] == 2 and link(history, "next") is None


async def test_last_updated_prefixes(client: httpx.AsyncClient) -> None:
    stamps = []
    for name in ("Early", "Middle", "Late"):
        stamps.append((await create(client, patient(name)))["meta"]["lastUpdated"])
        await asyncio.sleep(0.01)  # distinct instants
    early, middle, late = stamps

    async def families(value: str) -> list[str]:
        bundle = await search(client, "Patient", _lastUpdated=value, _sort="_lastUpdated")
        return [e["resource"]["name"][0]["family"] for e in bundle["entry"]]

    assert await families(f"eq{middle}") == ["Middle"]
    assert await families(middle) == ["Middle"]
    assert await families(f"gt{early}") == ["Middle", "Late"]
    assert await families(f"ge{middle}") == ["Middle", "Late"]
    assert await families(f"lt{late}") == ["Early", "Middle"]
    assert await families(f"le{middle}") == ["Early", "Middle"]
    assert await families("gt2999-01-01") == []


async def test_sort_by_due_date_both_ways(client: httpx.AsyncClient) -> None:
    pid = (await create(client, patient("Sorted")))["id"]
    for due in ("2025-03-01", "2025-01-15", "2025-02-10"):
        await create(client, task(pid, due=due, description=due))
    await create(client, task(pid, description="no due date"))

    async def order(sort: str) -> list[str]:
        return [e["resource"]["description"] for e in (await search(client, "Task", _sort=sort))["entry"]]

    assert await order("due-date") == ["2025-01-15", "2025-02-10", "2025-03-01", "no due date"]
    assert await order("-due-date") == ["2025-03-01", "2025-02-10", "2025-01-15", "no due date"]
    assert_outcome(await client.get("/fhir/Task", params={"_sort": "owner"}), 400)
