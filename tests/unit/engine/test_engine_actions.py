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
    ctx,
    expr,
    extension_values,
    plan,
    request_group,
)

from carepath.canonical import extension_url
from carepath.engine import DictResolver, apply_activity_definition
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
    # R4: what a RequestGroup action points to is an option; persisted, the Task is the worklist's order
    assert task["resourceType"] == "Task" and task["status"] == "draft" and task["intent"] == "option"
    stored = apply(plan(use(REVIEW, "a")), ALL, persist=True)
    assert {(t["status"], t["intent"]) for t in contained(stored, "Task")} == {("requested", "order")}
    assert task["for"] == {"reference": "Patient/p1"} and task["owner"] == {"reference": "Practitioner/dr"}
    assert task["instantiatesCanonical"] == "https://fhir.carepath.dev/ActivityDefinition/review|1.0.0"
    assert task["basedOn"] == [{"reference": "#"}] and task["encounter"] == {"reference": "Encounter/e1"}


def test_kinds_produce_their_request_and_a_companion_fulfil_task() -> None:
    result = apply(plan(use(IMAGING, "img"), use(LETTER, "gp"), use(DRUG, "med")), ALL, practitioner="Practitioner/dr")
    service = contained(result, "ServiceRequest")[0]
    assert service["code"] == {"text": "Restaging CT"} and service["performerType"] == {"text": "radiologist"}
    assert service["status"] == "draft" and service["intent"] == "option"
    letter = contained(result, "CommunicationRequest")[0]
    assert letter["payload"] == [{"contentString": "Tell the GP"}] and letter["recipient"] == [
        {"reference": "Patient/p1"}
    ]
    drug = contained(result, "MedicationRequest")[0]
    assert drug["medicationCodeableConcept"] == {"text": "Medication 1"}
    assert (drug["status"], drug["intent"], letter["status"], "intent" in letter) == ("draft", "option", "draft", False)
    tasks = contained(result, "Task")
    assert [t["focus"]["reference"] for t in tasks] == [f"#{service['id']}", f"#{letter['id']}", f"#{drug['id']}"]
    for task in tasks:  # the worklist Tasks that fulfil the proposals are ordered
        assert task["code"]["coding"] == [{"system": "http://hl7.org/fhir/CodeSystem/task-code", "code": "fulfill"}]
        assert (task["status"], task["intent"]) == ("requested", "order")
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


def test_action_without_definition_or_sub_actions_becomes_a_task() -> None:
    """rqg-1: such an action used to give a RequestGroup action with neither resource nor action."""
    talk = {"id": "talk", "title": "Discuss goals of care", "description": "With the patient and family",
            "dynamicValue": [{"path": "priority", "expression": expr("'urgent'")}]}  # fmt: skip
    result = apply(plan(talk))
    (task,) = contained(result, "Task")
    assert task["description"] == "Discuss goals of care" and task["priority"] == "urgent"
    (action,) = request_group(result)["action"]
    assert action["resource"] == {"reference": f"#{task['id']}"} and "action" not in action


def test_group_whose_actions_all_do_not_apply_is_left_out_with_a_message() -> None:
    group = {"id": "g", "title": "Group", "action": [use(REVIEW, "out", condition=[condition("false")])]}
    result = apply(plan(group, use(REVIEW, "kept")), ALL)
    assert [a["id"] for a in request_group(result)["action"]] == ["kept"]
    assert result.issues[-1].severity == "information" and "Group" in result.issues[-1].diagnostics
    assert result.issues[-1].expression == ("PlanDefinition.action[0]",)


def test_action_with_a_definition_and_sub_actions_keeps_both_apart() -> None:
    """rqg-1 (resource or action, not both): the action's own resource becomes its first sub-action."""
    result = apply(plan(use(REVIEW, "parent", action=[use(IMAGING, "child")])), ALL)
    (parent,) = request_group(result)["action"]
    assert "resource" not in parent
    own, child = parent["action"]
    assert by_id(result, own["resource"]["reference"])["resourceType"] == "Task" and child["id"] == "child"


def test_generated_resources_breaking_an_r4_invariant_are_refused_before_anything_is_returned() -> None:
    backwards = {"path": "restriction.period.end", "expression": expr("%now - 1 day")}
    with pytest.raises(BusinessRuleViolation) as caught:
        apply(plan({"id": "a", "title": "Backwards", "dynamicValue": [backwards]}))
    assert caught.value.status == 422 and "per-1" in caught.value.diagnostics
    # the dynamicValue that wrote the end is named, and the element it broke is the next issue
    assert caught.value.expression == ("PlanDefinition.action[0].dynamicValue[0].expression",)
    assert caught.value.issues()[1].expression == ("CarePlan.contained[1].restriction.period",)


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


