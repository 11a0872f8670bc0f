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

import weakref
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from carepath.engine.reevaluate import data_requirements, reads
from carepath.engine.triggers import TriggerEvent, action_triggers, triggered_by
from carepath.errors import Gone
from carepath.fhir.search.query import parse_search
from carepath.service.apply import apply_in_transaction
from carepath.service.reevaluation import Reevaluation, reevaluate
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
) -> list[Enrolment | Reevaluation]:  # fmt: skip
    """For each event and active pathway: re-evaluate the patient's active CarePlan of that pathway when the
    resource is of a kind the pathway reads, else enrol the patient when a trigger fires."""
    if not events:
        return []
    plans = await _triggered_plans(repository, tx)
    done: list[Enrolment | Reevaluation] = []
    for patient, event in events:
        for plan, requirements in plans:
            read = event.resource is not None and reads(requirements, event.resource)
            fired = triggered_by(plan, event, now)
            if not read and not fired:  # the common case (a vital sign): no query at all
                continue
            active = await _active_careplan(tx, patient, str(plan["url"]))
            if active is not None:
                changed = await reevaluate(repository, tx, plan, active, patient, now, cause) if read else None
                done += [changed] if changed is not None else []
            elif fired:
                careplan = await apply_in_transaction(repository, tx, str(plan["id"]), patient, now, cause)
                if careplan is not None:
                    pathway = f"{plan['url']}|{plan.get('version')}"
                    done.append(Enrolment(pathway, f"CarePlan/{careplan['id']}", fired[0]))
    return done


Requirements = tuple[frozenset[str], frozenset[str]]
# Parsed plans and their data requirements by (id, version), one cache per store (a version never changes).
_PLANS: weakref.WeakKeyDictionary[Repository, dict[tuple[str, int], tuple[dict[str, Any], Requirements]]] = (
    weakref.WeakKeyDictionary()
)


async def _triggered_plans(repository: Repository, tx: StoreTransaction) -> list[tuple[dict[str, Any], Requirements]]:
    """Active PlanDefinitions that declare at least one trigger, with their data requirements."""
    found = await tx.search(parse_search("PlanDefinition", [("status", "active"), ("_count", "500")]))
    cache = _PLANS.setdefault(repository, {})
    if len(cache) > 256:
        cache.clear()
    plans = []
    for _, stored in found:
        key = (stored.res_id, stored.version)
        if key not in cache:
            plan = stored.json()
            cache[key] = (plan, data_requirements(plan))
        plans.append(cache[key])
    return [(p, r) for p, r in plans if next(action_triggers(p), None) is not None]


async def _active_careplan(tx: StoreTransaction, patient: str, url: str) -> dict[str, Any] | None:
    query = parse_search("CarePlan", [("subject", patient), ("status", "active"), ("_count", "500")])
    for _, stored in await tx.search(query):
        careplan = stored.json()
        if any(str(c).split("|")[0] == url for c in careplan.get("instantiatesCanonical") or []):
            return careplan
    return None
