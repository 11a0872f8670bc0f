"""Required code bindings: the table resolves against the models, bad codes are named at their exact path
(nested backbone elements, datatypes, repeating codes, CodeableConcepts), and non-required bindings stay open."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from carepath.errors import InvalidResource
from carepath.fhir.bindings import REQUIRED_BINDINGS
from carepath.fhir.elements import resolve_path
from carepath.fhir.validation import validate_resource

CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"

Build = Callable[[Any], dict[str, Any]]


def expressions(resource: dict[str, Any]) -> list[str]:
    with pytest.raises(InvalidResource) as caught:
        validate_resource(resource)
    return [issue.expression[0] for issue in caught.value.issues()]


def task(**elements: Any) -> dict[str, Any]:
    return {"resourceType": "Task", "status": "requested", "intent": "order", **elements}


def plan(action: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "PlanDefinition", "status": "draft", "action": [{"title": "outer", "action": [action]}]}


def request_group(action: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "RequestGroup", "status": "active", "intent": "plan", "action": [action]}


def timing(repeat: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "MedicationRequest", "status": "active", "intent": "order",
        "medicationCodeableConcept": {"text": "a medication"}, "subject": {"reference": "Patient/p1"},
        "dosageInstruction": [{"text": "as told", "timing": {"repeat": repeat}}],
    }  # fmt: skip


def patient(**elements: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", **elements}


# (builder taking a code, a valid code, the expression a bad code must be reported at)
CASES: dict[str, tuple[Build, str, str]] = {
    "Task.status": (lambda c: task(status=c), "in-progress", "Task.status"),
    "Task.intent": (lambda c: task(intent=c), "unknown", "Task.intent"),
    "Task.priority": (lambda c: task(priority=c), "asap", "Task.priority"),
    "PlanDefinition.status": (
        lambda c: {"resourceType": "PlanDefinition", "status": c}, "active", "PlanDefinition.status"
    ),
    "PlanDefinition.action.selectionBehavior": (
        lambda c: plan({"selectionBehavior": c}), "exactly-one", "PlanDefinition.action[0].action[0].selectionBehavior"
    ),
    "PlanDefinition.action.relatedAction.relationship": (
        lambda c: plan({"relatedAction": [{"actionId": "a", "relationship": c}]}),
        "after-end",
        "PlanDefinition.action[0].action[0].relatedAction[0].relationship",
    ),
    "PlanDefinition.action.condition.kind": (
        lambda c: plan({"condition": [{"kind": c, "expression": {"language": "text/fhirpath", "expression": "true"}}]}),
        "applicability",
        "PlanDefinition.action[0].action[0].condition[0].kind",
    ),
    "PlanDefinition.action.participant.type": (
        lambda c: plan({"participant": [{"type": c}]}),
        "practitioner",
        "PlanDefinition.action[0].action[0].participant[0].type",
    ),
    "RequestGroup.action.groupingBehavior": (
        lambda c: request_group({"groupingBehavior": c}), "logical-group", "RequestGroup.action[0].groupingBehavior"
    ),
    "RequestGroup.action.cardinalityBehavior": (
        lambda c: request_group({"cardinalityBehavior": c}), "multiple", "RequestGroup.action[0].cardinalityBehavior"
    ),
    "ActivityDefinition.kind": (
        lambda c: {"resourceType": "ActivityDefinition", "status": "active", "kind": c},
        "Task",
        "ActivityDefinition.kind",
    ),
    "CarePlan.activity.detail.status": (
        lambda c: {"resourceType": "CarePlan", "status": "active", "intent": "plan",
                   "subject": {"reference": "Patient/p"}, "activity": [{"detail": {"status": c}}]},
        "scheduled",
        "CarePlan.activity[0].detail.status",
    ),
    "Questionnaire.item.type": (
        lambda c: {"resourceType": "Questionnaire", "status": "active",
                   "item": [{"linkId": "g", "type": "group", "item": [{"linkId": "q", "type": c}]}]},
        "open-choice",
        "Questionnaire.item[0].item[0].type",
    ),
    "Observation.status": (
        lambda c: {"resourceType": "Observation", "status": c, "code": {"text": "x"}}, "amended", "Observation.status"
    ),
    "Goal.lifecycleStatus": (
        lambda c: {"resourceType": "Goal", "lifecycleStatus": c, "description": {"text": "walk"},
                   "subject": {"reference": "Patient/p"}},
        "on-hold",
        "Goal.lifecycleStatus",
    ),
    "Subscription.channel.type": (
        lambda c: {"resourceType": "Subscription", "status": "requested", "reason": "r", "criteria": "Task?",
                   "channel": {"type": c}},
        "rest-hook",
        "Subscription.channel.type",
    ),
    "Patient.gender": (lambda c: patient(gender=c), "unknown", "Patient.gender"),
    "AuditEvent.outcome": (
        lambda c: {"resourceType": "AuditEvent", "type": {"code": "rest"}, "recorded": "2024-01-01T00:00:00Z",
                   "outcome": c, "agent": [{"requestor": True}], "source": {"observer": {"display": "x"}}},
        "8",
        "AuditEvent.outcome",
    ),
    "PractitionerRole.availableTime.daysOfWeek": (
        lambda c: {"resourceType": "PractitionerRole", "availableTime": [{"daysOfWeek": ["mon", c]}]},
        "sun",
        "PractitionerRole.availableTime[0].daysOfWeek[1]",
    ),
    # Datatypes, wherever they occur.
    "Quantity.comparator": (
        lambda c: {"resourceType": "Observation", "status": "final", "code": {"text": "x"},
                   "valueQuantity": {"value": 5, "comparator": c}},
        ">=",
        "Observation.valueQuantity.comparator",
    ),
    "Quantity.comparator (as Duration)": (
        lambda c: plan({"timingDuration": {"value": 3, "comparator": c}}),
        "<",
        "PlanDefinition.action[0].action[0].timingDuration.comparator",
    ),
    "Quantity.comparator (in an extension)": (
        lambda c: task(extension=[{"url": "https://x.test/e", "valueQuantity": {"value": 1, "comparator": c}}]),
        "<=",
        "Task.extension[0].valueQuantity.comparator",
    ),
    "Narrative.status": (
        lambda c: task(text={"status": c, "div": '<div xmlns="http://www.w3.org/1999/xhtml">t</div>'}),
        "generated",
        "Task.text.status",
    ),
    "Identifier.use": (lambda c: task(identifier=[{"use": c, "value": "1"}]), "official", "Task.identifier[0].use"),
    "Identifier.use (in a Reference)": (
        lambda c: task(owner={"identifier": {"use": c, "value": "1"}}), "temp", "Task.owner.identifier.use"
    ),
    "HumanName.use": (lambda c: patient(name=[{"use": c, "family": "Doe"}]), "maiden", "Patient.name[0].use"),
    "ContactPoint.system": (
        lambda c: patient(telecom=[{"system": c, "value": "1"}]), "sms", "Patient.telecom[0].system"
    ),
    "Address.type": (lambda c: patient(address=[{"type": c, "city": "Lyon"}]), "both", "Patient.address[0].type"),
    "Timing.repeat.periodUnit": (
        lambda c: timing({"period": 1, "periodUnit": c}),
        "wk",
        "MedicationRequest.dosageInstruction[0].timing.repeat.periodUnit",
    ),
    "Timing.repeat.when": (
        lambda c: timing({"when": ["MORN", c]}), "PCV", "MedicationRequest.dosageInstruction[0].timing.repeat.when[1]"
    ),
    "RelatedArtifact.type": (
        lambda c: {"resourceType": "Library", "status": "draft", "type": {"text": "logic"},
                   "relatedArtifact": [{"type": c}]},
        "depends-on",
        "Library.relatedArtifact[0].type",
    ),
    "TriggerDefinition.type": (
        lambda c: plan({"trigger": [{"type": c, "name": "go"}]}),
        "named-event",
        "PlanDefinition.action[0].action[0].trigger[0].type",
    ),
    "Practitioner.gender (contained)": (
        lambda c: task(contained=[{"resourceType": "Practitioner", "id": "pr", "gender": c}]),
        "female",
        "Task.contained[0].gender",
    ),
}  # fmt: skip


def test_every_binding_path_resolves_to_an_element_of_the_r4_models() -> None:
    for path, binding in REQUIRED_BINDINGS.items():
        resolve_path(path)
        assert binding.codes, path


@pytest.mark.parametrize("case", list(CASES))
def test_a_code_from_the_value_set_is_accepted(case: str) -> None:
    build, good, _ = CASES[case]
    validate_resource(build(good))


@pytest.mark.parametrize("case", list(CASES))
def test_a_code_outside_the_value_set_is_named_at_its_path(case: str) -> None:
    build, _, expression = CASES[case]
    assert expressions(build("bogus")) == [expression]


def test_the_diagnostics_name_the_value_set_and_the_code() -> None:
    with pytest.raises(InvalidResource) as caught:
        validate_resource(task(status="bogus"))
    assert "'bogus'" in caught.value.diagnostics
    assert "http://hl7.org/fhir/ValueSet/task-status" in caught.value.diagnostics


@pytest.mark.parametrize(
    ("build", "code"),
    [
        (lambda c: task(intent=c), "directive"),  # TaskIntent leaves "directive" out
        (lambda c: {"resourceType": "CarePlan", "status": "active", "intent": c, "subject": {"reference": "P/1"}},
         "directive"),
        (lambda c: {"resourceType": "Questionnaire", "status": "active", "item": [{"linkId": "q", "type": c}]},
         "question"),  # abstract code
        (lambda c: {"resourceType": "Observation", "status": c, "code": {"text": "x"}}, "Final"),  # case matters
    ],
)  # fmt: skip
def test_codes_valid_elsewhere_are_refused_where_the_value_set_excludes_them(build: Build, code: str) -> None:
    assert len(expressions(build(code))) == 1


def test_request_intent_allows_directive_on_service_requests() -> None:
    validate_resource(
        {"resourceType": "ServiceRequest", "status": "active", "intent": "directive", "subject": {"reference": "P/1"}}
    )


def condition(**elements: Any) -> dict[str, Any]:
    return {"resourceType": "Condition", "subject": {"reference": "Patient/p"}, **elements}


def test_a_codeable_concept_binding_accepts_a_coding_from_the_set_beside_other_codings() -> None:
    status = {
        "coding": [{"system": "https://other.test/cs", "code": "whatever"}, {"system": CLINICAL, "code": "remission"}]
    }
    validate_resource(
        condition(clinicalStatus=status, verificationStatus={"coding": [{"system": VERIFICATION, "code": "confirmed"}]})
    )


def test_a_bad_code_in_the_bound_system_is_named_at_the_coding() -> None:
    status = {"coding": [{"system": "https://other.test/cs", "code": "x"}, {"system": CLINICAL, "code": "cured"}]}
    assert expressions(condition(clinicalStatus=status)) == ["Condition.clinicalStatus.coding[1].code"]


def test_a_codeable_concept_without_a_coding_from_the_bound_system_is_refused() -> None:
    assert expressions(condition(verificationStatus={"text": "confirmed"})) == ["Condition.verificationStatus"]
    other = {"coding": [{"system": "https://other.test/cs", "code": "active"}]}
    assert expressions(condition(clinicalStatus=other)) == ["Condition.clinicalStatus"]


@pytest.mark.parametrize(
    "resource",
    [
        # extensible / preferred / example bindings accept any code
        condition(category=[{"coding": [{"system": "https://other.test/cs", "code": "anything"}]}]),
        task(code={"coding": [{"system": "https://other.test/cs", "code": "any"}]}, businessStatus={"text": "odd"}),
        {"resourceType": "Observation", "status": "final", "code": {"text": "x"},
         "interpretation": [{"coding": [{"system": "https://other.test/cs", "code": "Z"}]}]},
        # Expression.language is extensible in R4 (required only from R5)
        plan({"condition": [{"kind": "start", "expression": {"language": "text/x-custom", "expression": "1"}}]}),
        # primitive extensions carry no code; the element's value may be absent
        task(_priority={"extension": [{"url": "https://x.test/e", "valueString": "n/a"}]}),
        # Attachment.contentType (mime types) and DataRequirement.type are not checked
        {"resourceType": "Library", "status": "draft", "type": {"text": "logic"},
         "content": [{"contentType": "text/x-anything"}], "dataRequirement": [{"type": "Observation"}]},
    ],
)  # fmt: skip
def test_elements_without_a_required_binding_accept_other_codes(resource: dict[str, Any]) -> None:
    validate_resource(resource)


def test_codesystem_content_mode_is_a_required_binding() -> None:
    resource = {"resourceType": "CodeSystem", "status": "active", "content": "everything"}
    with pytest.raises(InvalidResource) as caught:
        validate_resource(resource)
    assert [i.expression for i in caught.value.issues()] == [("CodeSystem.content",)]
    validate_resource({**resource, "content": "complete"})
