"""Event-driven pathways: a stored resource or a named event is matched against the active pathways' triggers
(engine/triggers.py, pure) and a match applies the pathway through the persisted `$apply` path, in the
transaction of the event.

**One door.** Every committed write of a clinical-record resource through the FHIR API queues, in its own
transaction, an internal event (`queue_trigger_evaluation`, called from `execute_crud`); the outbox relay puts it
on the inbound stream and the consumer evaluates it like an inbound `dev.carepath.fhir.resource` event, so the
HTTP answer never waits for trigger evaluation. The consumer's own writes are evaluated in its transaction
instead (`StoreTransaction.written`).

**Once.** At most one active CarePlan per patient and pathway `url` is started by events: a patient who already
has one is not enrolled again (an explicit `$apply persist=true` over HTTP is not limited). The consumer holds
the patient's lock (store/outbox.py) for the whole transaction, so two events of one patient cannot both enrol.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from carepath.engine.triggers import TriggerEvent, action_triggers, triggered_by
from carepath.errors import Gone
from carepath.fhir.search.query import parse_search
from carepath.service.apply import apply_in_transaction
from carepath.service.trigger_queue import patient_of
from carepath.store.records import StoredResource
from carepath.store.repository import Repository, StoreTransaction


@dataclass(frozen=True)
class Enrolment:
    pathway: str  # url|version
    careplan: str  # CarePlan/<id>
    trigger: str  # the FHIRPath location of the trigger that fired


async def change_of(tx: StoreTransaction, stored: StoredResource) -> tuple[str, TriggerEvent] | None:
    """(patient, trigger event) of a stored version, with its previous version for `%previous`."""
    resource = stored.json()
    patient = patient_of(resource)
    if patient is None:
        return None
    previous = None
    if stored.version > 1:
        try:
            previous = (await tx.vread(stored.res_type, stored.res_id, stored.version - 1)).json()
        except Gone:  # re-created after a deletion: an addition again
            previous = None
    return patient, TriggerEvent(resource=resource, previous=previous)


async def evaluate_triggers(
    repository: Repository, tx: StoreTransaction, events: list[tuple[str, TriggerEvent]], cause: dict[str, Any],
    now: datetime,
) -> list[Enrolment]:  # fmt: skip
    """Enrol each event's patient in every active pathway it triggers (once per patient and pathway url)."""
    if not events:
        return []
    plans = await _triggered_plans(tx)
    enrolled: list[Enrolment] = []
    for patient, event in events:
        for plan in plans:
            fired = triggered_by(plan, event, now)
            if not fired or await _has_active_careplan(tx, patient, str(plan["url"])):
                continue
            careplan = await apply_in_transaction(repository, tx, str(plan["id"]), patient, now, cause)
            if careplan is not None:
                pathway = f"{plan['url']}|{plan.get('version')}"
                enrolled.append(Enrolment(pathway, f"CarePlan/{careplan['id']}", fired[0]))
    return enrolled


async def _triggered_plans(tx: StoreTransaction) -> list[dict[str, Any]]:
    """Active PlanDefinitions that declare at least one trigger."""
    found = await tx.search(parse_search("PlanDefinition", [("status", "active"), ("_count", "500")]))
    plans = [stored.json() for _, stored in found]
    return [p for p in plans if next(action_triggers(p), None) is not None]


async def _has_active_careplan(tx: StoreTransaction, patient: str, url: str) -> bool:
    query = parse_search("CarePlan", [("subject", patient), ("status", "active"), ("_count", "500")])
    for _, stored in await tx.search(query):
        canonicals = stored.json().get("instantiatesCanonical") or []
        if any(str(c).split("|")[0] == url for c in canonicals):
            return True
    return False