def test_cql_in_the_definition_of_an_action_that_does_not_apply_is_refused_too() -> None:
    ad = activity("dv", dynamicValue=[{"path": "priority", "expression": expr("'urgent'", language="text/cql")}])
    with pytest.raises(NotSupported) as caught:
        apply(plan(use(ad, "a", condition=[condition("false")])), [ad])
    assert caught.value.expression == (
        "PlanDefinition.action[0].definitionCanonical.resolve().dynamicValue[0].expression",
    )


def test_cql_dynamic_value_is_not_supported() -> None:
    ad = activity("dv", dynamicValue=[{"path": "priority", "expression": expr("'urgent'", language="text/cql")}])
    with pytest.raises(NotSupported) as caught:
        apply(plan(use(ad, "a")), [ad])
    assert caught.value.expression == (
        "PlanDefinition.action[0].definitionCanonical.resolve().dynamicValue[0].expression",
    )


@pytest.mark.parametrize(("behaviour", "task"), [
    ("exactly-one", ("option", "draft")), ("at-most-one", ("option", "draft")), ("any", ("option", "draft")),
    ("one-or-more", ("option", "draft")), ("all", ("order", "requested")), ("all-or-none", ("order", "requested")),
])  # fmt: skip
@pytest.mark.parametrize("persist", [False, True])
def test_selection_behaviour_decides_whether_the_tasks_are_options_or_orders(
    behaviour: str, task: tuple[str, str], persist: bool
) -> None:
    group = {"id": "g", "selectionBehavior": behaviour, "requiredBehavior": "must", "precheckBehavior": "yes",
             "groupingBehavior": "logical-group", "cardinalityBehavior": "single",
             "action": [use(IMAGING, "x"), use(IMAGING, "y")]}  # fmt: skip
    result = apply(plan(group), ALL, persist=persist)
    (copied,) = request_group(result)["action"]
    for key in ("selectionBehavior", "requiredBehavior", "precheckBehavior", "groupingBehavior", "cardinalityBehavior"):
        assert copied[key] == group[key]
    # the requests are proposed in any case; their worklist Tasks are ordered unless they are one of a choice
    assert {(r["intent"], r["status"]) for r in contained(result, "ServiceRequest")} == {("option", "draft")}
    assert {(t["intent"], t["status"]) for t in contained(result, "Task")} == {task}


def test_a_standalone_activity_definition_apply_proposes_requests_and_orders_tasks() -> None:
    ctx_ = ctx()
    assert {k: v for k, v in apply_activity_definition(DRUG, DictResolver([]), ctx_).items()
            if k in ("status", "intent")} == {"status": "draft", "intent": "proposal"}  # fmt: skip
    task = apply_activity_definition(REVIEW, DictResolver([]), ctx_)
    assert (task["status"], task["intent"]) == ("requested", "order")


def test_goals_are_contained_and_linked() -> None:
    goal = {"id": "g1", "description": {"text": "Symptom control"}}
    result = apply(plan(use(REVIEW, "a", goalId=["g1"]), goal=[goal]), ALL)
    (made,) = contained(result, "Goal")
    assert made["description"] == {"text": "Symptom control"} and made["lifecycleStatus"] == "active"
    assert result.careplan["goal"] == [{"reference": f"#{made['id']}"}]
    (task,) = contained(result, "Task")
    link = extension_values(task, "http://hl7.org/fhir/StructureDefinition/resource-pertainsToGoal")
    assert link == [{"url": "http://hl7.org/fhir/StructureDefinition/resource-pertainsToGoal",
                     "valueReference": {"reference": f"#{made['id']}"}}]  # fmt: skip


TWO_WEEKS = {"value": 2, "unit": "weeks", "system": "http://unitsofmeasure.org", "code": "wk"}
PAIN = {"coding": [{"system": "http://loinc.org", "code": "72514-3"}]}


def test_goal_category_start_and_targets_come_across_as_r4_goal_elements() -> None:
    """R4: Goal.category is a list; goal.start (CodeableConcept) is startCodeableConcept, no startDate is
    invented; target measure and detail[x] as they are, due (a Duration) as dueDuration."""
    start = {"text": "pathway start"}
    target = {"measure": PAIN, "detailRange": {"high": {"value": 3}}, "due": TWO_WEEKS}
    goal = {"id": "g1", "category": {"text": "physiotherapy"}, "description": {"text": "Pain under control"},
            "start": start, "target": [target]}  # fmt: skip
    result = apply(plan(use(REVIEW, "a", goalId=["g1"]), goal=[goal]), ALL)
    (made,) = contained(result, "Goal")
    assert made["category"] == [{"text": "physiotherapy"}]
    assert made["startCodeableConcept"] == start and "startDate" not in made
    assert made["target"] == [{"measure": PAIN, "detailRange": {"high": {"value": 3}}, "dueDuration": TWO_WEEKS}]


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
