"""validate_resource: structure and JSON types, the FHIRPath expressions of issues, and that nothing is modified."""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

import pytest

from carepath import jsonutil
from carepath.errors import InvalidResource
from carepath.fhir.validation import validate_resource


def task(**elements: Any) -> dict[str, Any]:
    return {"resourceType": "Task", "status": "requested", "intent": "order", **elements}


def problems(resource: Any, **kwargs: Any) -> dict[str, str]:
    """Expression -> diagnostics of every issue (each issue names exactly one element)."""
    with pytest.raises(InvalidResource) as caught:
        validate_resource(resource, **kwargs)
    issues = caught.value.issues()
    assert all(len(issue.expression) == 1 for issue in issues)
    return {issue.expression[0]: issue.diagnostics for issue in issues}


def test_a_minimal_task_is_valid() -> None:
    validate_resource(task(id="t-1.a", **{"for": {"reference": "Patient/p1"}}), expected_type="Task")


def test_the_resource_is_not_modified_and_decimals_validate() -> None:
    raw = (
        b'{"resourceType":"Observation","status":"final","code":{"text":"weight"},'
        b'"valueQuantity":{"value":72.50,"unit":"kg"},"_status":{"extension":[{"url":"https://x.test/e",'
        b'"valueDecimal":1.0}]}}'
    )
    resource = jsonutil.loads(raw)
    before = copy.deepcopy(resource)
    validate_resource(resource)
    assert resource == before
    assert resource["valueQuantity"]["value"] == Decimal("72.50")
    assert jsonutil.dumps(resource) == raw


