"""Which resource types carepath serves, and their R4 models (fhir.resources.R4B carries R4 content)."""

from __future__ import annotations

from functools import cache
from typing import Any

from fhir.resources.R4B import get_fhir_model_class

SUPPORTED_TYPES: tuple[str, ...] = (
    "PlanDefinition", "ActivityDefinition", "Library", "Questionnaire", "CodeSystem", "CarePlan", "RequestGroup",
    "Task", "ServiceRequest", "CommunicationRequest", "Communication", "Goal", "Patient", "Practitioner",
    "PractitionerRole", "Organization", "CareTeam", "Condition", "Observation", "MedicationRequest",
    "MedicationAdministration", "Procedure", "Provenance", "AuditEvent", "Subscription",
)  # fmt: skip


def is_supported(resource_type: str) -> bool:
    return resource_type in _SUPPORTED_SET


_SUPPORTED_SET = frozenset(SUPPORTED_TYPES)


@cache
def model_class(resource_type: str) -> Any:
    """The R4B pydantic class for a resource type (also for types we only read, e.g. Bundle)."""
    return get_fhir_model_class(resource_type)
