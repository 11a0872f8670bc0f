"""Small builders for the FHIR resources of a synthetic patient (mCODE shapes, §1 and §5 of the clinical spec).

Every builder takes the reference time `now` so that "5 days ago" stays 5 days ago whenever a test or the demo
runs; nothing here reads the clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from carepath.content import codes

Resource = dict[str, Any]


def coding(system: str, code: str, display: str | None = None) -> dict[str, str]:
    out = {"system": system, "code": code}
    if display:
        out["display"] = display
    return out


def concept(system: str, code: str, display: str | None = None) -> dict[str, Any]:
    return {"coding": [coding(system, code, display)]}


def instant(now: datetime, days_ago: float) -> str:
    """An ISO dateTime `days_ago` days before `now` (seconds precision, offset kept)."""
    return (now - timedelta(days=days_ago)).isoformat(timespec="seconds")


def quantity(value: int | Decimal, unit: str) -> dict[str, Any]:
    return {"value": value, "unit": unit, "system": codes.UCUM, "code": unit}


@dataclass(frozen=True)
class Obs:
    """One Observation to put in a patient's Bundle; `value` is the value[x] element, e.g. {"valueInteger": 1}."""

    system: str
    code: str
    value: dict[str, Any]
    days_ago: float = 0
    status: str = "final"
    components: tuple[dict[str, Any], ...] = ()
    extensions: tuple[dict[str, Any], ...] = ()
    interpretation: dict[str, Any] | None = None
    profile: str | None = None


@dataclass
class PatientBundle:
    """Accumulates the resources of one patient; ids are `<key>-<n>` so that bundles are reproducible."""

    key: str
    label: str
    now: datetime
    entries: list[Resource] = field(default_factory=list)

    @property
    def patient_ref(self) -> str:
        return f"Patient/{self.key}"

    def add(self, resource: Resource) -> str:
        resource_id = f"{self.key}-{len(self.entries)}"
        self.entries.append({"resourceType": resource["resourceType"], "id": resource_id, **resource})
        return f"{resource['resourceType']}/{resource_id}"

    def patient(self) -> str:
        self.entries.append({"resourceType": "Patient", "id": self.key, "name": [{"text": self.label}]})
        return self.patient_ref

    def condition(self, snomed: str, profile: str, related: str | None = None) -> str:
        resource: Resource = {
            "resourceType": "Condition",
            "meta": {"profile": [profile]},
            "clinicalStatus": concept(codes.CONDITION_CLINICAL, "active"),
            "code": concept(codes.SNOMED, snomed, codes.CONDITION_DISPLAY.get(snomed)),
            "subject": {"reference": self.patient_ref},
        }
        if related:
            resource["extension"] = [{"url": codes.CONDITION_RELATED_EXT, "valueReference": {"reference": related}}]
        return self.add(resource)

    def stopped_medication(self, reason: str) -> str:
        # The drug is left as text: the pathway reads only the termination reason (§1.5).
        return self.add(
            {
                "resourceType": "MedicationRequest",
                "meta": {"profile": [codes.MEDICATION_PROFILE]},
                "status": "stopped",
                "statusReason": concept(codes.SNOMED, reason),
                "intent": "order",
                "medicationCodeableConcept": {"text": "Cytotoxic chemotherapy regimen"},
                "subject": {"reference": self.patient_ref},
            }
        )

    def observation(self, obs: Obs, focus: str | None = None) -> str:
        resource: Resource = {"resourceType": "Observation", "status": obs.status}
        if obs.profile:
            resource["meta"] = {"profile": [obs.profile]}
        if obs.extensions:
            resource["extension"] = list(obs.extensions)
        resource["code"] = concept(obs.system, obs.code)
        resource["subject"] = {"reference": self.patient_ref}
        if focus:
            resource["focus"] = [{"reference": focus}]
        resource["effectiveDateTime"] = instant(self.now, obs.days_ago)
        resource.update(obs.value)
        if obs.interpretation:
            resource["interpretation"] = [obs.interpretation]
        if obs.components:
            resource["component"] = list(obs.components)
        return self.add(resource)

    def bundle(self) -> Resource:
        return {
            "resourceType": "Bundle",
            "id": f"sample-{self.key}",
            "type": "collection",
            "timestamp": self.now.isoformat(timespec="seconds"),
            "entry": [{"resource": resource} for resource in self.entries],
        }
