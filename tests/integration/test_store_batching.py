"""The repository's batched writes (store/pending.py) on both back ends: fewer statements, the same data.

Statements are counted with SQLAlchemy's `before_cursor_execute` event on the real engine; each test gets its own
SQLite file or PostgreSQL schema (the `settings` fixture of tests/conftest.py).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import event

from carepath.errors import Gone
from carepath.fhir.search.query import parse_search
from carepath.settings import Settings
from carepath.store.database import create_engine
from carepath.store.migrate import upgrade_async
from carepath.store.repository import Repository

_WRITE = re.compile(r"\b(INSERT INTO|DELETE FROM|UPDATE)\s+\"?(\w+)", re.IGNORECASE)


class StatementLog:
    """(verb, table) of every write the engine sends, in order, and how many statements carried them (on
    PostgreSQL one statement writes several tables through data-modifying CTEs: store/pending_pg.py)."""

    def __init__(self) -> None:
        self.writes: list[tuple[str, str]] = []
        self.statements = 0

    def __call__(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            return
        found = [(m.group(1).split()[0].upper(), m.group(2)) for m in _WRITE.finditer(statement)]
        self.writes.extend(found)
        self.statements += bool(found)

    def tables(self, verb: str) -> list[str]:
        return [table for v, table in self.writes if v == verb]


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[tuple[Repository, StatementLog]]:
    url = settings.effective_database_url
    await upgrade_async(url, settings.database_schema)
    engine = create_engine(url, schema=settings.database_schema)
    log = StatementLog()
    event.listen(engine.sync_engine, "before_cursor_execute", log)
    try:
        yield Repository(engine), log
    finally:
        await engine.dispose()


def _task(owner: str, status: str = "requested") -> dict[str, Any]:
    return {"resourceType": "Task", "status": status, "intent": "order",
            "owner": {"reference": f"Practitioner/{owner}"}, "for": {"reference": "Patient/p1"},
            "restriction": {"period": {"end": "2027-01-15"}}}  # fmt: skip


def _worklist(owner: str, status: str) -> Any:
    return parse_search("Task", [("owner", f"Practitioner/{owner}"), ("status", status), ("_count", "100")])


async def test_fifty_creates_in_one_transaction_send_one_insert_per_table(
    store: tuple[Repository, StatementLog],
) -> None:
    repository, log = store
    async with repository.transaction() as tx:
        created = [await tx.create(_task("batch")) for _ in range(50)]
    inserts = log.tables("INSERT")
    # delivery_change: the CarePlan/Task change feed of outbound delivery (store/changes.py), batched too
    assert sorted(inserts) == ["delivery_change", "resource", "resource_history", "sp_date", "sp_reference", "sp_token"]
    # PostgreSQL: resource, history and index rows in one statement, then the change feed
    assert log.statements == (2 if repository.engine.dialect.name == "postgresql" else 6)
    async with repository.reader() as tx:
        found = await tx.search(_worklist("batch", "requested"))
        assert {stored.res_id for _, stored in found} == {c.res_id for c in created}
        history, total = await tx.history("Task", created[0].res_id, since=None, count=10, offset=0)
        assert total == 1 and history[0].version == 1


async def test_a_read_in_the_same_transaction_sees_the_batched_creates(store: tuple[Repository, StatementLog]) -> None:
    repository, _ = store
    async with repository.transaction() as tx:
        stored = await tx.create(_task("same-tx"))
        assert (await tx.read("Task", stored.res_id)).version == 1
        assert [s.res_id for _, s in await tx.search(_worklist("same-tx", "requested"))] == [stored.res_id]


async def test_a_failed_transaction_leaves_nothing_of_its_batched_writes(
    store: tuple[Repository, StatementLog],
) -> None:
    repository, _ = store
    with pytest.raises(RuntimeError):
        async with repository.transaction() as tx:
            await tx.create(_task("rolled-back"))
            raise RuntimeError("the caller fails after the create")
    async with repository.reader() as tx:
        assert await tx.search(_worklist("rolled-back", "requested")) == []
        assert await tx.count(parse_search("Task", [])) == 0


async def test_an_update_deletes_index_rows_only_from_tables_the_old_version_used(
    store: tuple[Repository, StatementLog],
) -> None:
    repository, log = store
    async with repository.transaction() as tx:
        stored = await tx.create(_task("upd"))
    log.writes.clear()
    async with repository.transaction() as tx:
        body = {**stored.json(), "status": "in-progress"}
        await tx.update("Task", stored.res_id, body)
    assert sorted(log.tables("DELETE")) == ["sp_date", "sp_reference", "sp_token"]
    async with repository.reader() as tx:
        assert await tx.search(_worklist("upd", "requested")) == []  # the old status row is gone
        assert [s.version for _, s in await tx.search(_worklist("upd", "in-progress"))] == [2]


async def test_a_delete_clears_the_index_and_history_keeps_both_versions(
    store: tuple[Repository, StatementLog],
) -> None:
    repository, _ = store
    async with repository.transaction() as tx:
        stored = await tx.create(_task("del"))
    async with repository.transaction() as tx:
        assert await tx.delete("Task", stored.res_id) is not None
    async with repository.reader() as tx:
        assert await tx.search(_worklist("del", "requested")) == []
        with pytest.raises(Gone):
            await tx.read("Task", stored.res_id)
        versions, total = await tx.history("Task", stored.res_id, since=None, count=10, offset=0)
        assert total == 2 and [v.deleted for v in versions] == [True, False]