def test_python_floats_validate_too() -> None:
    validate_resource(
        {"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "valueQuantity": {"value": 1.5}}
    )


@pytest.mark.parametrize(
    ("body", "expression"),
    [
        ({"status": "requested"}, "resourceType"),
        ({"resourceType": 7}, "resourceType"),
        ({"resourceType": "MedicinalProduct"}, "resourceType"),  # R4, but the R4B models lack it
        ({"resourceType": "NotAType"}, "resourceType"),
    ],
)
def test_missing_unknown_or_unsupported_resource_types_are_invalid(body: dict[str, Any], expression: str) -> None:
    assert list(problems(body)) == [expression]


def test_expected_type_mismatch_names_resource_type() -> None:
    found = problems(task(), expected_type="CarePlan")
    assert list(found) == ["resourceType"]
    assert "CarePlan" in found["resourceType"]


def test_a_body_that_is_not_an_object_is_invalid() -> None:
    with pytest.raises(InvalidResource):
        validate_resource([task()])  # type: ignore[arg-type]


@pytest.mark.parametrize("bad_id", ["a b", "x" * 65, "p/1", "é"])
def test_ids_must_match_the_id_pattern(bad_id: str) -> None:
    assert list(problems(task(id=bad_id))) == ["Task.id"]


def test_an_id_of_64_characters_is_valid() -> None:
    validate_resource(task(id="A-b.0" + "x" * 59))


def test_missing_required_elements_are_named() -> None:
    found = problems({"resourceType": "Task"})
    assert set(found) == {"Task.status", "Task.intent"}
    assert "required" in found["Task.status"]
    assert list(problems({"resourceType": "Observation", "status": "final"})) == ["Observation.code"]


def test_a_required_choice_that_is_missing_is_named_with_x() -> None:
    found = problems(task(input=[{"type": {"text": "a"}, "valueString": "ok"}, {"type": {"text": "b"}}]))
    assert list(found) == ["Task.input[1].value[x]"]


def test_two_types_of_one_choice_are_refused() -> None:
    found = problems(task(output=[{"type": {"text": "a"}, "valueString": "x", "valueBoolean": True}]))
    assert list(found) == ["Task.output[0].value[x]"]
    assert "valueString" in found["Task.output[0].value[x]"]


@pytest.mark.parametrize(
    ("elements", "expression"),
    [
        ({"foo": 1}, "Task.foo"),
        ({"input": [{"type": {"text": "a"}, "valueString": "x", "colour": "red"}]}, "Task.input[0].colour"),
        # Python field names of fhir.resources are not FHIR JSON names, although pydantic would take them.
        ({"for_fhir": {"reference": "Patient/p1"}}, "Task.for_fhir"),
        ({"status__ext": {"id": "s"}}, "Task.status__ext"),
        ({"fhir_comments": "a DSTU2 comment"}, "Task.fhir_comments"),
    ],
)
def test_unknown_elements_are_refused(elements: dict[str, Any], expression: str) -> None:
    found = problems(task(**elements))
    assert expression in found
    assert "Unknown element" in found[expression]


@pytest.mark.parametrize(
    ("resource", "expression"),
    [
        ({"resourceType": "Patient", "active": "true"}, "Patient.active"),
        ({"resourceType": "Patient", "active": 1}, "Patient.active"),
        ({"resourceType": "Patient", "multipleBirthInteger": True}, "Patient.multipleBirthInteger"),
        ({"resourceType": "Patient", "multipleBirthInteger": Decimal("2.0")}, "Patient.multipleBirthInteger"),
        ({"resourceType": "Patient", "gender": ["male"]}, "Patient.gender"),
        ({"resourceType": "Patient", "name": {"family": "Doe"}}, "Patient.name"),
        ({"resourceType": "Patient", "name": [{"given": "Ann"}]}, "Patient.name[0].given"),
        (task(**{"for": {"reference": 5}}), "Task.for.reference"),
        (task(input=[{"type": {"coding": [{"code": "a"}, {"system": 3}]}, "valueString": "x"}]),
         "Task.input[0].type.coding[1].system"),
        (task(input=[{"type": {"text": "a"}, "valueQuantity": {"value": "1.5"}}]), "Task.input[0].valueQuantity.value"),
        ({"resourceType": "Patient", "name": [{"_given": [{"extension": [{"url": "u", "valueBoolean": "no"}]}]}]},
         "Patient.name[0]._given[0].extension[0].valueBoolean"),
    ],
)  # fmt: skip
def test_wrong_json_types_are_named(resource: dict[str, Any], expression: str) -> None:
    assert expression in problems(resource)


@pytest.mark.parametrize(
    ("resource", "expression"),
    [
        (task(authoredOn="2020-13-01"), "Task.authoredOn"),
        (task(authoredOn="2020-01-01T10:00"), "Task.authoredOn"),
        (task(executionPeriod={"start": "yesterday"}), "Task.executionPeriod.start"),
        ({"resourceType": "Patient", "birthDate": "1990-02-30"}, "Patient.birthDate"),
        ({"resourceType": "Patient", "birthDate": 19900101}, "Patient.birthDate"),
        (task(meta={"lastUpdated": "2020-01-01"}), "Task.meta.lastUpdated"),
        (task(restriction={"period": {"end": "2024-02-30T10:00:00Z"}}), "Task.restriction.period.end"),
    ],
)
def test_bad_dates_are_named(resource: dict[str, Any], expression: str) -> None:
    assert list(problems(resource)) == [expression]


@pytest.mark.parametrize(
    "date", ["2024", "2024-02", "2024-02-29", "2024-02-29T10:00:00+01:00", "2024-02-29T10:00:00.5Z"]
)
def test_partial_and_zoned_dates_are_valid(date: str) -> None:
    validate_resource(task(authoredOn=date) if "T" in date else {"resourceType": "Patient", "birthDate": date})


@pytest.mark.parametrize(
    ("resource", "expression"),
    [
        ({"resourceType": "Patient", "gender": None}, "Patient.gender"),
        ({"resourceType": "Patient", "name": [{}]}, "Patient.name[0]"),
        ({"resourceType": "Patient", "telecom": []}, "Patient.telecom"),
        ({"resourceType": "Patient", "name": [{"family": ""}]}, "Patient.name[0].family"),
        ({"resourceType": "Patient", "name": [None]}, "Patient.name"),
    ],
)
def test_null_and_empty_values_are_refused(resource: dict[str, Any], expression: str) -> None:
    assert list(problems(resource)) == [expression]


def test_nulls_in_primitive_arrays_line_up_with_extensions() -> None:
    ext = {"extension": [{"url": "https://x.test/e", "valueString": "middle"}]}
    validate_resource({"resourceType": "Patient", "name": [{"given": ["Ann", None], "_given": [None, ext]}]})


def test_a_null_in_a_primitive_array_without_an_extension_is_refused() -> None:
    found = problems({"resourceType": "Patient", "name": [{"given": ["Ann", None]}]})
    assert list(found) == ["Patient.name[0].given[1]"]


def test_wrong_types_that_crash_the_model_validators_are_still_named() -> None:
    # fhir.resources raises AttributeError for a number where a url belongs; the walk names the element.
    found = problems({"resourceType": "Subscription", "status": "off", "reason": "r", "criteria": "Task?",
                      "channel": {"type": "rest-hook", "endpoint": 5}})  # fmt: skip
    assert list(found) == ["Subscription.channel.endpoint"]


def test_a_bad_coding_code_type_in_a_bound_concept_is_named() -> None:
    status = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": {"a": 1}}]}
    found = problems({"resourceType": "Condition", "subject": {"reference": "P/1"}, "clinicalStatus": status})
    assert "Condition.clinicalStatus.coding[0].code" in found


def test_contained_resources_are_validated_with_their_own_type() -> None:
    found = problems({"resourceType": "Patient", "contained": [{"resourceType": "Observation", "status": "final"}]})
    assert list(found) == ["Patient.contained[0].code"]


def test_contained_resources_of_types_we_do_not_serve_are_accepted() -> None:
    medication = {"resourceType": "Medication", "id": "m1", "code": {"text": "a medication"}}
    validate_resource(
        {"resourceType": "MedicationRequest", "status": "active", "intent": "order", "contained": [medication],
         "medicationReference": {"reference": "#m1"}, "subject": {"reference": "Patient/p1"}}
    )  # fmt: skip


def test_an_unknown_contained_resource_type_is_invalid_not_a_crash() -> None:
    found = problems({"resourceType": "Patient", "contained": [{"resourceType": "Nope"}]})
    assert list(found) == ["Patient.contained[0].resourceType"]


def test_contained_resources_cannot_contain_resources() -> None:
    inner = {"resourceType": "Patient", "contained": [{"resourceType": "Patient"}]}
    assert "Patient.contained[0].contained" in problems({"resourceType": "Patient", "contained": [inner]})


def test_every_problem_is_reported_at_once_as_invalid_issues() -> None:
    with pytest.raises(InvalidResource) as caught:
        validate_resource(task(status="bogus", priority="whenever", authoredOn="x", foo=1, id="a b"))
    issues = caught.value.issues()
    assert {issue.expression[0] for issue in issues} == {
        "Task.status", "Task.priority", "Task.authoredOn", "Task.foo", "Task.id",
    }  # fmt: skip
    assert {issue.code for issue in issues} == {"invalid"}
    assert caught.value.status == 400
    rendered = issues[0].to_fhir()
    assert rendered["severity"] == "error"
    assert rendered["expression"] == [issues[0].expression[0]]


@pytest.mark.parametrize(
    ("element", "value", "ok"),
    [("timingDuration", {"value": 1e300, "unit": "d", "system": "http://unitsofmeasure.org", "code": "d"}, False),
     ("timingDuration", {"value": -400_000, "unit": "days"}, False),
     ("timingAge", {"value": 1001, "unit": "a", "system": "http://unitsofmeasure.org", "code": "a"}, False),
     ("timingDuration", {"value": 999, "unit": "years"}, True),
     ("timingDuration", {"value": 1e300, "unit": "furlongs"}, True)],  # not a time unit: not judged here
)  # fmt: skip
def test_durations_beyond_a_thousand_years_are_out_of_range(element: str, value: dict[str, Any], ok: bool) -> None:
    definition = {"resourceType": "ActivityDefinition", "status": "active", element: value}
    if ok:
        validate_resource(definition)
        return
    with pytest.raises(InvalidResource) as caught:
        validate_resource(definition)
    assert caught.value.expression == (f"ActivityDefinition.{element}",)
