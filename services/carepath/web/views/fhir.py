"""Small readers of the FHIR JSON the pages show (Tasks, Patients, carepath's extensions)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from carepath.canonical import extension_url

Resource = dict[str, Any]

GENERATED_BY = extension_url("generated-by")
WAITS_FOR = extension_url("task-waits-for")
# R4 task-status codes that end a Task's life, and the ones still to be worked on.
FINAL = frozenset({"completed", "cancelled", "failed", "rejected", "entered-in-error"})
OPEN = ("draft", "requested", "received", "accepted", "ready", "in-progress", "on-hold")


def parse_instant(value: object) -> datetime | None:
    """A FHIR dateTime/instant as an aware datetime (a bare date is its midnight UTC); None if absent or bad."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def due(task: Resource) -> datetime | None:
    """carepath's due date of a Task: `restriction.period.end` (the `due-date` search parameter)."""
    return parse_instant(((task.get("restriction") or {}).get("period") or {}).get("end"))


def ended(task: Resource) -> str | None:
    """`done` for a completed Task, `closed` for any other final status, None while it is still work to do."""
    status = task.get("status")
    if status == "completed":
        return "done"
    return "closed" if status in FINAL else None


def started(task: Resource) -> datetime | None:
    period = (task.get("restriction") or {}).get("period") or {}
    return parse_instant(period.get("start")) or parse_instant(task.get("authoredOn"))


def label(task: Resource) -> str:
    code = task.get("code") or {}
    coding = (code.get("coding") or [{}])[0]
    return str(task.get("description") or code.get("text") or coding.get("display") or f"Task/{task.get('id')}")


def generated_by(resource: Resource, part: str) -> list[str]:
    """The values of one part (`actionId`, `actionTitle`, `condition`, `plan`) of the `generated-by` extension."""
    return [
        str(sub.get("valueString") or sub.get("valueCanonical"))
        for ext in resource.get("extension", [])
        if ext.get("url") == GENERATED_BY
        for sub in ext.get("extension", [])
        if sub.get("url") == part and (sub.get("valueString") or sub.get("valueCanonical"))
    ]


def waits_for(task: Resource) -> list[str]:
    """The `Task/<id>` references of the `task-waits-for` extensions."""
    return [
        str(ext["valueReference"]["reference"])
        for ext in task.get("extension", [])
        if ext.get("url") == WAITS_FOR and isinstance((ext.get("valueReference") or {}).get("reference"), str)
    ]


def reference_id(reference: object, res_type: str) -> str | None:
    """`Patient/P01` -> `P01` for the given type (None for another type or no reference)."""
    ref = reference.get("reference") if isinstance(reference, dict) else None
    if isinstance(ref, str) and ref.startswith(f"{res_type}/"):
        return ref.split("/")[1]
    return None


def patient_name(patient: Resource | None) -> str:
    """`Family, Given` from the first HumanName (its text if that is all there is)."""
    if not patient:
        return ""
    for name in patient.get("name", []):
        family, given = name.get("family") or "", " ".join(name.get("given", []))
        text = ", ".join(p for p in (family.upper() if family else "", given) if p)
        return text or str(name.get("text") or "")
    return str(patient.get("id", ""))


def practitioner_name(practitioner: Resource | None) -> str:
    if not practitioner:
        return ""
    for name in practitioner.get("name", []):
        text = name.get("text") or " ".join([*name.get("prefix", []), *name.get("given", []), name.get("family", "")])
        if text.strip():
            return str(text).strip()
    return str(practitioner.get("id", ""))


def concept_text(concept: object) -> str:
    if not isinstance(concept, dict):
        return ""
    coding = (concept.get("coding") or [{}])[0]
    return str(concept.get("text") or coding.get("display") or coding.get("code") or "")


def role_tokens(task: Resource) -> list[str]:
    """`system|code` of every coded performerType (what `Task?performer=` searches)."""
    return [
        f"{c['system']}|{c['code']}"
        for concept in task.get("performerType", [])
        for c in concept.get("coding", [])
        if c.get("system") and c.get("code")
    ]
