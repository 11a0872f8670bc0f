"""Which resources a `patient/` scope reaches: R4's Patient compartment, plus Task when Task.for is the patient.

The membership table is R4's CompartmentDefinition `patient` (hl7.org/fhir/R4/compartmentdefinition-patient),
narrowed to the types this server stores and to the search parameters it indexes; membership is then decided
with the same extraction the search index uses, so "in the compartment" means exactly what a search would find.
Task is not in R4's compartment; the issue adds it through `Task.for` (the `patient` parameter).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from carepath.fhir.search.definitions import params_for
from carepath.fhir.search.extract import extract_index

# R4 CompartmentDefinition patient: resource type -> its parameters (only those of types carepath serves).
_R4_PATIENT_COMPARTMENT: Mapping[str, tuple[str, ...]] = {
    "AuditEvent": ("patient",),
    "CarePlan": ("patient", "performer"),
    "CareTeam": ("patient", "participant"),
    "Communication": ("subject", "sender", "recipient"),
    "CommunicationRequest": ("subject", "sender", "recipient", "requester"),
    "Condition": ("patient", "asserter"),
    "Goal": ("patient",),
    "MedicationAdministration": ("patient", "performer", "subject"),
    "MedicationRequest": ("subject",),
    "Observation": ("subject", "performer"),
    "Patient": ("link",),
    "Procedure": ("patient", "performer"),
    "Provenance": ("patient",),
    "RequestGroup": ("subject", "participant"),
    "ServiceRequest": ("subject", "performer"),
}
_EXTRA = {"Task": ("patient",)}  # not in R4's compartment; issue 13 adds it

# Definitions are not patient data: readable with any read scope.
DEFINITION_TYPES = frozenset({"PlanDefinition", "ActivityDefinition", "Library", "Questionnaire", "CodeSystem"})


def _indexed(table: Mapping[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
    return {t: tuple(p for p in params if p in params_for(t)) for t, params in table.items()}


COMPARTMENT_PARAMS: Mapping[str, tuple[str, ...]] = {**_indexed(_R4_PATIENT_COMPARTMENT), **_indexed(_EXTRA)}


def in_compartment(res_type: str) -> bool:
    """Whether a `patient/` scope can reach resources of this type at all."""
    return res_type in COMPARTMENT_PARAMS


def restriction(res_type: str, patient_id: str) -> tuple[str, str]:
    """The search criterion that keeps a search inside the compartment (narrower than the OR of all its
    parameters, never wider): `_id` for Patient, else the first compartment parameter."""
    if res_type == "Patient":
        return ("_id", patient_id)
    return (COMPARTMENT_PARAMS[res_type][0], f"Patient/{patient_id}")


def belongs_to(resource: Mapping[str, Any], patient_id: str) -> bool:
    """Whether this resource is in the patient's compartment (or is a Task for the patient)."""
    res_type = resource.get("resourceType")
    if not isinstance(res_type, str) or res_type not in COMPARTMENT_PARAMS:
        return False
    if res_type == "Patient" and resource.get("id") == patient_id:
        return True
    return patient_id in patients_of(resource, COMPARTMENT_PARAMS[res_type])


def patients_of(resource: Mapping[str, Any], params: tuple[str, ...] | None = None) -> set[str]:
    """The ids of the patients a resource belongs to through the given (default: its compartment) parameters."""
    res_type = str(resource.get("resourceType", ""))
    if res_type == "Patient":
        return {str(resource["id"])} if isinstance(resource.get("id"), str) else set()
    wanted = params if params is not None else COMPARTMENT_PARAMS.get(res_type, ())
    if not wanted:
        return set()
    return {
        row.target_id
        for row in extract_index(dict(resource)).references
        if row.param in wanted and row.target_type == "Patient" and row.target_id
    }
