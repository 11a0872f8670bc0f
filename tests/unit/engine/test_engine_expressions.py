"""Expressions: context variables, frozen now, named variables, parameters, languages, applicability."""

from __future__ import annotations

from typing import Any

import pytest
from engine_support import activity, apply, condition, contained, ctx, expr, plan, variable

from carepath.engine import DictResolver, EvaluationBudget, apply_activity_definition
from carepath.engine.expressions import Evaluator
from carepath.errors import BusinessRuleViolation, NotSupported

TASK = activity("follow-up")


def data(*resources: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in resources]}


def applies(text: str, *extensions: dict[str, Any], **ctx_fields: Any) -> bool:
    action = {"id": "a", "title": "A", "condition": [condition(text)], "definitionCanonical": TASK["url"]}
    return apply(plan(action, extension=list(extensions)), [TASK], **ctx_fields).applicable


def test_now_is_a_datetime_usable_in_arithmetic() -> None:
    assert applies("%now + 3 days = @2024-03-04T09:30:00.000+00:00")
    assert applies("%now - 1 year < @2023-03-02")
    assert not applies("%now + 3 days = @2024-03-05T09:30:00.000+00:00")


def test_now_and_today_functions_return_the_frozen_instant() -> None:
    assert applies("today() = @2024-03-01")
    assert applies("now() > @2024-03-01T09:00:00Z and now() < @2024-03-01T10:00:00Z")


def test_subject_and_patient_come_from_data_else_a_stub() -> None:
    patient = {"resourceType": "Patient", "id": "p1", "birthDate": "1950-06-01"}
    assert applies("%patient.birthDate < today() - 70 years", data=data(patient))
    assert applies("%subject.id = 'p1' and %subject.birthDate.exists()", data=data(patient))
    assert applies("%patient.id = 'p1' and %patient.birthDate.empty()")


def test_context_is_the_definition_being_applied() -> None:
    """As cqframework's clinical-reasoning binds it: the PlanDefinition for its actions, the ActivityDefinition
    for its own dynamicValues (content written for HAPI's $apply used to produce empty text here)."""
    ad = activity("t", dynamicValue=[{"path": "description", "expression": expr("%context.title + ' (AD)'")}])
    action = {"id": "a", "definitionCanonical": ad["url"], "condition": [condition("%context.version = '2.1.0'")],
              "dynamicValue": [{"path": "note[0].text", "expression": expr("'from ' + %context.title")}]}  # fmt: skip
    with_variable = plan(action, extension=[variable("planName", "%context.title")])
    with_variable["action"][0]["dynamicValue"].append({"path": "priority", "expression": expr(
        "iif(%planName = 'Test plan', 'urgent', 'routine')")})  # fmt: skip
    result = apply(with_variable, [ad])
    (task,) = contained(result, "Task")
    assert task["description"] == "T (AD)" and task["priority"] == "urgent"
    assert task["note"][0]["text"] == "from Test plan"
    standalone = apply_activity_definition(ad, DictResolver([]), ctx())
    assert standalone["description"] == "T (AD)"


def test_data_bundle_and_resolve_use_the_supplied_records() -> None:
    obs = {"resourceType": "Observation", "id": "o1", "status": "final", "code": {"text": "x"},
           "subject": {"reference": "Patient/p1"}, "valueInteger": 3}  # fmt: skip
    assert applies("%data.entry.resource.ofType(Observation).value = 3", data=data(obs))
    assert applies("%data.entry.resource.ofType(Observation).subject.resolve().id = 'p1'", data=data(obs))


def test_encounter_practitioner_and_user_context_variables() -> None:
    assert applies(
        "%encounter.id = 'e1' and %practitioner.id = 'dr' and %organization.id = 'org' and %userType.text = 'nurse'"
        " and %setting.text = 'oncology'",
        encounter="Encounter/e1", practitioner="Practitioner/dr", organization="Organization/org",
        user_type={"text": "nurse"}, setting={"text": "oncology"},
    )  # fmt: skip


def test_empty_or_non_boolean_results_are_false() -> None:
    assert not applies("{}")
    assert not applies("'yes'")
    assert not applies("%patient.birthDate")
    assert applies("true")


def test_variables_are_evaluated_in_order_and_may_use_earlier_ones() -> None:
    assert applies("%double = 42", variable("base", "21"), variable("double", "%base * 2"))


