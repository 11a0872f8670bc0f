"""Action processing: definitions, kinds, companion Tasks, nesting, behaviours, goals, explainability."""

from __future__ import annotations

import copy
from datetime import UTC, datetime

import pytest
from engine_support import (
    activity,
    apply,
    by_id,
    condition,
    contained,
    expr,
    extension_values,
    plan,
    request_group,
)

from carepath.canonical import extension_url
from carepath.errors import BusinessRuleViolation, NotSupported

IMAGING = activity("imaging", "ServiceRequest", code={"text": "Restaging CT"}, priority="routine",
                   participant=[{"type": "practitioner", "role": {"text": "radiologist"}}])  # fmt: skip
LETTER = activity("letter", "CommunicationRequest", description="Tell the GP", participant=[{"type": "patient"}])
REVIEW = activity("review", "Task", code={"text": "Review"}, participant=[{"type": "practitioner"}])
DRUG = activity("drug", "MedicationRequest", productCodeableConcept={"text": "Medication 1"})
ALL = [IMAGING, LETTER, REVIEW, DRUG]


def use(ad: dict[str, object], action_id: str, **fields: object) -> dict[str, object]:
    return {"id": action_id, "title": f"Do {action_id}", "definitionCanonical": f"{ad['url']}|1.0.0", **fields}


def test_careplan_and_request_group_shape() -> None:
    result = apply(plan(use(REVIEW, "a")), ALL, encounter="Encounter/e1", practitioner="Practitioner/dr")
    careplan = result.careplan
    assert careplan["status"] == "active" and careplan["intent"] == "plan"
    assert careplan["instantiatesCanonical"] == ["https://fhir.carepath.dev/PlanDefinition/test-plan|2.1.0"]
    assert careplan["created"] == "2024-03-01T09:30:00+00:00"
    assert careplan["subject"] == {"reference": "Patient/p1"} and careplan["author"] == {"reference": "Practitioner/dr"}
    group = request_group(result)
    assert group["status"] == "active" and group["intent"] == "plan"
    assert group["instantiatesCanonical"] == careplan["instantiatesCanonical"]
    (action,) = group["action"]
    assert action["id"] == "a" and action["title"] == "Do a"
    task = by_id(result, action["resource"]["reference"])
    assert task["resourceType"] == "Task" and task["status"] == "requested" and task["intent"] == "order"
    assert task["for"] == {"reference": "Patient/p1"} and task["owner"] == {"reference": "Practitioner/dr"}
    assert task["instantiatesCanonical"] == "https://fhir.carepath.dev/ActivityDefinition/review|1.0.0"
    assert task["basedOn"] == [{"reference": "#"}] and task["encounter"] == {"reference": "Encounter/e1"}


def test_kinds_produce_their_request_and_a_companion_fulfil_task() -> None:
    result = apply(plan(use(IMAGING, "img"), use(LETTER, "gp"), use(DRUG, "med")), ALL, practitioner="Practitioner/dr")
    service = contained(result, "ServiceRequest")[0]
    assert service["code"] == {"text": "Restaging CT"} and service["performerType"] == {"text": "radiologist"}
    assert service["status"] == "active" and service["intent"] == "order"
    letter = contained(result, "CommunicationRequest")[0]
    assert letter["payload"] == [{"contentString": "Tell the GP"}] and letter["recipient"] == [
        {"reference": "Patient/p1"}
    ]
    drug = contained(result, "MedicationRequest")[0]
    assert drug["medicationCodeableConcept"] == {"text": "Medication 1"}
    tasks = contained(result, "Task")
    assert [t["focus"]["reference"] for t in tasks] == [f"#{service['id']}", f"#{letter['id']}", f"#{drug['id']}"]
    for task in tasks:
        assert task["code"]["coding"] == [{"system": "http://hl7.org/fhir/CodeSystem/task-code", "code": "fulfill"}]
    assert tasks[0]["priority"] == "routine" and tasks[0]["performerType"] == [{"text": "radiologist"}]
    assert tasks[0]["restriction"]["period"] == service["occurrencePeriod"] == {"start": "2024-03-01T09:30:00+00:00"}


