"""Handling one inbound event (the use case behind the stream consumer), exactly once.

One database transaction holds everything: the patient's lock, the event's idempotency key (CloudEvents `source`
+ `id`, unique: a redelivered or re-sent event finds it and has no second effect), the stored resources, the
stop rules, the trigger evaluation and any enrolment with its outbox rows. The transport acknowledges the entry
only after this commits.

- `dev.carepath.fhir.resource`: `data` is one resource or a `transaction`/`batch` Bundle. A single resource with
  an `identifier` is a conditional update on its first identifier (`system|value`, R4 §3.1.0.5.1): created if
  absent, updated if one matches, 412 if several match — so a re-sent message updates instead of duplicating.
  Without an identifier it is created. Bundle entries keep their own `request` (the bundle service).
- `dev.carepath.named-event`: `data` = {"name": ..., "subject": "Patient/<id>"}.
- `dev.carepath.internal.resource-stored`: a write through the FHIR API (the HTTP door), `data.resource` its
  versioned reference: only its triggers are evaluated.

The events door (`check_source`): with CAREPATH_EVENTS_ALLOWED_SOURCES set, an event whose `source` is not listed
is refused (403) before anything is done; carepath's own internal events always pass.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

from carepath.engine.triggers import TriggerEvent
from carepath.errors import Forbidden, InvalidRequest, PreconditionFailed
from carepath.fhir.search.query import parse_search
from carepath.service.bundles import run_batch_entries, run_transaction
from carepath.service.interactions import Interaction, execute_crud
from carepath.service.reevaluation import Reevaluation
from carepath.service.trigger_queue import RESOURCE_STORED, patient_of
from carepath.service.triggering import Enrolment, change_of, evaluate_triggers
from carepath.store.repository import Repository, StoreTransaction

RESOURCE = "dev.carepath.fhir.resource"
NAMED_EVENT = "dev.carepath.named-event"
INBOUND_TYPES = frozenset({RESOURCE, NAMED_EVENT, RESOURCE_STORED})
IDENTIFIER_SYSTEM = "urn:ietf:rfc:3986"
Result = Literal["processed", "duplicate"]


@dataclass(frozen=True)
class InboundEvent:
    id: str
    source: str
    type: str
    subject: str | None
    data: Any

    @property
    def key(self) -> str:
        """The idempotency key: CloudEvents `source` + `id` identify an event (CloudEvents 1.0 §3.1.1)."""
        return f"{self.source} {self.id}"

    def provenance_entity(self) -> dict[str, Any]:
        """How an enrolment's Provenance names the event that caused it."""
        what = {"identifier": {"system": self.source if ":" in self.source else IDENTIFIER_SYSTEM, "value": self.id},
                "display": f"CloudEvent {self.type} {self.id} from {self.source}"}  # fmt: skip
        return {"role": "source", "what": what}

    def patient(self) -> str | None:
        """The patient key (ordering, locking): the CloudEvents subject, else the patient in the data."""
        if self.subject:
            return self.subject
        data = self.data if isinstance(self.data, dict) else {}
        if self.type == NAMED_EVENT:
            subject = data.get("subject")
            return subject if isinstance(subject, str) else None
        if data.get("resourceType") == "Bundle":
            entries = [e.get("resource") for e in data.get("entry") or [] if isinstance(e, dict)]
            return next((p for r in entries if isinstance(r, dict) and (p := patient_of(r))), None)
        return patient_of(data)


def check_source(event: InboundEvent, allowed: frozenset[str] | None, internal_source: str) -> None:
    """Forbidden unless the producer may send events: any source when `allowed` is None, else a listed one, or
    carepath's own internal event (its type and `internal_source` together: another type from that source is
    still checked against the list)."""
    if allowed is None or event.source in allowed:
        return
    if event.type == RESOURCE_STORED and event.source == internal_source:
        return
    raise Forbidden(f"CloudEvents source {event.source!r} is not in CAREPATH_EVENTS_ALLOWED_SOURCES",
                    expression=("source",))  # fmt: skip


