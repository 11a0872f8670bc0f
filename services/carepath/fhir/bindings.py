"""Required code bindings of FHIR R4 (4.0.1) for the resource types carepath serves, and the datatypes they use.

fhir.resources checks structure and types but not bindings (it accepts Task.status = "bogus"), so we carry the
**required** bindings ourselves (http://hl7.org/fhir/R4/terminologies.html#required). Only bindings whose
strength is "required" in R4 are listed: extensible/preferred/example ones must accept other codes. Left out on
purpose, because their value sets are unbounded or enormous: MimeTypes (Attachment.contentType,
Subscription.channel.payload, Signature.*Format), Currencies (Money.currency), FHIRAllTypes / ResourceType
(DataRequirement.type, ParameterDefinition.type, Questionnaire.subjectType). Expression.language is extensible
in R4 (required only from R5 on), so it is not here either.

Paths are FHIR element paths without indexes; a datatype path ("Quantity.comparator") applies wherever that
datatype (or a profile of it: Duration, Age, Count, Distance) occurs.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Binding:
    value_set: str  # canonical URL, named in diagnostics
    codes: frozenset[str]
    system: str | None = None  # set for CodeableConcept bindings: the code system whose codings must be in `codes`


def _vs(name: str, codes: str, system: str | None = None) -> Binding:
    return Binding(f"http://hl7.org/fhir/ValueSet/{name}", frozenset(codes.split()), system)


_TERMINOLOGY = "http://terminology.hl7.org/CodeSystem/"

PUBLICATION_STATUS = _vs("publication-status", "draft active retired unknown")
REQUEST_STATUS = _vs("request-status", "draft active on-hold revoked completed entered-in-error unknown")
REQUEST_INTENT = _vs(
    "request-intent", "proposal plan directive order original-order reflex-order filler-order instance-order option"
)
REQUEST_PRIORITY = _vs("request-priority", "routine urgent asap stat")
EVENT_STATUS = _vs(
    "event-status", "preparation in-progress not-done on-hold stopped completed entered-in-error unknown"
)
ADMINISTRATIVE_GENDER = _vs("administrative-gender", "male female other unknown")
DAYS_OF_WEEK = _vs("days-of-week", "mon tue wed thu fri sat sun")
ACTION_CONDITION_KIND = _vs("action-condition-kind", "applicability start stop")
ACTION_RELATIONSHIP = _vs(
    "action-relationship-type",
    "before-start before before-end concurrent-with-start concurrent concurrent-with-end after-start after after-end",
)
ACTION_PARTICIPANT_TYPE = _vs("action-participant-type", "patient practitioner related-person device")
GROUPING_BEHAVIOR = _vs("action-grouping-behavior", "visual-group logical-group sentence-group")
SELECTION_BEHAVIOR = _vs("action-selection-behavior", "any all all-or-none exactly-one at-most-one one-or-more")
REQUIRED_BEHAVIOR = _vs("action-required-behavior", "must could must-unless-documented")
PRECHECK_BEHAVIOR = _vs("action-precheck-behavior", "yes no")
CARDINALITY_BEHAVIOR = _vs("action-cardinality-behavior", "single multiple")
UNITS_OF_TIME = _vs("units-of-time", "s min h d wk mo a")

# Action behaviours shared by PlanDefinition.action and RequestGroup.action.
_ACTION_BEHAVIOURS = {
    "priority": REQUEST_PRIORITY,
    "condition.kind": ACTION_CONDITION_KIND,
    "relatedAction.relationship": ACTION_RELATIONSHIP,
    "groupingBehavior": GROUPING_BEHAVIOR,
    "selectionBehavior": SELECTION_BEHAVIOR,
    "requiredBehavior": REQUIRED_BEHAVIOR,
    "precheckBehavior": PRECHECK_BEHAVIOR,
    "cardinalityBehavior": CARDINALITY_BEHAVIOR,
}

_DATATYPES: dict[str, Binding] = {
    "Narrative.status": _vs("narrative-status", "generated extensions additional empty"),
    "Identifier.use": _vs("identifier-use", "usual official temp secondary old"),
    "HumanName.use": _vs("name-use", "usual official temp nickname anonymous old maiden"),
    "ContactPoint.system": _vs("contact-point-system", "phone fax email pager url sms other"),
    "ContactPoint.use": _vs("contact-point-use", "home work temp old mobile"),
    "Address.use": _vs("address-use", "home work temp old billing"),
    "Address.type": _vs("address-type", "postal physical both"),
    "Quantity.comparator": _vs("quantity-comparator", "< <= >= >"),
    "Timing.repeat.durationUnit": UNITS_OF_TIME,
    "Timing.repeat.periodUnit": UNITS_OF_TIME,
    "Timing.repeat.dayOfWeek": DAYS_OF_WEEK,
    # EventTiming: its own codes plus the v3 TimingEvent codes (all of them, IC* included, to never reject a
    # code the value set may hold).
    "Timing.repeat.when": _vs(
        "event-timing",
        "MORN MORN.early MORN.late NOON AFT AFT.early AFT.late EVE EVE.early EVE.late NIGHT PHS "
        "HS WAKE C CM CD CV AC ACM ACD ACV PC PCM PCD PCV IC ICM ICD ICV",
    ),
    "RelatedArtifact.type": _vs(
        "related-artifact-type",
        "documentation justification citation predecessor successor derived-from depends-on composed-of",
    ),
    "TriggerDefinition.type": _vs(
        "trigger-type",
        "named-event periodic data-changed data-added data-modified data-removed data-accessed data-access-ended",
    ),
    "DataRequirement.sort.direction": _vs("sort-direction", "ascending descending"),
    "ParameterDefinition.use": _vs("operation-parameter-use", "in out"),
    "Contributor.type": _vs("contributor-type", "author editor reviewer endorser"),
}

_RESOURCES: dict[str, Binding] = {
    "PlanDefinition.status": PUBLICATION_STATUS,
    **{f"PlanDefinition.action.{path}": binding for path, binding in _ACTION_BEHAVIOURS.items()},
    "PlanDefinition.action.participant.type": ACTION_PARTICIPANT_TYPE,
    "ActivityDefinition.status": PUBLICATION_STATUS,
    "ActivityDefinition.kind": _vs(
        "request-resource-types",
        "Appointment AppointmentResponse CarePlan Claim CommunicationRequest Contract DeviceRequest "
        "EnrollmentRequest ImmunizationRecommendation MedicationRequest NutritionOrder ServiceRequest "
        "SupplyRequest Task VisionPrescription",
    ),
    "ActivityDefinition.intent": REQUEST_INTENT,
    "ActivityDefinition.priority": REQUEST_PRIORITY,
    "ActivityDefinition.participant.type": ACTION_PARTICIPANT_TYPE,
    "Library.status": PUBLICATION_STATUS,
    "CodeSystem.status": PUBLICATION_STATUS,
    "CodeSystem.hierarchyMeaning": _vs("codesystem-hierarchy-meaning", "grouped-by is-a part-of classified-with"),
    "CodeSystem.content": _vs("codesystem-content-mode", "not-present example fragment complete supplement"),
    "CodeSystem.filter.operator": _vs(
        "filter-operator", "= is-a descendent-of is-not-a regex in not-in generalizes exists"
    ),
    "CodeSystem.property.type": _vs("concept-property-type", "code Coding string integer boolean dateTime decimal"),
    "Questionnaire.status": PUBLICATION_STATUS,
    # "question" is an abstract code of the item-type system: not selectable.
    "Questionnaire.item.type": _vs(
        "item-type",
        "group display boolean decimal integer date dateTime time string text url choice open-choice attachment "
        "reference quantity",
    ),
    "Questionnaire.item.enableWhen.operator": _vs("questionnaire-enable-operator", "exists = != > < >= <="),
    "Questionnaire.item.enableBehavior": _vs("questionnaire-enable-behavior", "all any"),
    "CarePlan.status": REQUEST_STATUS,
    "CarePlan.intent": _vs("care-plan-intent", "proposal plan order option"),
    "CarePlan.activity.detail.kind": _vs(
        "care-plan-activity-kind",
        "Appointment CommunicationRequest DeviceRequest MedicationRequest NutritionOrder Task ServiceRequest "
        "VisionPrescription",
    ),
    "CarePlan.activity.detail.status": _vs(
        "care-plan-activity-status",
        "not-started scheduled in-progress on-hold completed cancelled stopped unknown entered-in-error",
    ),
    "RequestGroup.status": REQUEST_STATUS,
    "RequestGroup.intent": REQUEST_INTENT,
    "RequestGroup.priority": REQUEST_PRIORITY,
    **{f"RequestGroup.action.{path}": binding for path, binding in _ACTION_BEHAVIOURS.items()},
    "Task.status": _vs(
        "task-status",
        "draft requested received accepted rejected ready cancelled in-progress on-hold failed completed "
        "entered-in-error",
    ),
    # TaskIntent = "unknown" + the request-intent codes except "directive".
    "Task.intent": _vs(
        "task-intent", "unknown proposal plan order original-order reflex-order filler-order instance-order option"
    ),
    "Task.priority": REQUEST_PRIORITY,
    "ServiceRequest.status": REQUEST_STATUS,
    "ServiceRequest.intent": REQUEST_INTENT,
    "ServiceRequest.priority": REQUEST_PRIORITY,
    "CommunicationRequest.status": REQUEST_STATUS,
    "CommunicationRequest.priority": REQUEST_PRIORITY,
    "Communication.status": EVENT_STATUS,
    "Communication.priority": REQUEST_PRIORITY,
    "Goal.lifecycleStatus": _vs(
        "goal-status", "proposed planned accepted active on-hold completed cancelled entered-in-error rejected"
    ),
    "Patient.gender": ADMINISTRATIVE_GENDER,
    "Patient.contact.gender": ADMINISTRATIVE_GENDER,
    "Patient.link.type": _vs("link-type", "replaced-by replaces refer seealso"),
    "Practitioner.gender": ADMINISTRATIVE_GENDER,
    "PractitionerRole.availableTime.daysOfWeek": DAYS_OF_WEEK,
    "CareTeam.status": _vs("care-team-status", "proposed active suspended inactive entered-in-error"),
    "Condition.clinicalStatus": _vs(
        "condition-clinical",
        "active recurrence relapse inactive remission resolved",
        f"{_TERMINOLOGY}condition-clinical",
    ),
    "Condition.verificationStatus": _vs(
        "condition-ver-status",
        "unconfirmed provisional differential confirmed refuted entered-in-error",
        f"{_TERMINOLOGY}condition-ver-status",
    ),
    "Observation.status": _vs(
        "observation-status", "registered preliminary final amended corrected cancelled entered-in-error unknown"
    ),
    "MedicationRequest.status": _vs(
        "medicationrequest-status", "active on-hold cancelled completed entered-in-error stopped draft unknown"
    ),
    "MedicationRequest.intent": _vs(
        "medicationrequest-intent",
        "proposal plan order original-order reflex-order filler-order instance-order option",
    ),
    "MedicationRequest.priority": REQUEST_PRIORITY,
    "MedicationAdministration.status": _vs(
        "medication-admin-status", "in-progress not-done on-hold completed entered-in-error stopped unknown"
    ),
    "Procedure.status": EVENT_STATUS,
    "Provenance.entity.role": _vs("provenance-entity-role", "derivation revision quotation source removal"),
    "AuditEvent.action": _vs("audit-event-action", "C R U D E"),
    "AuditEvent.outcome": _vs("audit-event-outcome", "0 4 8 12"),
    "AuditEvent.agent.network.type": _vs("network-type", "1 2 3 4 5"),
    "Subscription.status": _vs("subscription-status", "requested active error off"),
    "Subscription.channel.type": _vs("subscription-channel-type", "rest-hook websocket email sms message"),
}

REQUIRED_BINDINGS: dict[str, Binding] = {**_DATATYPES, **_RESOURCES}