def test_a_variable_cannot_see_later_ones() -> None:
    with pytest.raises(BusinessRuleViolation) as caught:
        applies("%first = 1", variable("first", "%second"), variable("second", "1"))
    assert caught.value.expression == ("PlanDefinition.extension[0]",)


def test_supplied_parameter_overrides_a_variable_of_the_same_name() -> None:
    threshold = variable("ecogMax", "2")
    assert not applies("%ecogMax = 4", threshold)
    params = {"resourceType": "Parameters", "parameter": [{"name": "ecogMax", "valueInteger": 4}]}
    assert applies("%ecogMax = 4", threshold, parameters=params)


def test_parameters_are_unwrapped_by_name() -> None:
    patient = {"resourceType": "Patient", "id": "other"}
    params = {"resourceType": "Parameters", "parameter": [
        {"name": "flag", "valueBoolean": True}, {"name": "who", "resource": patient},
        {"name": "limit", "valueQuantity": {"value": 5, "unit": "mg", "system": "http://unitsofmeasure.org",
                                            "code": "mg"}},
    ]}  # fmt: skip
    assert applies("%flag and %who.id = 'other' and %limit.value = 5", parameters=params)


def test_shared_variables_are_evaluated_once_per_apply_however_many_actions_use_them() -> None:
    """Plan-level variables are computed on first use and shared by every action, nested action and definition
    dynamicValue. The budget reads its clock before and after each real evaluation (never for a memoised one)."""
    reads: list[float] = []
    budget = EvaluationBudget(60_000, lambda: reads.append(0.0) or 0.0)
    dynamic = {"path": "description", "expression": expr("'ECOG ' + %ecog.toString()")}
    labelled = activity("labelled", dynamicValue=[dynamic])
    actions = [{"id": f"a{i}", "condition": [condition(f"%frail or %ecog + {i} >= 2")],
                "definitionCanonical": labelled["url"],
                "action": [{"id": f"a{i}-child", "condition": [condition("%frail or %ecog >= 0")],
                            "definitionCanonical": labelled["url"]}]} for i in range(5)]  # fmt: skip
    ecog = {"resourceType": "Observation", "status": "final", "code": {"text": "ECOG"}, "valueInteger": 2}
    shared = [variable("ecog", "%data.entry.resource.where(resourceType='Observation').value"),
              variable("frail", "%ecog >= 3")]  # fmt: skip
    result = apply(plan(*actions, extension=shared), [labelled], data=data(ecog), budget=budget)
    assert len(contained(result, "Task")) == 10
    # ecog, frail, 5 distinct parent conditions, 1 child condition (the same text 5 times), 1 dynamicValue
    assert len(reads) == 2 * 9


def test_action_variables_are_scoped_to_the_action() -> None:
    scoped = {"id": "a", "extension": [variable("local", "true")], "condition": [condition("%local")],
              "definitionCanonical": TASK["url"]}  # fmt: skip
    sibling = {"id": "b", "condition": [condition("%local")], "definitionCanonical": TASK["url"]}
    with pytest.raises(BusinessRuleViolation) as caught:
        apply(plan(scoped, sibling), [TASK])
    # a content fault, not the request's: 422 naming the expression
    assert caught.value.status == 422 and caught.value.expression == ("PlanDefinition.action[1].condition[0]",)
    assert (
        "undefined environment variable: local" in caught.value.diagnostics and "'%local'" in caught.value.diagnostics
    )


def test_cql_condition_is_not_supported_and_names_the_action() -> None:
    action = {"id": "a", "condition": [condition("true"), condition("AgeInYears() > 18", language="text/cql")]}
    with pytest.raises(NotSupported) as caught:
        apply(plan({"id": "ok"}, {"id": "group", "action": [action]}))
    assert caught.value.expression == ("PlanDefinition.action[1].action[0].condition[1].expression",)
    assert caught.value.status == 422


def test_cql_after_a_false_condition_is_refused_too() -> None:
    action = {"id": "a", "condition": [condition("false"), condition("Foo", language="text/cql-identifier")]}
    with pytest.raises(NotSupported) as caught:
        apply(plan(action, {"id": "b", "definitionCanonical": TASK["url"]}), [TASK])
    assert caught.value.expression == ("PlanDefinition.action[0].condition[1].expression",)


