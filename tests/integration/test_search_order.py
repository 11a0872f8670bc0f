"""A page sorted by one date parameter is read in index order (store/ordered.py); it must be exactly the page
build_search's sort gives: resources with several values (sorted by min(low), or max(high) descending), ties by
rid, missing values last — for every offset and page size, on both back ends."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from carepath.fhir.search.query import SearchQuery, parse_search
from carepath.store.repository import Repository
from carepath.store.search_sql import build_search, index_ordered


def _goal(gid: str, *dues: str, status: str = "active") -> dict[str, Any]:
    # Goal.target is 0..*: `target-date` has one index row per target, the case a de-duplicated walk must get right.
    goal = {"resourceType": "Goal", "id": gid, "lifecycleStatus": status, "description": {"text": gid},
            "subject": {"reference": "Patient/a"}}  # fmt: skip
    return {**goal, "target": [{"dueDate": d} for d in dues]} if dues else goal


GOALS = [
    _goal("g1", "2024-03-01", "2024-01-05"),
    _goal("g2", "2024-02-01"),
    _goal("g3", "2024-01-05", "2024-04-01", "2024-02-10"),
    _goal("g4"),
    _goal("g5", "2024-02-01", status="cancelled"),
    _goal("g6", "2024-05-01", "2024-01-01"),
    _goal("g7"),
    _goal("g8", "2024-02-01", "2024-02"),
]


async def _both(repository: Repository, query: SearchQuery) -> tuple[list[str], list[str]]:
    async with repository.reader() as tx:
        walked = [stored.res_id for _, stored in await tx.search(query)]
        sorted_in_sql = [row.res_id for row in await tx.conn.execute(build_search(query))]
    return walked, sorted_in_sql


@pytest.mark.parametrize("sort", ["target-date", "-target-date"])
@pytest.mark.parametrize("criteria", [[], [("lifecycle-status", "active")], [("target-date", "lt2024-03-01")]])
async def test_index_order_page_is_the_sorted_page(repository: Repository, sort: str,
                                                   criteria: list[tuple[str, str]]) -> None:  # fmt: skip
    async with repository.transaction() as tx:
        for goal in GOALS:
            await tx.update("Goal", goal["id"], goal)
    base = parse_search("Goal", [*criteria, ("_sort", sort)])
    assert index_ordered(base) is not None, "the walk must be the path under test"
    whole, expected_whole = await _both(repository, replace(base, count=100, offset=0))
    assert whole == expected_whole and len(whole) >= 3
    for count in (1, 2, 3):
        for offset in range(len(whole) + 1):
            walked, expected = await _both(repository, replace(base, count=count, offset=offset))
            assert walked == expected == whole[offset : offset + count], (count, offset)


async def test_only_date_sorts_without_resource_columns_walk() -> None:
    assert index_ordered(parse_search("Task", [("_sort", "due-date"), ("status", "ready")])) is not None
    assert index_ordered(parse_search("Task", [("_sort", "due-date"), ("_id", "a")])) is None
    assert index_ordered(parse_search("Task", [("_sort", "_lastUpdated")])) is None
    assert index_ordered(parse_search("Task", [("_sort", "status")])) is None
    assert index_ordered(parse_search("Task", [("_sort", "due-date,status")])) is None
