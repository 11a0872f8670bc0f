"""Re-evaluation of an active CarePlan when a new or changed resource of a kind its pathway reads arrives.

A fresh `$apply` (nothing stored) at the time of the event is compared with the CarePlan's Tasks
(engine/reevaluate.py, pure): actions that now apply and were never generated are added to the same CarePlan,
once; open Tasks the pathway now rates more urgent are escalated, never de-escalated. All in the event's
transaction, with a Provenance naming the event, `task.created` / `task.status-changed` events, and a
`dev.carepath.alert` for every added or escalated urgent Task.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from carepath import jsonutil
from carepath.domain_events import DomainEvent, EventType
from carepath.engine.reevaluate import Changes, changes, is_urgent
from carepath.fhir.search.query import parse_search
from carepath.service.apply import fresh_bundle
from carepath.service.bundles import run_transaction
from carepath.store.repository import Repository, StoreTransaction


@dataclass(frozen=True)
class Reevaluation:
    careplan: str
    added: tuple[str, ...]  # Task/<id> of the added work
    escalated: tuple[str, ...]  # Task/<id> escalated


async def reevaluate(
    repository: Repository, tx: StoreTransaction, plan: dict[str, Any], careplan: dict[str, Any], patient: str,
    now: datetime, cause: dict[str, Any],
) -> Reevaluation | None:  # fmt: skip
    """Add and escalate on `careplan` what the pathway says now; None when nothing changes."""
    fresh = await fresh_bundle(repository, tx, str(plan["id"]), patient, now, cause)
    if fresh is None:
        return None
    reference = f"CarePlan/{careplan['id']}"
    tasks = await _tasks(tx, reference)
    found = changes(fresh, reference, tasks)
    if found.empty:
        return None
    responses = await run_transaction(tx, _entries(found, careplan, fresh["entry"][-1]), "")
    stored = [jsonutil.loads(jsonutil.dumps(r["resource"])) for r in responses if "resource" in r]
    added = [r for r in stored[: len(found.added)] if r["resourceType"] == "Task"]
    escalated = stored[len(found.added) : len(found.added) + len(found.escalated)]
    pathway = f"{plan.get('url')}|{plan.get('version')}"
    kinds: list[tuple[EventType, list[dict[str, Any]]]] = [
        ("dev.carepath.task.created", added),
        ("dev.carepath.task.status-changed", escalated),
    ]
    for kind, items in kinds:
        for task in items:
            await _event(tx, kind, patient, task, reference, pathway)
    for task in added + escalated:
        if is_urgent(task):
            await _event(tx, "dev.carepath.alert", patient, task, reference, pathway)
    return Reevaluation(reference, tuple(f"Task/{t['id']}" for t in added),
                        tuple(f"Task/{t['id']}" for t in escalated))  # fmt: skip


def _entries(found: Changes, careplan: dict[str, Any], provenance: dict[str, Any]) -> list[dict[str, Any]]:
    """Added work (POST), escalated Tasks (PUT), the CarePlan listing the added activities, the Provenance."""
    entries = list(found.added)
    entries += [{"resource": t, "request": {"method": "PUT", "url": f"Task/{t['id']}"}} for t in found.escalated]
    # CarePlan.activity lists the requests, and Tasks that have no request of their own
    listed = [e for e in found.added if e["resource"]["resourceType"] != "Task" or not e["resource"].get("focus")]
    activity = [{"reference": {"reference": e["fullUrl"]}} for e in listed]
    if activity:
        updated = {**careplan, "activity": [*careplan.get("activity", []), *activity]}
        entries.append({"resource": updated, "request": {"method": "PUT", "url": f"CarePlan/{careplan['id']}"}})
    targets = [{"reference": e["fullUrl"]} for e in found.added]
    targets += [{"reference": f"Task/{t['id']}/_history/{int(t['meta']['versionId']) + 1}"} for t in found.escalated]
    record = {**provenance["resource"], "target": targets}
    entries.append(
        {"fullUrl": provenance["fullUrl"], "resource": record, "request": {"method": "POST", "url": "Provenance"}}
    )
    return entries


async def _tasks(tx: StoreTransaction, careplan: str) -> list[dict[str, Any]]:
    query = parse_search("Task", [("based-on", careplan), ("_count", "500")])
    return [stored.json() for _, stored in await tx.search(query)]


async def _event(
    tx: StoreTransaction, kind: EventType, patient: str, task: dict[str, Any], careplan: str, pathway: str
) -> None:
    await tx.add_event(DomainEvent(kind, patient, task, careplan=careplan, pathway=pathway))
