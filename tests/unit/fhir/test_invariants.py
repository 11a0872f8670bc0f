"""R4 invariants the models do not check, as `$apply` output is checked against them."""

from __future__ import annotations

from typing import Any

import pytest

from carepath.fhir.invariants import invariant_issues
from carepath.fhir.models import model_class

TASK = {"resourceType": "Task", "id": "t", "status": "requested", "intent": "order", "basedOn": [{"reference": "#"}]}


def careplan(*contained: dict[str, Any], **fields: Any) -> dict[str, Any]:
    inside = {"contained": list(contained)} if contained else {}
    return {"resourceType": "CarePlan", "status": "active", "intent": "plan", "subject": {"reference": "Patient/1"},
            **inside, **fields}  # fmt: skip


def keys(resource: dict[str, Any]) -> list[tuple[str, tuple[str, ...]]]:
    return [(i.diagnostics.split(":")[0], i.expression) for i in invariant_issues(resource)]


def test_a_valid_careplan_has_no_issue() -> None:
    group = {"resourceType": "RequestGroup", "id": "rg", "status": "active", "intent": "plan",
             "subject": {"reference": "Patient/1"}, "action": [{"resource": {"reference": "#t"}}]}  # fmt: skip
    resource = careplan(group, TASK, activity=[{"reference": {"reference": "#rg"}}])
    model_class("CarePlan").model_validate(resource)
    assert invariant_issues(resource) == []


@pytest.mark.parametrize(
    ("action", "path"),
    [({"title": "neither"}, "CarePlan.contained[0].action[0]"),
     ({"resource": {"reference": "#t"}, "action": [{"resource": {"reference": "#t"}}]},
      "CarePlan.contained[0].action[0]")],
)  # fmt: skip
def test_rqg_1_resource_or_sub_actions(action: dict[str, Any], path: str) -> None:
    group = {"resourceType": "RequestGroup", "id": "rg", "status": "active", "intent": "plan",
             "subject": {"reference": "Patient/1"}, "action": [action]}  # fmt: skip
    resource = careplan(group, TASK, activity=[{"reference": {"reference": "#rg"}}])
    model_class("CarePlan").model_validate(resource)  # the model lets it through
    assert ("rqg-1", (path,)) in keys(resource)


def test_ele_1_ext_1_per_1_ref_1_dom_3() -> None:
    task = {**TASK, "input": [{}], "description": "",
            "extension": [{"url": "http://example.org/x"}],
            "restriction": {"period": {"start": "2024-03-02T00:00:00+00:00", "end": "2024-03-01T00:00:00+00:00"}},
            "focus": {"reference": "#nowhere"}}  # fmt: skip
    orphan = {"resourceType": "Goal", "id": "g", "lifecycleStatus": "active", "description": {"text": "x"},
              "subject": {"reference": "Patient/1"}}  # fmt: skip
    found = keys(careplan(task, orphan))
    assert ("ele-1", ("CarePlan.contained[0].input[0]",)) in found
    assert ("ele-1", ("CarePlan.contained[0].description",)) in found
    assert ("ext-1", ("CarePlan.contained[0].extension[0]",)) in found
    assert ("per-1", ("CarePlan.contained[0].restriction.period",)) in found
    assert ("ref-1", ("CarePlan.contained[0].focus",)) in found
    assert ("dom-3", ("CarePlan.contained[1]",)) in found


def test_cpl_3_gol_1_prr_1() -> None:
    both = {"reference": {"reference": "CarePlan/x"}, "detail": {"status": "scheduled"}}
    assert keys(careplan(activity=[both])) == [("cpl-3", ("CarePlan.activity[0]",))]
    goal = {"resourceType": "Goal", "lifecycleStatus": "active", "description": {"text": "x"},
            "subject": {"reference": "Patient/1"}, "target": [{"detailString": "less pain"}]}  # fmt: skip
    assert keys(goal) == [("gol-1", ("Goal.target[0]",))]
    request = {"resourceType": "ServiceRequest", "status": "draft", "intent": "option",
               "subject": {"reference": "Patient/1"}, "orderDetail": [{"text": "x"}]}  # fmt: skip
    assert keys(request) == [("prr-1", ("ServiceRequest.orderDetail",))]
