"""Routing: who a Task is for. A Task names its role (`performerType`, the clinical spec §5b codes); when the
patient's CareTeam has a participant in one of those roles, that participant is the Task's `owner`.

Roles match on a shared coding (system and code): a text-only role never matches, so an uncoded Task is never
routed by a guess. Only active CareTeams and participants whose period covers `now` are considered. The Task's
first role that someone holds wins (the main role is listed first), then CareTeams and participants in their
order, so routing is deterministic.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from carepath.workflow.tasks import Resource


def codings(concepts: Iterable[Any]) -> set[tuple[str, str]]:
    return {(str(c.get("system")), str(c.get("code")))
            for concept in concepts if isinstance(concept, dict)
            for c in concept.get("coding", []) if c.get("system") and c.get("code")}  # fmt: skip


def _current(period: Any, now: datetime) -> bool:
    if not isinstance(period, dict):
        return True
    start, end = period.get("start"), period.get("end")
    today = now.date().isoformat()
    return (not isinstance(start, str) or start[:10] <= today) and (not isinstance(end, str) or end[:10] >= today)


def participant_in_role(
    roles: Sequence[Any], careteams: Sequence[Resource], now: datetime
) -> tuple[Resource, Resource] | None:
    """(careteam, participant member reference) of a current participant holding one of `roles`: the first
    role that anyone holds wins (a Task lists its main role first), then the first team and participant."""
    members = [(team, participant["member"], codings(participant.get("role", [])))
               for team in careteams if team.get("status", "active") == "active"
               for participant in team.get("participant", [])
               if isinstance(participant.get("member"), dict) and _current(participant.get("period"), now)]  # fmt: skip
    for role in roles:
        wanted = codings([role])
        found = next(((team, member) for team, member, held in members if wanted and held & wanted), None)
        if found is not None:
            return found
    return None


def owner_for(task: Resource, careteams: Sequence[Resource], now: datetime) -> Resource | None:
    """The owner `task` should get: None when it has one already, has no coded role, or nobody holds it."""
    if task.get("owner"):
        return None
    found = participant_in_role(task.get("performerType", []), careteams, now)
    return {k: v for k, v in found[1].items() if k in ("reference", "display")} if found else None


# §5b: "care coordinator (IDEC)", SNOMED CT 768820003 (PARTIAL in the spec: not nurse-specific). The role that
# reviews held work and receives the overdue alerts.
COORDINATOR_ROLE: Resource = {
    "coding": [{"system": "http://snomed.info/sct", "code": "768820003", "display": "Care coordinator"}],
    "text": "Care coordinator",
}