def test_same_definition_used_by_several_actions_gets_unique_ids() -> None:
    result = apply(plan(use(IMAGING, "first"), {"id": "g", "action": [use(IMAGING, "second")]}), ALL)
    requests = contained(result, "ServiceRequest")
    assert len(requests) == 2 and requests[0]["id"] != requests[1]["id"]


def test_task_kind_yields_just_the_task() -> None:
    result = apply(plan(use(REVIEW, "a")), ALL)
    assert [r["resourceType"] for r in contained(result)] == ["RequestGroup", "Task"]


def test_unsupported_kind_names_the_action() -> None:
    supply = activity("supply", "SupplyRequest")
    with pytest.raises(NotSupported) as caught:
        apply(plan({"id": "x"}, use(supply, "s")), [supply])
    assert caught.value.expression == ("PlanDefinition.action[1].definitionCanonical",)


def test_unresolvable_definition_is_a_business_rule_violation() -> None:
    with pytest.raises(BusinessRuleViolation) as caught:
        apply(plan(use(REVIEW, "a")), [])
    assert caught.value.expression == ("PlanDefinition.action[0].definitionCanonical",)


def test_nested_actions_and_non_applicable_branches() -> None:
    group = {
        "id": "g",
        "title": "Group",
        "action": [use(REVIEW, "in"), use(IMAGING, "out", condition=[condition("false")])],
    }
    result = apply(plan(group, use(LETTER, "skipped", condition=[condition("false", "never")])), ALL)
    (top,) = request_group(result)["action"]
    assert top["id"] == "g" and [a["id"] for a in top["action"]] == ["in"]
    assert len(contained(result, "ServiceRequest")) == 0
    assert [i.severity for i in result.issues] == ["information", "information"]
    assert "never" in result.issues[1].diagnostics


def test_not_applicable_plan_reports_applicable_false() -> None:
    result = apply(plan({"id": "entry", "condition": [condition("false")], "action": [use(REVIEW, "a")]}), ALL)
    assert result.applicable is False
    assert contained(result, "Task") == []


def test_required_or_optional_action_skipped_is_a_warning() -> None:
    must = use(REVIEW, "must", requiredBehavior="must", condition=[condition("false")])
    could = use(REVIEW, "could", requiredBehavior="could", condition=[condition("false")])
    result = apply(plan(must, could, use(REVIEW, "ok")), ALL)
    assert [i.severity for i in result.issues] == ["warning", "warning"]


def test_nested_plan_definition_is_applied_recursively() -> None:
    inner = plan(use(IMAGING, "inner-img"), id="inner", url="https://fhir.carepath.dev/PlanDefinition/inner",
                 version="1", title="Inner")  # fmt: skip
    result = apply(plan({"id": "sub", "title": "Sub plan", "definitionCanonical": inner["url"]}), [*ALL, inner])
    (action,) = request_group(result)["action"]
    nested = by_id(result, action["resource"]["reference"])
    assert nested["resourceType"] == "RequestGroup"
    assert nested["instantiatesCanonical"] == ["https://fhir.carepath.dev/PlanDefinition/inner|1"]
    assert by_id(result, nested["action"][0]["resource"]["reference"])["resourceType"] == "ServiceRequest"


def test_plan_definition_cycle_is_refused() -> None:
    a = plan({"id": "to-b", "definitionCanonical": "https://fhir.carepath.dev/PlanDefinition/b"}, id="a",
             url="https://fhir.carepath.dev/PlanDefinition/a")  # fmt: skip
    b = plan({"id": "to-a", "definitionCanonical": "https://fhir.carepath.dev/PlanDefinition/a"}, id="b",
             url="https://fhir.carepath.dev/PlanDefinition/b")  # fmt: skip
    with pytest.raises(BusinessRuleViolation) as caught:
        apply(a, [a, b])
    assert "cycle" in caught.value.diagnostics
    assert caught.value.expression[0].startswith("PlanDefinition.action[0].definitionCanonical.resolve()")


