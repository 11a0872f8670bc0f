"""Rapid alerts for late work (the spec's "dispositifs d'alerte rapide"): which Tasks are overdue, and the one
priority step each alert raises.

A Task is overdue when it is actionable (requested, received, accepted, ready or in progress) and its due date
(`Task.restriction.period.end`, carepath's documented use of it for Tasks) is before `now`. Draft Tasks wait for
predecessors (their lateness is their predecessors'), and on-hold Tasks were paused on purpose, so neither is
flagged. A due date without a time (a FHIR `date`) is due at the end of that day, UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from carepath.workflow.tasks import Resource, status

ACTIONABLE = frozenset({"requested", "received", "accepted", "ready", "in-progress"})
# request-priority is ordered routine < urgent < asap < stat; an alert raises one step and never to stat, which
# is the clinician's call (an emergency), not a scheduler's.
NEXT_PRIORITY = {"routine": "urgent", "urgent": "asap"}


@dataclass(frozen=True)
class Overdue:
    task: Resource  # the escalated Task (priority raised one step when possible)
    due: str  # the due date as written in the Task: with the Task id, the key of "alerted once"
    raised_from: str  # the priority before the alert
    raised_to: str


def due_instant(task: Resource) -> datetime | None:
    """The due date as an aware UTC datetime, or None when absent or unreadable (then nothing is overdue)."""
    end = ((task.get("restriction") or {}).get("period") or {}).get("end")
    if not isinstance(end, str):
        return None
    try:
        if len(end) == 10:
            return datetime.combine(date.fromisoformat(end) + timedelta(days=1), datetime.min.time(), UTC)
        moment = datetime.fromisoformat(end)
    except ValueError:
        return None
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def overdue(task: Resource, now: datetime) -> Overdue | None:
    """The alert `task` calls for at `now` (aware), or None."""
    due = due_instant(task)
    if status(task) not in ACTIONABLE or due is None or due >= now:
        return None
    before = str(task.get("priority") or "routine")
    after = NEXT_PRIORITY.get(before, before)
    end = str(task["restriction"]["period"]["end"])
    return Overdue({**task, "priority": after}, end, before, after)
