"""The pathway's stop rules (clinical spec §4.2, "Stop rules"), as pure functions over Tasks and one new event.

- Death (Patient.deceased[x], or a statusReason 419620001) cancels every open Task.
- Refusal of treatment by the patient (statusReason 105480006) puts the therapy-assessment Tasks (S14-S18) on
  hold and leaves supportive care, the RCP and the GP notifications running.
- A disease status of "improved" (268910001) or "stable" (359746009) changes nothing: it asks the care
  coordinator to review the plan, because stopping work is a clinician's decision.

The caller passes the Tasks of the event's patient, applies the returned changes through the Task state machine,
and turns `notify_coordinator` into whatever notification it uses.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from carepath.content import codes

Resource = dict[str, Any]
Lookup = Callable[[str], Resource | None]
Rule = Literal["death", "refusal", "disease-status-review"]

OPEN_STATUSES = frozenset({"draft", "requested", "received", "accepted", "ready", "in-progress", "on-hold"})
USABLE_OBSERVATION = frozenset({"final", "amended", "corrected"})

# §2: the codes of S14 (any surgeon variant), S15, S16, S17 and S18, on the request or on the bare Task.
THERAPY_ASSESSMENT_CODES = frozenset(
    {
        (codes.SNOMED, "183541002"),
        (codes.SNOMED, "306313008"),
        (codes.SNOMED, "306318004"),
        (codes.SNOMED, "306256000"),
        (codes.LOCAL, "immunotherapy-eligibility-review"),
        (codes.LOCAL, "targeted-therapy-review"),
        (codes.LOCAL, "clinical-trial-screening"),
    }
)


@dataclass(frozen=True)
class TaskChange:
    """Move `task` (a `Task/<id>` reference) to `status`, recording why in Task.statusReason."""

    task: str
    status: str
    reason: str
    reason_code: str

    def status_reason(self) -> Resource:
        return {"coding": [{"system": codes.SNOMED, "code": self.reason_code}], "text": self.reason}


@dataclass(frozen=True)
class StopRuleOutcome:
    rule: Rule | None
    changes: tuple[TaskChange, ...] = ()
    notify_coordinator: str | None = None


def _codings(concepts: Iterable[Any]) -> set[tuple[str, str]]:
    return {
        (c.get("system", ""), c.get("code", ""))
        for concept in concepts
        if isinstance(concept, dict)
        for c in concept.get("coding", [])
    }


def _status_reasons(event: Resource) -> set[tuple[str, str]]:
    reason = event.get("statusReason")
    return _codings(reason if isinstance(reason, list) else [reason])


def _is_death(event: Resource) -> bool:
    if event.get("resourceType") == "Patient" and (event.get("deceasedBoolean") or event.get("deceasedDateTime")):
        return True
    return (codes.SNOMED, codes.DEATH) in _status_reasons(event)


def _disease_status_trend(event: Resource) -> str | None:
    """The trend code of a usable cancer disease status Observation (97509-4), else None."""
    if event.get("resourceType") != "Observation" or event.get("status") not in USABLE_OBSERVATION:
        return None
    if (codes.LOINC, codes.DISEASE_STATUS) not in _codings([event.get("code")]):
        return None
    trends = _codings([event.get("valueCodeableConcept")])
    return next((code for system, code in trends if system == codes.SNOMED), None)


def is_therapy_assessment(task: Resource, lookup: Lookup | None = None) -> bool:
    """True for S14-S18: by the Task's own code, or by the code of the request it fulfils (Task.focus)."""
    concepts = [task.get("code")]
    focus = (task.get("focus") or {}).get("reference")
    if lookup is not None and isinstance(focus, str):
        request = lookup(focus)
        concepts.append((request or {}).get("code"))
    return bool(_codings(concepts) & THERAPY_ASSESSMENT_CODES)


def _open(tasks: Sequence[Resource]) -> list[Resource]:
    return [task for task in tasks if task.get("status") in OPEN_STATUSES]


def _change(task: Resource, status: str, reason: str, code: str) -> TaskChange:
    return TaskChange(f"Task/{task['id']}", status, reason, code)


def evaluate_stop_rules(tasks: Sequence[Resource], event: Resource, lookup: Lookup | None = None) -> StopRuleOutcome:
    """The Task changes (and coordinator notice) that `event` calls for; an unrelated event changes nothing."""
    if _is_death(event):
        changes = tuple(_change(t, "cancelled", "Patient died", codes.DEATH) for t in _open(tasks))
        return StopRuleOutcome("death", changes)
    if (codes.SNOMED, codes.PATIENT_REFUSAL) in _status_reasons(event):
        suspended = [t for t in _open(tasks) if t.get("status") != "on-hold" and is_therapy_assessment(t, lookup)]
        reason = "Treatment refused by the patient"
        changes = tuple(_change(t, "on-hold", reason, codes.PATIENT_REFUSAL) for t in suspended)
        return StopRuleOutcome("refusal", changes)
    trend = _disease_status_trend(event)
    if trend in (codes.IMPROVED, codes.STABLE):
        word = "improved" if trend == codes.IMPROVED else "stable"
        notice = f"Disease status is now {word}: review whether the open pathway tasks are still needed."
        return StopRuleOutcome("disease-status-review", notify_coordinator=notice)
    return StopRuleOutcome(None)
