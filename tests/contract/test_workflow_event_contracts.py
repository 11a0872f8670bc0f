"""The workflow's outbound events (task.status-changed, task.released, careplan.status-changed, task.overdue),
emitted by a real run and enveloped as the relay publishes them, validate against contracts/events/."""

from __future__ import annotations

import sys
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from pathlib import Path

import httpx
from test_event_contracts import assert_valid

from carepath.events.envelope import outbound
from carepath.service.scheduler import scan_overdue
from carepath.settings import Settings
from carepath.store import outbox
from carepath.store.database import create_engine
from carepath.store.repository import Repository

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from rest_support import create
from workflow_support import careplan_with_tasks, move, read

MakeClient = Callable[[Settings], AbstractAsyncContextManager[httpx.AsyncClient]]
WORKFLOW_TYPES = {"dev.carepath.task.status-changed", "dev.carepath.task.released",
                  "dev.carepath.careplan.status-changed", "dev.carepath.task.overdue"}  # fmt: skip


async def test_workflow_events_match_the_contract(tmp_path: Path, make_client: MakeClient) -> None:
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'c.sqlite'}", load_pathways_on_start=False, events_embedded=False
    )
    async with make_client(settings) as client:
        made = await careplan_with_tasks(client)
        await move(client, made["a"], "in-progress", "completed")
        await move(client, made["b"], "in-progress", "completed")
        await move(client, await read(client, f"Task/{made['d']['id']}"), "in-progress", "completed")
        await create(client, {"resourceType": "Task", "status": "requested", "intent": "order",
                              "for": {"reference": f"Patient/{made['patient']['id']}"},
                              "restriction": {"period": {"end": "2025-01-01T00:00:00Z"}}})  # fmt: skip
    engine = create_engine(settings.effective_database_url)
    try:
        repository = Repository(engine)
        assert (await scan_overdue(repository, datetime(2025, 1, 2, tzinfo=UTC))).alerted
        async with repository.reader() as tx:
            rows = [r for r in await outbox.claim(tx.conn, 10_000) or [] if r.channel == outbox.OUTBOUND]
    finally:
        await engine.dispose()
    events = [outbound(row, "urn:carepath") for row in rows]
    assert {e["type"] for e in events} == WORKFLOW_TYPES
    for event in events:
        assert_valid(f"{event['type']}.json", event)
