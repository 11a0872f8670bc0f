"""Who, when and why for every workflow change: one R4 Provenance per change, targeting the new version.

`agent` is the author of the change: the request's agent when the transport knows it, else carepath's own
system agent (a display-only reference, R4 Reference allows it); automatic consequences (a release, a roll-up,
an overdue alert) name the same agent as the write that caused them, or the system agent for the scheduler.
"""

from __future__ import annotations

from datetime import datetime

from carepath.workflow.tasks import Resource

PARTICIPANT_TYPE = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
DATA_OPERATION = "http://terminology.hl7.org/CodeSystem/v3-DataOperation"


def change_provenance(target: str, why: str, agent: Resource, now: datetime) -> Resource:
    """A Provenance for the change that produced `target` (a versioned reference, `Task/1/_history/3`)."""
    return {
        "resourceType": "Provenance",
        "target": [{"reference": target}],
        "recorded": now.isoformat(timespec="seconds"),
        "activity": {"coding": [{"system": DATA_OPERATION, "code": "UPDATE", "display": "revise"}]},
        "reason": [{"text": why}],
        "agent": [{"type": {"coding": [{"system": PARTICIPANT_TYPE, "code": "author"}]}, "who": agent}],
    }
