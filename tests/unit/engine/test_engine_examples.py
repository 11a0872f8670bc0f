"""Acceptance on the FHIR R4 spec's own pairs: PlanDefinition examples applied vs. their hand-written RequestGroups.

Compared: the action tree (nesting, ids, titles, behaviours, relatedAction, timing, extensions) and the
resources the actions point to (their number and the medication they name); ids of generated resources differ.
"""

from __future__ import annotations

from typing import Any

import pytest
from engine_support import apply, by_id, contained, fixture, request_group

from carepath.engine import ApplyResult, DictResolver, apply_activity_definition
from carepath.errors import NotSupported

pytestmark = pytest.mark.conformance

_STRUCTURAL = ("id", "title", "textEquivalent", "groupingBehavior", "selectionBehavior", "relatedAction",
               "timingTiming", "timingDateTime", "extension")  # fmt: skip


def shape(action: dict[str, Any], resolve: Any, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    out: dict[str, Any] = {key: action[key] for key in _STRUCTURAL if key in action and key not in skip}
    if "resource" in action:
        resource = resolve(action["resource"]["reference"])
        out["resource"] = (resource["resourceType"], resource.get("medicationCodeableConcept"))
    out["action"] = [shape(child, resolve, skip) for child in action.get("action", [])]
    return out


def expected_shape(example: dict[str, Any], skip: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    local = {f"#{r['id']}": r for r in example["contained"]}
    return [shape(a, local.__getitem__, skip) for a in example["action"]]


def actual_shape(result: ApplyResult, skip: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    return [shape(a, lambda ref: by_id(result, ref), skip) for a in request_group(result)["action"]]


def test_options_example_matches_requestgroup_example() -> None:
    result = apply(fixture("plandefinition-options-example.json"), subject="Patient/example")
    example = fixture("requestgroup-example.json")
    # The hand-written group adds a title, text and time the PlanDefinition does not have, and describes its
    # actions in `description` where the PlanDefinition has `title`: compare the structure without those, then
    # check the titles come from the PlanDefinition.
    skip = ("title", "textEquivalent", "timingDateTime")
    (group,) = actual_shape(result, skip)
    (expected,) = expected_shape(example, skip)
    assert group == expected
    titles = [a["title"] for a in request_group(result)["action"][0]["action"]]
    assert titles == ["Administer Medication 1", "Administer Medication 2"]
    requests = contained(result, "MedicationRequest")
    assert len(requests) == len([r for r in example["contained"] if r["resourceType"] == "MedicationRequest"])
    # What a RequestGroup action points to is an option (R4), and a medication is never an active order, persisted
    # or not: carepath proposes, clinicians decide.
    assert {(r["intent"], r["status"]) for r in requests} == {("option", "draft")}
    persisted = contained(apply(fixture("plandefinition-options-example.json"), subject="Patient/example",
                                persist=True), "MedicationRequest")  # fmt: skip
    assert {(r["intent"], r["status"]) for r in persisted} == {("option", "draft")}


def test_options_example_timing_puts_medication_two_an_hour_after_one() -> None:
    result = apply(fixture("plandefinition-options-example.json"), subject="Patient/example")
    first, second = (t for t in contained(result, "Task"))
    assert first["restriction"]["period"] == {"start": "2024-03-01T09:30:00+00:00"}  # no timing: no due date
    # after-end + 1 h of a predecessor without due date: provisionally an hour after its start
    assert second["restriction"]["period"]["end"] == "2024-03-01T10:30:00+00:00"
    assert second["status"] == "draft" and second["businessStatus"]["text"] == "waiting for: Administer Medication 1"


def test_kdn5_example_matches_requestgroup_kdn5_example() -> None:
    result = apply(fixture("plandefinition-example-kdn5-simplified.json"), subject="Patient/example")
    example = fixture("requestgroup-kdn5-example.json")
    assert actual_shape(result) == expected_shape(example, ())
    requests = contained(result, "MedicationRequest")
    assert len(requests) == 2
    # nested under an exactly-one choice: both regimens are proposed options, not orders
    assert {(r["intent"], r["status"]) for r in requests} == {("option", "draft")}
    assert requests[0]["dosageInstruction"] == example["contained"][0]["dosageInstruction"]


def test_official_activity_definitions_apply_or_refuse_cql_clearly() -> None:
    servicerequest = fixture("activitydefinition-servicerequest-example.json")
    with pytest.raises(NotSupported) as caught:  # its timing event is a CQL cqf-expression
        apply_activity_definition(servicerequest, DictResolver([]), _ctx())
    assert caught.value.expression == ("ActivityDefinition.timingTiming._event[0].extension[0].valueExpression",)
    del servicerequest["timingTiming"]
    request = apply_activity_definition(servicerequest, DictResolver([]), _ctx())
    assert request["resourceType"] == "ServiceRequest" and request["code"] == servicerequest["code"]
    medication = fixture("activitydefinition-medicationorder-example.json")
    with pytest.raises(NotSupported) as caught:
        apply_activity_definition(medication, DictResolver([]), _ctx())
    assert caught.value.expression == ("ActivityDefinition.dynamicValue[0].expression",)


def _ctx() -> Any:
    from engine_support import ctx

    return ctx(subject="Patient/example")
