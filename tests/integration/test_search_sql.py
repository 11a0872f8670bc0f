"""search_sql on both back ends: rows written through the schema tables + extract_index, then searched.

Each test gets its own SQLite file or its own PostgreSQL schema (the `settings` fixture of tests/conftest.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Select, insert
from sqlalchemy.ext.asyncio import AsyncConnection

from carepath import jsonutil
from carepath.fhir.search.extract import extract_index
from carepath.fhir.search.query import parse_search
from carepath.settings import Settings
from carepath.store.database import create_engine
from carepath.store.schema import metadata, resource, sp_date, sp_quantity, sp_reference, sp_string, sp_token, sp_uri
from carepath.store.search_sql import build_count, build_include, build_revinclude, build_search

_TABLES = {"tokens": sp_token, "strings": sp_string, "dates": sp_date, "references": sp_reference,
           "quantities": sp_quantity, "uris": sp_uri}  # fmt: skip
PD = "https://fhir.carepath.dev/PlanDefinition/tf"
_T0 = datetime(2024, 1, 1)


def _task(tid: str, owner: str, status: str, due: str | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"resourceType": "Task", "id": tid, "status": status, "intent": "order",
                            "owner": {"reference": f"Practitioner/{owner}"}, **extra}  # fmt: skip
    if due:
        body["restriction"] = {"period": {"end": due}}
    return body


RESOURCES: list[dict[str, Any]] = [
    {"resourceType": "Practitioner", "id": "p1"},
    {"resourceType": "Practitioner", "id": "p2"},
    {"resourceType": "Patient", "id": "pa", "name": [{"family": "Müller", "given": ["Zoë"]}]},
    {"resourceType": "Patient", "id": "pb", "name": [{"family": "Mulligan"}], "birthDate": "1980-05"},
    _task("t1", "p1", "ready", "2024-03-10", **{"for": {"reference": "Patient/pa"}}),
    _task("t2", "p1", "requested", "2024-03-05T09:00:00Z", code={"coding": [{"system": "urn:a", "code": "x"}]}),
    _task("t3", "p1", "completed", "2024-03-01"),
    _task("t4", "p2", "ready"),
    _task("t5", "p1", "ready"),
    _task("t6", "p1", "ready", "2024-03", code={"coding": [{"code": "x"}]}),
    {"resourceType": "PlanDefinition", "id": "pd1", "url": PD, "version": "1.0", "status": "active"},
    {"resourceType": "PlanDefinition", "id": "pd2", "url": PD, "version": "2.0", "status": "active"},
    {"resourceType": "CarePlan", "id": "cp1", "status": "active", "intent": "plan",
     "subject": {"reference": "Patient/pa"}, "instantiatesCanonical": [f"{PD}|1.0"]},
    {"resourceType": "CarePlan", "id": "cp2", "status": "active", "intent": "plan",
     "subject": {"reference": "Patient/pb"}, "instantiatesCanonical": [PD]},
    {"resourceType": "Provenance", "id": "prov", "recorded": "2024-01-01T00:00:00Z",
     "target": [{"reference": "Task/t1"}], "agent": [{"who": {"reference": "Practitioner/p1"}}]},
    {"resourceType": "Observation", "id": "o1", "status": "final", "code": {"text": "weight"},
     "subject": {"reference": "Patient/pa"}, "valueQuantity": {"value": 72.5, "unit": "kg"}},
]  # fmt: skip


async def _store(conn: AsyncConnection, body: dict[str, Any], n: int, *, deleted: bool = False) -> None:
    row = {
        "res_type": body["resourceType"],
        "res_id": body["id"],
        "version": 1,
        "deleted": deleted,
        "last_updated": _T0 + timedelta(minutes=n),
        "content": None if deleted else jsonutil.dumps(body).decode(),
    }
    rid = (await conn.execute(insert(resource).values(**row).returning(resource.c.rid))).scalar_one()
    if deleted:
        return  # a deleted resource keeps no index rows, as in the repository
    rows = extract_index(body)
    for field, table in _TABLES.items():
        values = [{"rid": rid, "res_type": body["resourceType"], **asdict(r)} for r in getattr(rows, field)]
        if values:
            await conn.execute(insert(table), values)


@pytest.fixture
async def conn(settings: Settings) -> AsyncIterator[AsyncConnection]:
    """Tables created from the schema on the back end of the shared `settings` fixture (SQLite file or own
    PostgreSQL schema), filled with RESOURCES."""
    engine = create_engine(settings.effective_database_url, schema=settings.database_schema)
    try:
        async with engine.begin() as setup:
            await setup.run_sync(metadata.create_all)
            for n, body in enumerate(RESOURCES):
                await _store(setup, body, n)
            await _store(setup, _task("t0", "p1", "ready", "2024-02-01"), 99, deleted=True)
        async with engine.connect() as connection:
            yield connection
    finally:
        await engine.dispose()


async def _ids(conn: AsyncConnection, stmt: Select[Any]) -> list[str]:
    return [row.res_id for row in (await conn.execute(stmt)).all()]


async def _search(conn: AsyncConnection, res_type: str, *pairs: tuple[str, str]) -> list[str]:
    return await _ids(conn, build_search(parse_search(res_type, pairs)))


async def _count(conn: AsyncConnection, res_type: str, *pairs: tuple[str, str]) -> int:
    return int((await conn.execute(build_count(parse_search(res_type, pairs)))).scalar_one())


async def test_worklist_sorted_by_due_date_with_missing_last(conn: AsyncConnection) -> None:
    worklist = (("owner", "Practitioner/p1"), ("status", "requested,ready"))
    # t6 is due "2024-03" (the whole month): ascending sorts by its low end, descending by its high end.
    assert await _search(conn, "Task", *worklist, ("_sort", "due-date")) == ["t6", "t2", "t1", "t5"]
    assert await _search(conn, "Task", *worklist, ("_sort", "-due-date")) == ["t6", "t1", "t2", "t5"]
    assert await _count(conn, "Task", *worklist) == 4
    page = await _search(conn, "Task", *worklist, ("_sort", "due-date"), ("_count", "2"), ("_offset", "2"))
    assert page == ["t1", "t5"]


async def test_deleted_resources_never_match(conn: AsyncConnection) -> None:
    assert await _search(conn, "Task", ("_sort", "_id")) == ["t1", "t2", "t3", "t4", "t5", "t6"]
    assert "t0" not in await _search(conn, "Task", ("owner", "p1"), ("status:not", "completed"))
    assert await _count(conn, "Task") == 6


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-03-05", ["t2"]),
        ("eq2024-03", ["t1", "t2", "t3", "t6"]),
        ("ap2024-03-05", ["t2", "t6"]),
        ("lt2024-03-05", ["t3", "t6"]),
        ("gt2024-03-05", ["t1", "t6"]),
        ("ge2024-03-05", ["t1", "t2", "t6"]),
        ("le2024-03-05", ["t2", "t3", "t6"]),
        ("sa2024-03-05", ["t1"]),
        ("eb2024-03-05", ["t3"]),
        ("ne2024-03-05", ["t1", "t3", "t6"]),
    ],
)
async def test_date_prefixes_compare_ranges(conn: AsyncConnection, value: str, expected: list[str]) -> None:
    assert await _search(conn, "Task", ("due-date", value), ("_sort", "_id")) == expected


async def test_missing_not_and_tokens(conn: AsyncConnection) -> None:
    assert await _search(conn, "Task", ("due-date:missing", "true"), ("_sort", "_id")) == ["t4", "t5"]
    assert await _search(conn, "Task", ("due-date:missing", "false"), ("_sort", "_id")) == ["t1", "t2", "t3", "t6"]
    assert await _search(conn, "Task", ("status:not", "ready,requested")) == ["t3"]
    assert await _search(conn, "Task", ("code", "urn:a|x")) == ["t2"]
    assert await _search(conn, "Task", ("code", "|x")) == ["t6"]
    assert await _search(conn, "Task", ("code", "x"), ("_sort", "_id")) == ["t2", "t6"]
    assert await _search(conn, "Task", ("code", "urn:a|")) == ["t2"]


async def test_strings_prefix_exact_contains(conn: AsyncConnection) -> None:
    assert await _search(conn, "Patient", ("name", "MUL"), ("_sort", "_id")) == ["pa", "pb"]
    assert await _search(conn, "Patient", ("family", "muller")) == ["pa"]
    assert await _search(conn, "Patient", ("name:exact", "Müller")) == ["pa"]
    assert await _search(conn, "Patient", ("name:exact", "müller")) == []
    assert await _search(conn, "Patient", ("name:contains", "LLIG")) == ["pb"]
    assert await _search(conn, "Patient", ("name", "%")) == []  # LIKE wildcards are escaped
    assert await _search(conn, "Patient", ("_sort", "-family")) == ["pb", "pa"]


async def test_ids_last_updated_and_references(conn: AsyncConnection) -> None:
    assert await _search(conn, "Task", ("_id", "t1,t3"), ("_sort", "-_id")) == ["t3", "t1"]
    assert await _search(conn, "Task", ("_lastUpdated", "lt2024-01-01T00:06:00Z"), ("_sort", "_id")) == ["t1", "t2"]
    assert await _search(conn, "Task", ("subject:Patient", "pa")) == ["t1"]
    assert await _search(conn, "Task", ("patient", "Patient/pa")) == ["t1"]
    assert await _search(conn, "Observation", ("patient", "pa"), ("value-quantity", "gt70||kg")) == ["o1"]
    assert await _search(conn, "Observation", ("value-quantity", "72.5")) == ["o1"]
    assert await _search(conn, "Observation", ("value-quantity", "lt72")) == []


async def test_canonical_references_with_and_without_version(conn: AsyncConnection) -> None:
    assert await _search(conn, "CarePlan", ("instantiates-canonical", f"{PD}|1.0")) == ["cp1"]
    assert await _search(conn, "CarePlan", ("instantiates-canonical", PD), ("_sort", "_id")) == ["cp1", "cp2"]
    assert await _search(conn, "PlanDefinition", ("url", PD), ("version", "2.0")) == ["pd2"]
    assert await _search(conn, "PlanDefinition", ("url:below", "https://fhir.carepath.dev/")) == ["pd1", "pd2"]


async def _rids(conn: AsyncConnection, res_type: str, *pairs: tuple[str, str]) -> Sequence[int]:
    rows = (await conn.execute(build_search(parse_search(res_type, pairs)))).all()
    return [row.rid for row in rows]


async def test_include_and_revinclude(conn: AsyncConnection) -> None:
    tasks = parse_search("Task", [("_id", "t1,t2"), ("_include", "Task:owner"), ("_include", "Task:patient"),
                                  ("_revinclude", "Provenance:target")])  # fmt: skip
    rids = await _rids(conn, "Task", ("_id", "t1,t2"))
    assert await _ids(conn, build_include(tasks.includes[0], rids)) == ["p1"]
    assert await _ids(conn, build_include(tasks.includes[1], rids)) == ["pa"]
    assert await _ids(conn, build_revinclude(tasks.revincludes[0], rids)) == ["prov"]
    plans = parse_search("CarePlan", [("_include", "CarePlan:instantiates-canonical")]).includes[0]
    assert await _ids(conn, build_include(plans, await _rids(conn, "CarePlan", ("_id", "cp1")))) == ["pd1"]
    both = await _ids(conn, build_include(plans, await _rids(conn, "CarePlan", ("_id", "cp2"))))
    assert sorted(both) == ["pd1", "pd2"]  # an unversioned canonical names every version
    rev = parse_search("PlanDefinition", [("_revinclude", "CarePlan:instantiates-canonical")]).revincludes[0]
    assert await _ids(conn, build_revinclude(rev, await _rids(conn, "PlanDefinition", ("_id", "pd2")))) == ["cp2"]
    assert sorted(await _ids(conn, build_revinclude(rev, await _rids(conn, "PlanDefinition", ("_id", "pd1"))))) == [
        "cp1", "cp2",
    ]  # fmt: skip
