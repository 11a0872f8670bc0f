"""Every query on the hot paths ($apply, stop rules, read, vread, worklist search and page, create, update) uses an
index, checked with EXPLAIN on PostgreSQL.

The schema is seeded (set-based INSERT ... SELECT generate_series, a few seconds) with 30,000 resources of 3,000
other patients and their index rows, then ANALYZEd: at that size a sequential scan of `resource` or an index
table is what PostgreSQL picks whenever no index fits, so it shows in the plan. The statements checked are the
ones the real service functions send — captured with SQLAlchemy's `before_cursor_execute` — and each SELECT,
UPDATE and DELETE among them is EXPLAINed with the parameters it was sent with.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine

from carepath import jsonutil
from carepath.content.samples import sample_case
from carepath.fhir.search.query import parse_search
from carepath.service.apply import apply_plan
from carepath.service.bundles import run_transaction
from carepath.service.parameters import OperationInput
from carepath.service.pathways import load_pathways
from carepath.service.stop_rules import apply_stop_rules
from carepath.settings import Settings
from carepath.store.database import create_engine
from carepath.store.migrate import upgrade_async
from carepath.store.repository import Repository
from carepath.store.schema import metadata
from carepath.web import data
from carepath.web.views.worklist import parse_filters

pytestmark = pytest.mark.postgres

PATHWAYS = Path(__file__).resolve().parents[2] / "pathways"
SEEDED = 30_000
STORED_TABLES = ("resource", "resource_history", "idempotency_key", "conditional_key")
_CHECKED = re.compile(r"^\s*(SELECT|UPDATE|DELETE|\(SELECT)", re.IGNORECASE)

# Other patients' records: Observations, Conditions, Tasks and Questionnaires (definitions with a url), with
# rows in every index table (not all a real write would give them: enough that no table is small).
SEED = [
    """INSERT INTO resource (res_type, res_id, version, last_updated, deleted, content)
       SELECT (ARRAY['Observation','Condition','Task','Questionnaire'])[1 + g % 4], 'seed-' || g, 1,
              now() AT TIME ZONE 'utc', false,
              json_build_object('resourceType', (ARRAY['Observation','Condition','Task','Questionnaire'])[1 + g % 4],
                                'id', 'seed-' || g, 'subject',
                                json_build_object('reference', 'Patient/seed-patient-' || g % 3000))::text
       FROM generate_series(1, :n) AS g""",
    """INSERT INTO resource_history (rid, version, res_type, res_id, last_updated, method, deleted, content)
       SELECT rid, 1, res_type, res_id, last_updated, 'POST', false, content FROM resource
       WHERE res_id LIKE 'seed-%'""",
    """INSERT INTO sp_reference (rid, res_type, param, target_type, target_id)
       SELECT rid, res_type, p, 'Patient', 'seed-patient-' || substr(res_id, 6)::int % 3000
       FROM resource, unnest(ARRAY['subject', 'patient']) AS p
       WHERE res_id LIKE 'seed-%' AND res_type <> 'Questionnaire'""",
    """INSERT INTO sp_uri (rid, res_type, param, value)
       SELECT rid, res_type, CASE WHEN res_type = 'Questionnaire' THEN 'url' ELSE 'instantiates-uri' END,
              'https://example.org/' || res_id FROM resource WHERE res_id LIKE 'seed-%'""",
    """INSERT INTO sp_token (rid, res_type, param, system, code)
       SELECT rid, res_type, p, NULL, CASE WHEN p = 'version' THEN '1.0.0' ELSE 'final' END
       FROM resource, unnest(ARRAY['status', 'version']) AS p WHERE res_id LIKE 'seed-%'""",
    """INSERT INTO sp_date (rid, res_type, param, low, high)
       SELECT rid, res_type, 'date', last_updated, last_updated FROM resource WHERE res_id LIKE 'seed-%'""",
    """INSERT INTO sp_date (rid, res_type, param, low, high)
       SELECT rid, res_type, 'due-date', last_updated + (rid % 90) * interval '1 day',
              last_updated + (rid % 90) * interval '1 day' + interval '1 second'
       FROM resource WHERE res_id LIKE 'seed-%' AND res_type = 'Task'""",
    """INSERT INTO sp_string (rid, res_type, param, value, exact)
       SELECT rid, res_type, 'name', res_id, res_id FROM resource WHERE res_id LIKE 'seed-%'""",
    """INSERT INTO sp_quantity (rid, res_type, param, value, system, code)
       SELECT rid, res_type, 'value-quantity', rid % 100, NULL, NULL FROM resource WHERE res_id LIKE 'seed-%'""",
    """INSERT INTO idempotency_key (key, created, status, body, request_hash)
       SELECT 'seed-' || g, now() AT TIME ZONE 'utc', 200, '{}', NULL FROM generate_series(1, :n) AS g""",
]


class Captured:
    """The (statement, parameters) of every query the engine sends, in order."""

    def __init__(self) -> None:
        self.statements: list[tuple[str, Any]] = []
        self.on = False

    def __call__(self, _conn: Any, _cursor: Any, statement: str, parameters: Any, *_args: Any) -> None:
        if self.on and _CHECKED.match(statement):
            self.statements.append((statement, parameters))


@pytest.fixture
async def seeded(postgres_settings: Settings) -> AsyncIterator[tuple[Repository, AsyncEngine]]:
    url = postgres_settings.effective_database_url
    await upgrade_async(url, postgres_settings.database_schema)
    engine = create_engine(url, schema=postgres_settings.database_schema)
    try:
        repository = Repository(engine)
        await load_pathways(repository, PATHWAYS)
        async with engine.begin() as conn:
            for sql in SEED:
                await conn.execute(text(sql), {"n": SEEDED} if ":n" in sql else {})
        async with engine.connect() as conn:
            # Named tables only: a bare ANALYZE would walk (and lock) every schema of the shared database.
            tables = ", ".join(table.name for table in metadata.sorted_tables)
            await (await conn.execution_options(isolation_level="AUTOCOMMIT")).execute(text(f"ANALYZE {tables}"))
        yield repository, engine
        await repository.close()  # the worklist's change listener (store/generations.py)
    finally:
        await engine.dispose()


def _scans(plan: dict[str, Any]) -> list[tuple[str, str]]:
    """(node type, relation) of every scan node in an EXPLAIN (FORMAT JSON) plan tree."""
    found = [(plan["Node Type"], plan.get("Relation Name", ""))] if "Relation Name" in plan else []
    for child in plan.get("Plans", []):
        found += _scans(child)
    return found


async def _explain(engine: AsyncEngine, captured: Captured) -> list[tuple[str, list[tuple[str, str]]]]:
    plans = []
    async with engine.connect() as conn:
        for statement, parameters in captured.statements:
            result = await conn.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {statement}", parameters)
            document = result.scalar_one()
            plan = (jsonutil.loads(document) if isinstance(document, str) else document)[0]["Plan"]
            plans.append((statement, _scans(plan)))
        await conn.rollback()
    return plans


def _table_scans(plans: list[tuple[str, list[tuple[str, str]]]]) -> list[tuple[str, str]]:
    return [(table, statement) for statement, scans in plans for node, table in scans
            if node == "Seq Scan" and (table in STORED_TABLES or table.startswith("sp_"))]  # fmt: skip


async def test_apply_and_stop_rule_queries_use_indexes(seeded: tuple[Repository, AsyncEngine]) -> None:
    repository, engine = seeded
    now = datetime.now(UTC)
    case = sample_case("P01")
    async with repository.transaction() as tx:
        await run_transaction(tx, case.upsert(now)["entry"], "")
    async with repository.reader() as tx:
        plan = await tx.find_definition(
            "PlanDefinition", "https://fhir.carepath.dev/PlanDefinition/chemo-failure-follow-up"
        )
    assert plan is not None
    captured = Captured()
    event.listen(engine.sync_engine, "before_cursor_execute", captured)
    captured.on = True
    inputs = OperationInput({"subject": [f"Patient/{case.key}"], "persist": [True]})
    persisted = await apply_plan(repository, plan["id"], inputs, idempotency_key="plans-1", now=now)
    assert persisted.status == 200 and persisted.body["resourceType"] == "CarePlan"
    transient = await apply_plan(repository, plan["id"], OperationInput({"subject": [f"Patient/{case.key}"]}), now=now,
                                 idempotency_key=None)  # fmt: skip
    assert transient.status == 200
    death = {"resourceType": "Patient", "id": case.key, "deceasedBoolean": True}
    async with repository.transaction() as tx:
        stored, _ = await tx.update("Patient", case.key, death)
        outcome = await apply_stop_rules(tx, stored)
    captured.on = False
    assert outcome is not None and outcome.changes, "the stop rule must have found the patient's open Tasks"
    assert any("sp_reference" in s for s, _ in captured.statements), "the patient-record query was not captured"

    plans = await _explain(engine, captured)

    assert len(plans) >= 5
    assert _table_scans(plans) == []


async def test_fhir_server_hot_path_queries_use_indexes(seeded: tuple[Repository, AsyncEngine]) -> None:
    """Read, the worklist search, create and update of a Task: what the EHR integrations and worklists send."""
    repository, engine = seeded
    captured = Captured()
    event.listen(engine.sync_engine, "before_cursor_execute", captured)
    captured.on = True
    task = {"resourceType": "Task", "status": "requested", "intent": "order", "for": {"reference": "Patient/p"},
            "owner": {"reference": "Practitioner/pr"}, "restriction": {"period": {"end": "2027-01-15"}}}  # fmt: skip
    async with repository.transaction() as tx:
        created = await tx.create(task)
    async with repository.transaction() as tx:
        await tx.update("Task", created.res_id, {**task, "id": created.res_id, "status": "ready"})
    worklist = parse_search("Task", [("owner", "Practitioner/pr"), ("status", "requested,ready"),
                                     ("_sort", "due-date"), ("_count", "50")])  # fmt: skip
    async with repository.reader() as tx:
        assert (await tx.read("Task", created.res_id)).version == 2
        assert (await tx.vread("Task", created.res_id, 1)).version == 1
        assert [stored.res_id for _, stored in await tx.search(worklist)] == [created.res_id]
    captured.on = False

    plans = await _explain(engine, captured)

    assert len(plans) >= 4
    assert _table_scans(plans) == []


async def test_worklist_page_queries_use_indexes(seeded: tuple[Repository, AsyncEngine]) -> None:
    """The `/app` page (web/data.py): the page in due-date order, its includes, the counts, the option lists and,
    the second time, the check that no due date passed since the counts were cached."""
    repository, engine = seeded
    now = datetime.now(UTC)
    due = (now + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    role = {"coding": [{"system": "http://snomed.info/sct", "code": "224552008"}]}
    async with repository.transaction() as tx:
        await tx.update("Patient", "wp", {"resourceType": "Patient", "id": "wp", "name": [{"family": "Page"}]})
        await tx.update("Practitioner", "wo", {"resourceType": "Practitioner", "id": "wo", "name": [{"text": "O"}]})
        for status in ("requested", "ready", "in-progress"):
            await tx.create({"resourceType": "Task", "status": status, "intent": "order", "performerType": [role],
                             "for": {"reference": "Patient/wp"}, "owner": {"reference": "Practitioner/wo"},
                             "restriction": {"period": {"end": due}}})  # fmt: skip
    settings = Settings(database_url="postgresql+asyncpg://unused", default_page_size=20, max_page_size=500)
    captured = Captured()
    event.listen(engine.sync_engine, "before_cursor_execute", captured)
    captured.on = True
    filters = [{}, {"due": "overdue"}, {"status": "ready", "owner": "wo"}, {"patient": "wp"},
               {"role": "http://snomed.info/sct|224552008"}, {"page": "2"}]  # fmt: skip
    for params in filters * 2:  # the second time from the cache, after the due-date check
        async with repository.reader() as tx:
            found = await data.worklist(tx, settings, parse_filters(params), now, ZoneInfo("Europe/Paris"))
        assert found.total == (0 if params.get("due") else 1 if params.get("status") else 3), params
    captured.on = False
    statements = " ".join(s for s, _ in captured.statements)
    assert "walk" in statements and "count(" in statements and "sp_date.low BETWEEN" in statements

    plans = await _explain(engine, captured)

    assert len(plans) >= 20
    assert _table_scans(plans) == []


async def test_the_seed_makes_a_scan_visible(seeded: tuple[Repository, AsyncEngine]) -> None:
    """The check can fail: the patient-record query written as one OR (as before) is planned as a Seq Scan."""
    _, engine = seeded
    captured = Captured()
    or_query = (
        "SELECT resource.content FROM resource WHERE resource.deleted = false AND "
        "((resource.res_type = $1 AND resource.res_id = $2) OR resource.rid IN "
        "(SELECT sp_reference.rid FROM sp_reference WHERE sp_reference.param IN ('patient', 'subject') "
        "AND sp_reference.target_type = $1 AND sp_reference.target_id = $2))"
    )
    captured.statements.append((or_query, ("Patient", "seed-patient-7")))

    plans = await _explain(engine, captured)

    assert [table for table, _ in _table_scans(plans)] == ["resource"]
