"""Outbound domain events as plain values: what changed, for whom, in which care plan and pathway.

Pure (no I/O): the workflow and the use cases produce them; the store writes each one as an outbox row in the
transaction of the change that caused it (`StoreTransaction.add_event`), and the relay publishes it as a
CloudEvents 1.0 event on the outbound stream (`contracts/events/`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

EventType = Literal[
    "dev.carepath.careplan.created",
    "dev.carepath.careplan.status-changed",
    "dev.carepath.task.created",
    "dev.carepath.task.status-changed",
    "dev.carepath.task.released",
    "dev.carepath.task.overdue",
    "dev.carepath.alert",
]


@dataclass(frozen=True)
class DomainEvent:
    type: EventType
    subject: str  # the relative Patient reference, "Patient/<id>" (the CloudEvents `subject`)
    resource: dict[str, Any]  # the resource as stored (the CloudEvents `data`)
    careplan: str | None = None  # "CarePlan/<id>" (extension attribute `careplan`)
    pathway: str | None = None  # the PlanDefinition "url|version" (extension attribute `pathway`)
