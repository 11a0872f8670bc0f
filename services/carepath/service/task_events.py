"""The outbound events and the Provenance of workflow changes, written in the transaction of the change."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from carepath.domain_events import DomainEvent, EventType
from carepath.store.records import StoredResource
from carepath.store.repository import StoreTransaction
from carepath.workflow.provenance import change_provenance
from carepath.workflow.tasks import GENERATED_BY, careplans


def _pathway(resource: dict[str, Any]) -> str | None:
    """The PlanDefinition `url|version` of the generated-by extension, if any."""
    for ext in resource.get("extension", []):
        if ext.get("url") == GENERATED_BY:
            plan = next((p.get("valueCanonical") for p in ext.get("extension", []) if p.get("url") == "plan"), None)
            return str(plan) if plan else None
    return None


def _patient(resource: dict[str, Any]) -> str:
    ref = (resource.get("for") or resource.get("subject") or {}).get("reference")
    return ref if isinstance(ref, str) else ""


async def emit(tx: StoreTransaction, type_: EventType, stored: StoredResource) -> None:
    """Queue `type_` about `stored` (a Task or CarePlan) on the transaction's outbox."""
    resource = stored.json()
    if resource["resourceType"] == "CarePlan":
        careplan: str | None = stored.relative_url
        pathway = next(iter(resource.get("instantiatesCanonical", [])), None)
    else:
        careplan, pathway = next(iter(careplans(resource)), None), _pathway(resource)
    await tx.add_event(DomainEvent(type_, _patient(resource), resource, careplan=careplan, pathway=pathway))


async def record(tx: StoreTransaction, stored: StoredResource, why: str, agent: dict[str, Any], now: datetime) -> None:
    """The Provenance of the change that produced `stored`: who (`agent`), when (`now`) and why."""
    await tx.create(change_provenance(stored.versioned_url, why, agent, now))
