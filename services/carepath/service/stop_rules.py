"""The pathway's stop rules as behaviour: a stored event (a deceased Patient, a refusal, a new disease status)
changes the patient's open Tasks in the same transaction as the event itself.

The decisions are the pure `content.stop_rules.evaluate_stop_rules`; this module only loads the patient's Tasks,
writes the changed Tasks through the Task state machine (new versions, `statusReason` saying why, a Provenance
and a `task.status-changed` event each), revokes the care plans when the patient died and, for a disease-status
change, creates a review Task for the care coordinator — it never cancels work on an improvement.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from carepath.content.stop_rules import StopRuleOutcome, evaluate_stop_rules
from carepath.service.agent import current_agent
from carepath.service.careplan_rollup import roll_up
from carepath.service.routing import route_tasks
from carepath.service.task_workflow import change_task
from carepath.store.records import StoredResource
from carepath.store.repository import StoreTransaction
from carepath.workflow.routing import COORDINATOR_ROLE

EVENT_TYPES = frozenset({"Patient", "Observation", "MedicationRequest", "MedicationAdministration"})


async def apply_stop_rules(tx: StoreTransaction, stored: StoredResource) -> StopRuleOutcome | None:
    """Run the stop rules for a resource just written; None when it is not an event they care about."""
    if stored.res_type not in EVENT_TYPES or stored.deleted:
        return None
    event = stored.json()
    if evaluate_stop_rules([], event).rule is None:  # cheap pre-check before loading the patient's record
        return None
    patient = stored.relative_url if stored.res_type == "Patient" else _subject(event)
    if patient is None:
        return None
    record = {f"{r['resourceType']}/{r['id']}": r for r in await tx.subject_record(patient)}
    tasks = [r for r in record.values() if r["resourceType"] == "Task"]
    outcome = evaluate_stop_rules(tasks, event, record.get)
    agent, now = current_agent(), datetime.now(UTC)
    for change in outcome.changes:
        changed = {**record[change.task], "status": change.status, "statusReason": change.status_reason()}
        await change_task(tx, record[change.task], changed, change.reason, agent, now)
    if outcome.rule == "death":  # the pathway is stopped: its care plans are revoked, not "completed"
        plans = [f"CarePlan/{r['id']}" for r in record.values() if r["resourceType"] == "CarePlan"]
        await roll_up(tx, plans, agent, now, stopped=True)
    open_tasks = [t for t in tasks if t.get("status") not in ("completed", "cancelled", "entered-in-error")]
    already = any((t.get("focus") or {}).get("reference") == stored.relative_url for t in open_tasks)
    if outcome.notify_coordinator and open_tasks and not already:
        review = _review_task(patient, outcome.notify_coordinator, stored, open_tasks)
        await route_tasks(tx, [review], patient, now)
        await tx.create(review)
    return outcome


def _subject(event: dict[str, Any]) -> str | None:
    ref = (event.get("subject") or {}).get("reference")
    return ref if isinstance(ref, str) and ref.startswith("Patient/") else None


def _review_task(patient: str, notice: str, event: StoredResource, open_tasks: list[dict[str, Any]]) -> dict[str, Any]:
    """A coordinator review Task (no invented code: it is described in text) pointing at the event."""
    careplans = sorted({b["reference"] for t in open_tasks for b in t.get("basedOn", [])
                        if str(b.get("reference", "")).startswith("CarePlan/")})  # fmt: skip
    task: dict[str, Any] = {
        "resourceType": "Task",
        "status": "requested",
        "intent": "order",
        "priority": "routine",
        "code": {"text": "Care coordinator review of the care plan"},
        "performerType": [COORDINATOR_ROLE],
        "description": notice,
        "for": {"reference": patient},
        "focus": {"reference": event.relative_url},
        "reasonReference": {"reference": event.relative_url},
    }
    if careplans:
        task["basedOn"] = [{"reference": ref} for ref in careplans]
    return task
