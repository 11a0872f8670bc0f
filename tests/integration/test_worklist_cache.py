"""The worklist's cached counts and option lists stay exact (web/counts.py, store/generations.py, PostgreSQL).

Two repositories on two engines stand for two server processes: what one commits, the other's next page shows.
The cache is really used (no count query the second time), and it is not used across a due date passing `now`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import event, insert

from carepath.settings import Settings
from carepath.store.database import create_engine
from carepath.store.generations import WATCHED
from carepath.store.migrate import upgrade_async
from carepath.store.repository import Repository
from carepath.store.schema import resource
from carepath.web import data
from carepath.web.views.worklist import parse_filters

pytestmark = pytest.mark.postgres
TZ = ZoneInfo("Europe/Paris")
NOON = datetime(2026, 6, 10, 10, 0, tzinfo=UTC)  # noon in Paris: the day has room either side


@pytest.fixture
async def processes(postgres_settings: Settings) -> AsyncIterator[tuple[Repository, Repository]]:
    url, schema = postgres_settings.effective_database_url, postgres_settings.database_schema
    await upgrade_async(url, schema)
    engines = [create_engine(url, schema=schema) for _ in range(2)]
    repositories = [Repository(engine) for engine in engines]
    try:
        yield repositories[0], repositories[1]
    finally:
        for repository, engine in zip(repositories, engines, strict=True):
            await repository.close()
            await engine.dispose()


def _task(tid: str, status: str, due: datetime) -> dict[str, Any]:
    return {"resourceType": "Task", "id": tid, "status": status, "intent": "order",
            "restriction": {"period": {"end": due.strftime("%Y-%m-%dT%H:%M:%SZ")}}}  # fmt: skip


async def _put(repository: Repository, *resources: dict[str, Any]) -> None:
    async with repository.transaction() as tx:
        for body in resources:
            await tx.update(body["resourceType"], body["id"], body)


async def _page(repository: Repository, settings: Settings, now: datetime, **params: str) -> data.WorklistData:
    async with repository.reader() as tx:
        return await data.worklist(tx, settings, parse_filters(params), now, TZ)


class Counted:
    """The count statements an engine sends (`SELECT count(...)`)."""

    def __init__(self, repository: Repository) -> None:
        self.n = 0
        event.listen(repository.engine.sync_engine, "before_cursor_execute", self)

    def __call__(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        self.n += statement.lstrip().upper().startswith("SELECT COUNT(")


async def test_another_process_commit_is_seen_and_the_cache_is_used(
    processes: tuple[Repository, Repository], postgres_settings: Settings
) -> None:
    reader, writer = processes
    await _put(writer, _task("t1", "ready", NOON - timedelta(days=1)), _task("t2", "ready", NOON + timedelta(days=30)))
    first = await _page(reader, postgres_settings, NOON)
    assert (first.total, first.window_counts) == (2, {"overdue": 1, "today": 0, "week": 0, "upcoming": 1})
    counted = Counted(reader)
    again = await _page(reader, postgres_settings, NOON + timedelta(seconds=5))
    assert counted.n == 0, "the second page must come from the cache"
    assert (again.total, again.window_counts) == (first.total, first.window_counts)

    await _put(
        writer, _task("t2", "cancelled", NOON + timedelta(days=30)), _task("t3", "ready", NOON + timedelta(hours=1))
    )
    await _put(writer, {"resourceType": "Patient", "id": "p1", "name": [{"family": "Neuf"}]})
    after = await _page(reader, postgres_settings, NOON + timedelta(seconds=10))

    assert counted.n == 1, "a commit of another process must make the counts be read again"
    assert (after.total, after.window_counts) == (2, {"overdue": 1, "today": 1, "week": 0, "upcoming": 0})
    assert [o.value for o in after.patients] == ["p1"], "the option lists must show the other process's Patient"


async def test_a_due_date_passing_now_is_not_served_from_the_cache(
    processes: tuple[Repository, Repository], postgres_settings: Settings
) -> None:
    reader, _ = processes
    soon, later = NOON + timedelta(minutes=1), NOON + timedelta(days=1, hours=1)
    await _put(reader, _task("soon", "ready", soon), _task("later", "ready", later))
    before = await _page(reader, postgres_settings, NOON)
    assert before.window_counts == {"overdue": 0, "today": 1, "week": 1, "upcoming": 0}
    counted = Counted(reader)

    passed = await _page(reader, postgres_settings, NOON + timedelta(minutes=2))

    assert counted.n == 1
    assert passed.window_counts == {"overdue": 1, "today": 0, "week": 1, "upcoming": 0}
    next_day = await _page(reader, postgres_settings, NOON + timedelta(days=1))  # no due date passed, a new day
    assert counted.n == 2
    assert next_day.window_counts == {"overdue": 1, "today": 1, "week": 0, "upcoming": 0}


async def test_every_watched_type_written_by_plain_sql_starts_a_new_generation(
    processes: tuple[Repository, Repository],
) -> None:
    """The notifications come from migration 0007's trigger: any writer counts, and only the watched types."""
    reader, writer = processes
    types = tuple(sorted(WATCHED))
    before = await reader.generations.current(types)
    async with writer.engine.begin() as conn:
        for n, res_type in enumerate((*types, "Observation")):
            row = {"res_type": res_type, "res_id": f"sql-{n}", "version": 1, "deleted": False}
            await conn.execute(insert(resource).values(**row, last_updated=NOON.replace(tzinfo=None)))
    after = await reader.generations.current(types)
    assert before is not None and after is not None
    assert [a - b for a, b in zip(after, before, strict=True)] == [0, *([1] * len(types))]
