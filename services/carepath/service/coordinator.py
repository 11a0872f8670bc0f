"""Telling the care coordinator: a CommunicationRequest about a Task (an overdue alert, a Task held for review).

Addressed to the patient's CareTeam participant in the care-coordinator role, else to the patient's CareTeam,
else to nobody in particular (it is still among the open CommunicationRequests of the patient, which is where a
coordinator's list of notifications comes from). A communication, not a treatment order: `status = active`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from carepath.service.routing import careteams
from carepath.store.repository import StoreTransaction
from carepath.workflow.routing import COORDINATOR_ROLE, participant_in_role
from carepath.workflow.tasks import careplans

COMMUNICATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/communication-category"


async def notify_coordinator(
    tx: StoreTransaction, task: dict[str, Any], text: str, category: Literal["alert", "notification"],
    priority: str, now: datetime,
) -> None:  # fmt: skip
    """Create the CommunicationRequest about `task` (its current JSON) saying `text`."""
    patient = (task.get("for") or {}).get("reference")
    message: dict[str, Any] = {
        "resourceType": "CommunicationRequest",
        "status": "active",
        "category": [{"coding": [{"system": COMMUNICATION_CATEGORY, "code": category}]}],
        "priority": priority,
        "about": [{"reference": f"Task/{task['id']}"}],
        "authoredOn": now.isoformat(timespec="seconds"),
        "payload": [{"contentString": f"For the care coordinator: {text}"}],
    }
    if careplans(task):
        message["basedOn"] = [{"reference": ref} for ref in careplans(task)]
    if isinstance(patient, str) and patient.startswith("Patient/"):
        message["subject"] = {"reference": patient}
        teams = await careteams(tx, patient)
        found = participant_in_role([COORDINATOR_ROLE], teams, now)
        if found is not None:
            message["recipient"] = [found[1]]
        elif teams:
            message["recipient"] = [{"reference": f"CareTeam/{teams[0]['id']}"}]
    await tx.create(message)
