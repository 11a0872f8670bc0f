"""The Task workflow as use cases: every Task status change goes through the state machine, is recorded (who,
when, why: a Provenance) and announced (`task.status-changed`), and its consequences — releasing the Tasks that
waited for it, rolling up its CarePlan — run in the same transaction, so they commit or fail together.

`update_resource` is the one door for FHIR updates (PUT, PATCH and transaction/batch entries all arrive through
`execute_crud`'s update); the stop rules and the scheduler change Tasks through `change_task`.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from carepath.errors import Gone, NotFound
from carepath.fhir.search.query import parse_search
from carepath.service.agent import current_agent
from carepath.service.careplan_rollup import roll_up
from carepath.service.coordinator import notify_coordinator
from carepath.service.routing import route_tasks
from carepath.service.task_events import emit, record
from carepath.store.records import StoredResource
from carepath.store.repository import StoreTransaction
from carepath.workflow.release import decide_release
from carepath.workflow.tasks import FINAL, Resource, careplans, label, reference, status, waits_for
from carepath.workflow.transitions import ALLOWED, settle

Change = tuple[Resource, StoredResource]  # (the Task before, the Task as now stored)


async def update_resource(
    tx: StoreTransaction, res_type: str, res_id: str, body: dict[str, Any], *, if_match: int | None
) -> tuple[StoredResource, bool]:
    """FHIR update (returns stored, created). For a Task: the state machine, then its consequences."""
    if res_type != "Task":
        return await tx.update(res_type, res_id, body, if_match=if_match)
    current = await tx.read_for_update("Task", res_id)
    checkable = current is not None and (if_match is None or if_match == current.version)
    # A status outside R4's code list is left to validation (400); a stale If-Match to the store (412).
    before = current.json() if current is not None and checkable and status(body) in ALLOWED else None
    stored, created = await tx.update("Task", res_id, settle(before, body) if before else body, if_match=if_match)
    if before is not None:
        await task_changed(tx, before, stored, current_agent(), datetime.now(UTC))
    return stored, created


async def change_task(
    tx: StoreTransaction, before: Resource, after: Resource, why: str, agent: dict[str, Any], now: datetime
) -> StoredResource:
    """Write a status change decided by carepath itself (a stop rule, a release): checked by the same table,
    recorded and announced; the caller handles the consequences (see `task_changed`)."""
    stored, _ = await tx.update("Task", before["id"], settle(before, after))
    await _announce(tx, before, stored, why, agent, now)
    return stored


async def task_changed(
    tx: StoreTransaction, before: Resource, stored: StoredResource, agent: dict[str, Any], now: datetime
) -> None:
    """Record and announce a client's change, then release dependants and roll up the CarePlans."""
    task = stored.json()
    if status(before) == status(task):
        return
    await _announce(tx, before, stored, _reason(task), agent, now)
    if status(task) in FINAL:
        await release_dependants(tx, task, agent, now)
    elif status(task) == "draft" and waits_for(task):  # resumed from a hold: its predecessors may be done now
        await _release(tx, task, agent, now)
    await roll_up(tx, careplans(task), agent, now)


def _reason(task: Resource) -> str:
    text = (task.get("statusReason") or {}).get("text")
    return str(text) if text else "status changed by an update of the Task"


async def _announce(
    tx: StoreTransaction, before: Resource, stored: StoredResource, why: str, agent: dict[str, Any], now: datetime
) -> None:
    new = stored.json()
    if status(before) == status(new):
        await record(tx, stored, why, agent, now)
        return
    await record(tx, stored, f"{status(before)} -> {status(new)}: {why}", agent, now)
    await emit(tx, "dev.carepath.task.status-changed", stored)


async def release_dependants(tx: StoreTransaction, task: Resource, agent: dict[str, Any], now: datetime) -> None:
    """Decide every held Task that waits for `task` (which just reached a final state)."""
    query = replace(parse_search("Task", [("waits-for", reference(task)), ("status", "draft")]), count=500)
    for _, dependant in await tx.search(query):
        await _release(tx, dependant.json(), agent, now)


async def _release(tx: StoreTransaction, task: Resource, agent: dict[str, Any], now: datetime) -> None:
    # Locking the dependant serialises the completions of its predecessors: of two committing at once, the later
    # one waits here, then reads the earlier one's committed status (READ COMMITTED), so the last one releases.
    current = await tx.read_for_update("Task", task["id"])
    if current is None:
        return
    task = current.json()
    predecessors: dict[str, Resource | None] = {}
    for ref in waits_for(task):
        res_type, _, res_id = ref.partition("/")
        found = await _current(tx, res_id) if res_type == "Task" else None
        predecessors[ref] = found.json() if found is not None else None
    patient = str((task.get("for") or {}).get("reference", ""))
    if patient.startswith("Patient/"):  # a CareTeam formed after $apply still routes the Task when it is released
        await route_tasks(tx, [task], patient, now)
    decision = decide_release(task, predecessors)
    if decision is None:
        return
    if decision.kind == "released":
        why = "released: every Task it waited for is completed"
        stored = await change_task(tx, task, decision.task, why, agent, now)
        await emit(tx, "dev.carepath.task.released", stored)
    else:  # held for review: the Task is out of the worklist (draft), so the coordinator is told
        stored, _ = await tx.update("Task", task["id"], decision.task)
        why = str(decision.task["businessStatus"]["text"])
        await record(tx, stored, why, agent, now)
        text = f"'{label(task)}' is {why}; decide whether it is still needed (move it on) or cancel it."
        await notify_coordinator(tx, stored.json(), text, "notification", str(task.get("priority") or "routine"), now)


async def _current(tx: StoreTransaction, res_id: str) -> StoredResource | None:
    try:
        return await tx.read("Task", res_id)
    except (NotFound, Gone):
        return None