def test_questionnaire_becomes_a_task_focused_on_it() -> None:
    questionnaire = {"resourceType": "Questionnaire", "id": "q1", "url": "https://fhir.carepath.dev/Questionnaire/dt",
                     "version": "1", "title": "Distress thermometer", "status": "active"}  # fmt: skip
    result = apply(plan({"id": "q", "definitionCanonical": questionnaire["url"]}), [questionnaire])
    (task,) = contained(result, "Task")
    assert task["focus"] == {"reference": "Questionnaire/q1", "display": "Distress thermometer"}
    assert task["input"][0]["valueCanonical"] == "https://fhir.carepath.dev/Questionnaire/dt|1"


def test_definition_uri_becomes_a_task() -> None:
    result = apply(plan({"id": "u", "title": "Read leaflet", "definitionUri": "https://example.org/leaflet"}))
    (task,) = contained(result, "Task")
    assert task["instantiatesUri"] == "https://example.org/leaflet" and task["description"] == "Read leaflet"


def test_dynamic_values_of_definition_then_action_set_nested_paths() -> None:
    ad = activity("dv", "ServiceRequest", code={"text": "CT"}, dynamicValue=[
        {"path": "priority", "expression": expr("'urgent'")},
        {"path": "code.text", "expression": expr("'CT from definition'")},
    ])  # fmt: skip
    action = use(ad, "a", dynamicValue=[
        {"path": "code.text", "expression": expr("%resource.code.text + ' and action'")},
        {"path": "bodySite", "expression": expr("{}")},
    ])  # fmt: skip
    result = apply(plan(action), [ad])
    (service,) = contained(result, "ServiceRequest")
    assert service["priority"] == "urgent" and service["code"]["text"] == "CT from definition and action"
    (task,) = contained(result, "Task")
    assert task["priority"] == "urgent"


def test_dynamic_values_on_nested_paths_leave_the_definition_untouched() -> None:
    ad = activity("dv", "ServiceRequest", code={"coding": [{"system": "http://snomed.info/sct", "code": "183541002"}]})
    action = use(ad, "a", dynamicValue=[{"path": "code.coding[0].code", "expression": expr("'306313008'")}])
    before = copy.deepcopy(ad)
    first = apply(plan(action), [ad])
    assert ad == before  # the stored ActivityDefinition is not written through the generated request
    (service,) = contained(first, "ServiceRequest")
    assert service["code"]["coding"][0]["code"] == "306313008"


def test_a_due_date_set_by_a_dynamic_value_is_written_like_computed_ones() -> None:
    ad = activity("due", dynamicValue=[{"path": "restriction.period.end", "expression": expr("%now + 3 days")}])
    result = apply(plan(use(ad, "a")), [ad], now=datetime(2026, 3, 1, 9, 30, 15, 123456, tzinfo=UTC))
    (task,) = contained(result, "Task")
    assert task["restriction"]["period"]["end"] == "2026-03-04T09:30:15+00:00"


def test_cql_dynamic_value_is_not_supported() -> None:
    ad = activity("dv", dynamicValue=[{"path": "priority", "expression": expr("'urgent'", language="text/cql")}])
    with pytest.raises(NotSupported) as caught:
        apply(plan(use(ad, "a")), [ad])
    assert caught.value.expression == (
        "PlanDefinition.action[0].definitionCanonical.resolve().dynamicValue[0].expression",
    )


