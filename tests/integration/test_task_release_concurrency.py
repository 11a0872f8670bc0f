"""Two predecessors of one held Task completed at the same moment, in two transactions on PostgreSQL: the
dependant is released exactly once (neither transaction may miss the other's completion)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import httpx
from workflow_support import careplan_with_tasks, events, move, read

from carepath.service.interactions import Interaction, execute_crud
from carepath.settings import Settings
from carepath.store.database import create_engine
from carepath.store.repository import Repository

MakeClient = Callable[[Settings], AbstractAsyncContextManager[httpx.AsyncClient]]


async def _complete(repository: Repository, task_id: str) -> None:
    async with repository.transaction() as tx:
        current = (await tx.read("Task", task_id)).json()
        await execute_crud(tx, Interaction("update", "Task", task_id, body={**current, "status": "completed"}))


async def test_concurrent_last_completions_release_once(postgres_settings: Settings, make_client: MakeClient) -> None:
    url, schema = postgres_settings.effective_database_url, postgres_settings.database_schema
    async with make_client(postgres_settings) as client:
        engines = [create_engine(url, schema=schema) for _ in range(2)]
        try:
            for _ in range(5):
                made = await careplan_with_tasks(client)
                for key in ("a", "b"):
                    await move(client, made[key], "in-progress")
                pairs = zip(engines, ("a", "b"), strict=True)
                await asyncio.gather(*(_complete(Repository(engine), made[key]["id"]) for engine, key in pairs))
                assert (await read(client, f"Task/{made['d']['id']}"))["status"] == "requested"
        finally:
            for engine in engines:
                await engine.dispose()
    released = [d["id"] for kind, d in await events(postgres_settings) if kind == "dev.carepath.task.released"]
    assert len(released) == len(set(released)) == 5