def test_cql_dynamic_value_of_an_action_without_definition_is_refused() -> None:
    """It used to be silently ignored: the action produced nothing to set the value on."""
    action = {
        "id": "a",
        "title": "Talk",
        "dynamicValue": [{"path": "priority", "expression": expr("X", language="text/cql")}],
    }
    with pytest.raises(NotSupported) as caught:
        apply(plan(action))
    assert caught.value.expression == ("PlanDefinition.action[0].dynamicValue[0].expression",)


def test_library_and_cql_in_a_trigger_or_variable_are_refused() -> None:
    library = "https://fhir.carepath.dev/Library/logic"
    with pytest.raises(NotSupported) as caught:
        apply(plan({"id": "a", "definitionCanonical": TASK["url"]}, library=[library]), [TASK])
    assert caught.value.expression == ("PlanDefinition.library[0]",) and library in caught.value.diagnostics
    cql = {"language": "text/cql", "expression": "Foo"}
    trigger = {"type": "named-event", "name": "x", "condition": cql}
    with pytest.raises(NotSupported) as caught:
        apply(plan({"id": "a", "trigger": [trigger], "definitionCanonical": TASK["url"]}), [TASK])
    assert caught.value.expression == ("PlanDefinition.action[0].trigger[0].condition",)
    cql_variable = {"url": "http://hl7.org/fhir/StructureDefinition/variable", "valueExpression": {"name": "v", **cql}}
    with pytest.raises(NotSupported) as caught:
        apply(plan({"id": "a", "definitionCanonical": TASK["url"]}, extension=[cql_variable]), [TASK])
    assert caught.value.expression == ("PlanDefinition.extension[0].valueExpression",)


def test_invalid_fhirpath_is_a_content_fault_at_the_condition() -> None:
    with pytest.raises(BusinessRuleViolation) as caught:
        applies("%now +")
    assert caught.value.status == 422 and caught.value.expression == ("PlanDefinition.action[0].condition[0]",)


def test_dynamic_value_sees_the_resource_being_built() -> None:
    ad = activity("t", dynamicValue=[
        {"path": "priority", "expression": expr("'urgent'")},
        {"path": "description", "expression": expr("%resource.priority + ' follow-up'")},
    ])  # fmt: skip
    result = apply(plan({"id": "a", "definitionCanonical": ad["url"]}), [ad])
    (task,) = contained(result, "Task")
    assert task["description"] == "urgent follow-up"


def test_dynamic_value_yielding_nothing_writes_nothing() -> None:
    """R4 ele-1: an empty result creates no empty element on the way (`payload: [{}]` was written before)."""
    ad = activity("note", "CommunicationRequest", dynamicValue=[
        {"path": "payload[0].contentString", "expression": expr("%subject.name.text")},
        {"path": "reasonCode[0].coding[0].code", "expression": expr("{}")},
    ])  # fmt: skip
    del ad["title"]
    result = apply(plan({"id": "a", "definitionCanonical": ad["url"]}), [ad])
    (request,) = contained(result, "CommunicationRequest")
    assert "payload" not in request and "reasonCode" not in request


def test_dynamic_value_yielding_nothing_removes_only_what_it_names() -> None:
    ad = activity("t", dynamicValue=[
        {"path": "note[0].text", "expression": expr("'kept'")},
        {"path": "note[0].authorString", "expression": expr("'x'")},
        {"path": "note[0].authorString", "expression": expr("{}")},
    ])  # fmt: skip
    task = apply_activity_definition(ad, DictResolver([]), ctx())
    assert task["note"] == [{"text": "kept"}]


def test_expression_results_are_memoised_within_one_apply_except_those_reading_the_resource() -> None:
    evaluator = Evaluator(ctx())
    variables = {"patient": evaluator.subject_resource}
    first = evaluator.run("%patient.id", variables, "x")
    assert first == ["p1"]
    assert evaluator.run("%patient.id", variables, "x") is first  # served from the memo
    resource: dict[str, Any] = {"resourceType": "Task", "priority": "routine"}
    assert evaluator.run("%resource.priority", {"resource": resource}, "x") == ["routine"]
    resource["priority"] = "urgent"
    assert evaluator.run("%resource.priority", {"resource": resource}, "x") == ["urgent"]