@dataclass(frozen=True)
class Handled:
    result: Result
    effects: tuple[Enrolment | Reevaluation, ...] = ()


async def handle_event(repository: Repository, event: InboundEvent, now: datetime) -> Handled:
    """Apply the event's effects once; `duplicate` when its key was already processed (nothing done)."""
    async with repository.transaction() as tx:
        patient = event.patient()
        if patient is not None:
            await tx.lock_patient(patient)
        if not await tx.record_processed(event.key):
            return Handled("duplicate")
        tx.written = []
        changes = await _effects(tx, event)
        effects = await evaluate_triggers(repository, tx, changes, event.provenance_entity(), now)
    return Handled("processed", tuple(effects))


async def _effects(tx: StoreTransaction, event: InboundEvent) -> list[tuple[str, TriggerEvent]]:
    """Store what the event carries; the (patient, trigger event) pairs to evaluate."""
    if event.type == NAMED_EVENT:
        return [_named(event.data)]
    if event.type == RESOURCE_STORED:
        await _note_stored(tx, event.data)
    else:
        await _store(tx, event.data)
    written = tx.written or []
    return [change for stored in written if (change := await change_of(tx, stored)) is not None]


def _named(data: Any) -> tuple[str, TriggerEvent]:
    name = data.get("name") if isinstance(data, dict) else None
    subject = data.get("subject") if isinstance(data, dict) else None
    if not isinstance(name, str) or not name:
        raise InvalidRequest("A named event needs data.name", expression=("data.name",))
    if not isinstance(subject, str) or not subject.startswith("Patient/"):
        raise InvalidRequest("A named event needs data.subject = 'Patient/<id>'", expression=("data.subject",))
    return subject, TriggerEvent(name=name)


async def _note_stored(tx: StoreTransaction, data: Any) -> None:
    reference = data.get("resource") if isinstance(data, dict) else None
    parts = reference.split("/") if isinstance(reference, str) else []
    if len(parts) != 4 or parts[2] != "_history" or not parts[3].isdigit():
        raise InvalidRequest("data.resource must be a versioned reference Type/id/_history/n")
    assert tx.written is not None
    tx.written.append(await tx.vread(parts[0], parts[1], int(parts[3])))


async def _store(tx: StoreTransaction, data: Any) -> None:
    if not isinstance(data, dict) or not isinstance(data.get("resourceType"), str):
        raise InvalidRequest("data must be a FHIR resource", expression=("data",))
    if data["resourceType"] == "Bundle":
        kind = data.get("type")
        entries = data.get("entry") or []
        if kind == "transaction":
            await run_transaction(tx, entries, "")
        elif kind == "batch":
            await run_batch_entries(tx, entries, "")
        else:
            raise InvalidRequest(f"A Bundle event must be a transaction or batch, not {kind!r}", expression=("data",))
        return
    await execute_crud(tx, await _conditional_interaction(tx, data))


async def _conditional_interaction(tx: StoreTransaction, resource: dict[str, Any]) -> Interaction:
    """Update the resource matching the first identifier, create it when none does (412 for several)."""
    res_type = resource["resourceType"]
    identifier = (resource.get("identifier") or [None])[0]
    body = {k: v for k, v in resource.items() if k != "id"}
    if not isinstance(identifier, dict) or not identifier.get("value"):
        return Interaction("create", res_type, body=body)
    token = f"{identifier.get('system', '')}|{identifier['value']}" if identifier.get("system") else identifier["value"]
    query = replace(parse_search(res_type, [("identifier", token)]), count=2)
    found = await tx.search(query)
    if len(found) > 1:
        raise PreconditionFailed(f"identifier {token} matches more than one {res_type}: conditional update refused")
    if not found:  # the database's unique conditional key makes two concurrent creates one (store)
        return Interaction("create", res_type, body=body, if_none_exist=f"identifier={token}")
    res_id = found[0][1].res_id
    return Interaction("update", res_type, res_id, body={**body, "id": res_id})