@pytest.mark.parametrize(("behaviour", "intent", "status"), [
    ("exactly-one", "option", "draft"), ("at-most-one", "option", "draft"), ("any", "option", "draft"),
    ("one-or-more", "option", "draft"), ("all", "order", "active"), ("all-or-none", "order", "active"),
])  # fmt: skip
def test_selection_behaviour_decides_option_or_order(behaviour: str, intent: str, status: str) -> None:
    group = {"id": "g", "selectionBehavior": behaviour, "requiredBehavior": "must", "precheckBehavior": "yes",
             "groupingBehavior": "logical-group", "cardinalityBehavior": "single",
             "action": [use(IMAGING, "x"), use(IMAGING, "y")]}  # fmt: skip
    result = apply(plan(group), ALL)
    (copied,) = request_group(result)["action"]
    for key in ("selectionBehavior", "requiredBehavior", "precheckBehavior", "groupingBehavior", "cardinalityBehavior"):
        assert copied[key] == group[key]
    assert {(r["intent"], r["status"]) for r in contained(result, "ServiceRequest")} == {(intent, status)}
    task_status = "draft" if intent == "option" else "requested"
    assert {(t["intent"], t["status"]) for t in contained(result, "Task")} == {(intent, task_status)}


def test_goals_are_contained_and_linked() -> None:
    goal = {"id": "g1", "description": {"text": "Symptom control"}, "target": [{"due": {"value": 2, "unit": "weeks"}}]}
    result = apply(plan(use(REVIEW, "a", goalId=["g1"]), goal=[goal]), ALL)
    (made,) = contained(result, "Goal")
    assert made["description"] == {"text": "Symptom control"} and made["target"][0]["dueDate"] == "2024-03-15"
    assert result.careplan["goal"] == [{"reference": f"#{made['id']}"}]
    (task,) = contained(result, "Task")
    link = extension_values(task, "http://hl7.org/fhir/StructureDefinition/resource-pertainsToGoal")
    assert link == [{"url": "http://hl7.org/fhir/StructureDefinition/resource-pertainsToGoal",
                     "valueReference": {"reference": f"#{made['id']}"}}]  # fmt: skip


def test_unknown_goal_id_is_a_warning_not_a_dangling_link() -> None:
    result = apply(plan(use(REVIEW, "a", goalId=["nope"])), ALL)
    assert result.issues[0].severity == "warning" and contained(result, "Goal") == []


def test_input_output_trigger_and_start_stop_conditions() -> None:
    trigger = {"type": "named-event", "name": "progression"}
    stop = {"kind": "stop", "expression": expr("%patient.deceased.exists()")}
    action = use(IMAGING, "a", input=[{"type": "Observation"}], output=[{"type": "DiagnosticReport"}],
                 trigger=[trigger], condition=[condition("true"), stop])  # fmt: skip
    result = apply(plan(action), ALL)
    (copied,) = request_group(result)["action"]
    assert copied["condition"] == [stop]
    assert extension_values(copied, extension_url("action-trigger"))[0]["valueTriggerDefinition"] == trigger
    (task,) = contained(result, "Task")
    assert task["input"][0]["valueDataRequirement"] == {"type": "Observation"}
    assert task["output"][0]["valueDataRequirement"] == {"type": "DiagnosticReport"}


def test_every_request_and_task_explains_why_it_exists() -> None:
    group = {"id": "g", "condition": [condition("%patient.id = 'p1'", "Patient in scope")],
             "action": [use(IMAGING, "img", condition=[condition("true")])]}  # fmt: skip
    result = apply(plan(group), ALL)
    for resource in contained(result, "ServiceRequest") + contained(result, "Task"):
        (generated,) = extension_values(resource, extension_url("generated-by"))
        parts = [(p["url"], next(v for k, v in p.items() if k.startswith("value"))) for p in generated["extension"]]
        assert parts == [
            ("plan", "https://fhir.carepath.dev/PlanDefinition/test-plan|2.1.0"), ("actionId", "img"),
            ("actionTitle", "Do img"), ("condition", "Patient in scope"), ("condition", "true"),
        ]  # fmt: skip
        note = resource["note"][0]["text"]
        assert "Test plan" in note and "'Do img'" in note
        assert note.startswith("Why this step: true.") and note.endswith("which applies because: Patient in scope.")
