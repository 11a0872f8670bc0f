"""The HTTP door of event-driven pathways: every committed write of a clinical-record resource queues, in its own
transaction, an internal event for trigger evaluation (service/triggering.py does the evaluation)."""

from __future__ import annotations

from typing import Any

from carepath.store.records import StoredResource
from carepath.store.repository import StoreTransaction

# The kinds of resource that describe the patient's situation (what triggers and pathways read). carepath's own
# output (CarePlan, Task, requests, Provenance) and definitions are not events for the pathways.
RECORD_TYPES = frozenset(
    {"Patient", "Observation", "Condition", "MedicationRequest", "MedicationAdministration", "Procedure"}
)
RESOURCE_STORED = "dev.carepath.internal.resource-stored"


def patient_of(resource: dict[str, Any]) -> str | None:
    """The Patient a record resource is about: itself, or its `subject` / `patient` reference."""
    if resource.get("resourceType") == "Patient":
        return f"Patient/{resource['id']}" if resource.get("id") else None
    for name in ("subject", "patient"):
        reference = (resource.get(name) or {}).get("reference")
        if isinstance(reference, str) and reference.startswith("Patient/"):
            return reference
    return None


async def queue_trigger_evaluation(tx: StoreTransaction, stored: StoredResource) -> None:
    """The hook of every committed write (execute_crud): queue the write for trigger evaluation."""
    if stored.res_type not in RECORD_TYPES or stored.deleted:
        return
    if tx.written is not None:  # the event consumer evaluates its own writes in this transaction
        tx.written.append(stored)
        return
    patient = patient_of(stored.json())
    if patient is not None:
        await tx.add_internal_event(RESOURCE_STORED, patient, {"resource": stored.versioned_url})
