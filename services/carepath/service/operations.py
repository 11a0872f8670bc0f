"""The operations this server implements; the CapabilityStatement and the router read this one registry."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class OperationDef:
    name: str  # without "$"
    definition: str
    resource_types: tuple[str, ...]
    instance: bool
    type_level: bool


APPLY_PLAN = OperationDef("apply", "http://hl7.org/fhir/OperationDefinition/PlanDefinition-apply",
                          ("PlanDefinition",), instance=True, type_level=True)  # fmt: skip
APPLY_ACTIVITY = OperationDef("apply", "http://hl7.org/fhir/OperationDefinition/ActivityDefinition-apply",
                              ("ActivityDefinition",), instance=True, type_level=True)  # fmt: skip
DATA_REQUIREMENTS = OperationDef("data-requirements", "http://hl7.org/fhir/OperationDefinition/PlanDefinition-data-requirements",
                                 ("PlanDefinition",), instance=True, type_level=False)  # fmt: skip
# System level (no resource types): GET [base]/$versions.
VERSIONS = OperationDef("versions", "http://hl7.org/fhir/OperationDefinition/CapabilityStatement-versions",
                        (), instance=False, type_level=False)  # fmt: skip
SUBSCRIPTION_STATUS = OperationDef(
    "status", "http://hl7.org/fhir/uv/subscriptions-backport/OperationDefinition/backport-subscription-status",
    ("Subscription",), instance=True, type_level=False,
)  # fmt: skip
SUBSCRIPTION_RESEND = OperationDef("resend", "https://fhir.carepath.dev/OperationDefinition/Subscription-resend",
                                   ("Subscription",), instance=True, type_level=False)  # fmt: skip
OPERATIONS: tuple[OperationDef, ...] = (
    APPLY_PLAN, APPLY_ACTIVITY, DATA_REQUIREMENTS, SUBSCRIPTION_STATUS, SUBSCRIPTION_RESEND, VERSIONS,
)  # fmt: skip
