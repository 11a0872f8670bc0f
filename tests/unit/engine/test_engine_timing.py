"""Timing arithmetic and dependencies: timing[x], relatedAction, dependency order, waits-for."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from engine_support import NOW, activity, apply, condition, contained, expr, extension_values, plan

from carepath.canonical import extension_url
from carepath.engine.timing import Interval, duration, own_interval, related_interval
from carepath.errors import BusinessRuleViolation

TASK = activity("t")
SERVICE = activity("s", "ServiceRequest", code={"text": "CT"})
WAITS_FOR = extension_url("task-waits-for")


def action(action_id: str, ad: dict[str, Any] = TASK, **fields: Any) -> dict[str, Any]:
    return {"id": action_id, "title": action_id.upper(), "definitionCanonical": ad["url"], **fields}


def days(n: float) -> dict[str, Any]:
    return {"value": n, "unit": "days", "system": "http://unitsofmeasure.org", "code": "d"}


def task_of(result: Any, action_id: str) -> dict[str, Any]:
    return next(t for t in contained(result, "Task") if t["description"] == action_id.upper())


def period(result: Any, action_id: str) -> dict[str, str]:
    return task_of(result, action_id)["restriction"]["period"]  # type: ignore[no-any-return]


def test_duration_units() -> None:
    assert NOW + duration({"value": 2, "code": "wk"}, "x") == NOW + timedelta(days=14)
    assert (NOW + duration({"value": 1, "unit": "month"}, "x")).isoformat() == "2024-04-01T09:30:00+00:00"
    assert NOW + duration({"value": 36, "unit": "hours"}, "x") == NOW + timedelta(hours=36)
    with pytest.raises(BusinessRuleViolation):
        duration({"value": 3, "unit": "parsecs"}, "x")


@pytest.mark.parametrize(("timing", "expected"), [
    ({"timingDuration": days(14)}, ("2024-03-01T09:30:00+00:00", "2024-03-15T09:30:00+00:00")),
    ({"timingDateTime": "2024-04-02T08:00:00Z"}, ("2024-04-02T08:00:00+00:00", "2024-04-02T08:00:00+00:00")),
    ({"timingPeriod": {"start": "2024-03-05", "end": "2024-03-09"}},
     ("2024-03-05T00:00:00+00:00", "2024-03-09T00:00:00+00:00")),
    ({"timingRange": {"low": days(2), "high": days(5)}}, ("2024-03-03T09:30:00+00:00", "2024-03-06T09:30:00+00:00")),
    ({"timingTiming": {"repeat": {"boundsDuration": days(7), "frequency": 1, "period": 1, "periodUnit": "d"}}},
     ("2024-03-01T09:30:00+00:00", "2024-03-08T09:30:00+00:00")),
    ({"timingTiming": {"repeat": {"boundsPeriod": {"start": "2024-05-01T00:00:00Z", "end": "2024-05-31T00:00:00Z"}}}},
     ("2024-05-01T00:00:00+00:00", "2024-05-31T00:00:00+00:00")),
])  # fmt: skip
def test_timing_becomes_a_concrete_restriction_period(timing: dict[str, Any], expected: tuple[str, str]) -> None:
    result = apply(plan(action("a", **timing)), [TASK])
    assert period(result, "a") == {"start": expected[0], "end": expected[1]}


def test_timing_age_counts_from_birth_date() -> None:
    patient = {"resourceType": "Patient", "id": "p1", "birthDate": "1960-06-15"}
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": patient}]}
    result = apply(plan(action("a", timingAge={"value": 65, "unit": "a", "code": "a"})), [TASK], data=bundle)
    assert period(result, "a")["end"] == "2025-06-15T00:00:00+00:00"


def test_service_request_gets_occurrence_and_its_task_the_same_due_date() -> None:
    result = apply(plan(action("s", SERVICE, timingDuration=days(3))), [SERVICE])
    (service,) = contained(result, "ServiceRequest")
    assert service["occurrencePeriod"] == {"start": "2024-03-01T09:30:00+00:00", "end": "2024-03-04T09:30:00+00:00"}
    assert period(result, "s") == service["occurrencePeriod"]


def test_children_inherit_the_group_timing() -> None:
    group = {"id": "g", "timingDuration": days(10), "action": [action("child")]}
    assert period(apply(plan(group), [TASK]), "child")["end"] == "2024-03-11T09:30:00+00:00"


def test_activity_definition_timing_applies_when_the_action_has_none() -> None:
    timed = activity("timed", timingDuration=days(4))
    assert period(apply(plan(action("a", timed)), [timed]), "a")["end"] == "2024-03-05T09:30:00+00:00"


def test_dynamic_value_due_date_wins_and_feeds_successors() -> None:
    first = action("first", timingDuration=days(14), dynamicValue=[
        {"path": "restriction.period.end", "expression": expr("%now + 3 days")}])  # fmt: skip
    second = action("second", relatedAction=[{"actionId": "first", "relationship": "after-end",
                                              "offsetDuration": days(2)}])  # fmt: skip
    result = apply(plan(second, first), [TASK])
    assert period(result, "first")["end"] == "2024-03-04T09:30:00+00:00"
    assert period(result, "second") == {"start": "2024-03-06T09:30:00+00:00", "end": "2024-03-06T09:30:00+00:00"}


def test_after_end_with_offset_and_own_duration() -> None:
    first = action("first", timingDuration=days(7))
    second = action("second", timingDuration=days(14), relatedAction=[
        {"actionId": "first", "relationship": "after-end", "offsetDuration": {"value": 1, "unit": "h"}}])  # fmt: skip
    result = apply(plan(first, second), [TASK])
    assert period(result, "second") == {"start": "2024-03-08T10:30:00+00:00", "end": "2024-03-22T10:30:00+00:00"}


def test_related_interval_relationships() -> None:
    pred = Interval(NOW, NOW + timedelta(days=10))
    day = days(1)

    def rel(relationship: str, **offset: Any) -> Interval:
        return related_interval({"relationship": relationship, **offset}, pred, None, NOW, "x")

    assert rel("after-start", offsetDuration=day) == Interval(NOW + timedelta(days=1), NOW + timedelta(days=1))
    assert rel("after", offsetDuration=day).start == NOW + timedelta(days=11)
    assert rel("before-start", offsetDuration=day) == Interval(NOW - timedelta(days=1), NOW - timedelta(days=1))
    assert rel("before-end", offsetDuration=day).end == NOW + timedelta(days=9)
    assert rel("concurrent") == pred
    assert rel("concurrent-with-start").start == NOW
    assert rel("concurrent-with-end", offsetDuration=day).end == NOW + timedelta(days=11)
    assert rel("after-end", offsetRange={"low": days(1), "high": days(3)}) == Interval(
        NOW + timedelta(days=11), NOW + timedelta(days=13)
    )
    assert rel("before", offsetRange={"low": days(1), "high": days(3)}) == Interval(
        NOW - timedelta(days=3), NOW - timedelta(days=1)
    )
    with pytest.raises(BusinessRuleViolation):
        rel("sometime")


def test_own_interval_without_timing_is_none() -> None:
    assert own_interval({}, NOW, None, "x") is None


def test_dependents_wait_for_generated_predecessors() -> None:
    a, b = action("a", timingDuration=days(2)), action("b", timingDuration=days(3))
    c = action("c", relatedAction=[{"actionId": "a", "relationship": "after-end"},
                                   {"actionId": "b", "relationship": "after"}])  # fmt: skip
    result = apply(plan(c, a, b), [TASK], persist=True)  # the worklist's statuses
    waiting = task_of(result, "c")
    refs = [e["valueReference"]["reference"] for e in extension_values(waiting, WAITS_FOR)]
    assert refs == [f"#{task_of(result, 'a')['id']}", f"#{task_of(result, 'b')['id']}"]
    assert waiting["status"] == "draft" and waiting["businessStatus"] == {"text": "waiting for: A, B"}
    assert period(result, "c")["end"] == "2024-03-04T09:30:00+00:00"  # the latest predecessor's due date
    assert task_of(result, "a")["status"] == "requested"


def test_inapplicable_predecessor_is_not_waited_for() -> None:
    a = action("a", condition=[condition("false")])
    b = action("b", relatedAction=[{"actionId": "a", "relationship": "after-end", "offsetDuration": days(1)}])
    result = apply(plan(a, b), [TASK], persist=True)
    task = task_of(result, "b")
    assert task["status"] == "requested" and extension_values(task, WAITS_FOR) == []
    assert period(result, "b")["end"] == "2024-03-02T09:30:00+00:00"


def test_before_start_makes_the_other_action_wait() -> None:
    prep = action("prep", relatedAction=[{"actionId": "main", "relationship": "before-start"}])
    result = apply(plan(prep, action("main", timingDuration=days(5))), [TASK])
    assert extension_values(task_of(result, "main"), WAITS_FOR)[0]["valueReference"]["reference"] == (
        f"#{task_of(result, 'prep')['id']}"
    )


def test_waiting_for_a_group_means_waiting_for_its_tasks() -> None:
    group = {"id": "g", "action": [action("x"), action("y")]}
    after = action("z", relatedAction=[{"actionId": "g", "relationship": "after-end"}])
    result = apply(plan(group, after), [TASK])
    assert len(extension_values(task_of(result, "z"), WAITS_FOR)) == 2


def test_dependency_cycle_is_reported_with_the_action_paths() -> None:
    a = action("a", relatedAction=[{"actionId": "b", "relationship": "after-end"}])
    b = action("b", relatedAction=[{"actionId": "a", "relationship": "after-end"}])
    with pytest.raises(BusinessRuleViolation) as caught:
        apply(plan(a, b, action("c")), [TASK])
    assert caught.value.expression == ("PlanDefinition.action[0]", "PlanDefinition.action[1]")


def test_contradictory_waits_are_a_cycle() -> None:
    a = action("a", relatedAction=[{"actionId": "b", "relationship": "after-end"},
                                   {"actionId": "b", "relationship": "before-start"}])  # fmt: skip
    with pytest.raises(BusinessRuleViolation):
        apply(plan(a, action("b")), [TASK])


def test_unknown_related_action_is_a_warning() -> None:
    result = apply(plan(action("a", relatedAction=[{"actionId": "ghost", "relationship": "after"}])), [TASK])
    assert result.issues[0].severity == "warning"
    assert result.issues[0].expression == ("PlanDefinition.action[0].relatedAction[0]",)


def test_out_of_range_timing_in_stored_content_is_a_422_naming_the_element_not_an_overflow() -> None:
    """Content stored before validation refused such durations: 1e300 days overflowed into a 500."""
    huge = {"value": 1e300, "unit": "days", "system": "http://unitsofmeasure.org", "code": "d"}
    with pytest.raises(BusinessRuleViolation) as caught:
        apply(plan(action("a", timingDuration=huge)), [TASK])
    assert caught.value.status == 422 and caught.value.expression == ("PlanDefinition.action[0].timing",)
    end_of_time = action("b", timingDateTime="9999-12-31T00:00:00Z")
    after = action("c", relatedAction=[{"actionId": "b", "relationship": "after-end", "offsetDuration": days(2)}])
    with pytest.raises(BusinessRuleViolation) as caught:
        apply(plan(end_of_time, after), [TASK])
    assert caught.value.expression == ("PlanDefinition.action[1]",)
