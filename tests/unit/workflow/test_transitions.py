"""carepath's Task state table (README, "Task workflow"), edge by edge: every pair of R4 task-status codes is
either in the issue's table (allowed) or refused with both states named."""

from __future__ import annotations

import pytest

from carepath.errors import InvalidTransition
from carepath.workflow.tasks import HELD_FROM
from carepath.workflow.transitions import held_from, settle
from task_states import EDGES, STATUSES, expected


def task(status: str, **extra: object) -> dict[str, object]:
    return {"resourceType": "Task", "id": "t1", "status": status, "intent": "order", **extra}


@pytest.mark.parametrize(("before", "after"), [e for e in EDGES if expected(*e)])
def test_allowed_edge(before: str, after: str) -> None:
    assert settle(task(before), task(after))["status"] == after


@pytest.mark.parametrize(("before", "after"), [e for e in EDGES if not expected(*e)])
def test_refused_edge_names_both_states(before: str, after: str) -> None:
    with pytest.raises(InvalidTransition) as refused:
        settle(task(before), task(after))
    assert f"from {before!r} to {after!r}" in refused.value.diagnostics
    assert refused.value.status == 422


@pytest.mark.parametrize("status", STATUSES)
def test_keeping_the_status_is_no_transition(status: str) -> None:
    assert settle(task(status), task(status, note=[{"text": "x"}]))["note"] == [{"text": "x"}]


@pytest.mark.parametrize("origin", ["draft", "requested", "ready"])
def test_hold_before_start_records_its_origin_and_resumes_there(origin: str) -> None:
    held = settle(task(origin), task("on-hold"))
    assert held_from(held) == origin
    again = settle(held, task("on-hold", description="still held"))  # a later edit keeps the origin
    assert held_from(again) == origin
    resumed = settle(again, task(origin))
    assert resumed["status"] == origin and "extension" not in resumed
    assert settle(held, task("in-progress"))["status"] == "in-progress"


def test_a_hold_resumes_only_to_where_it_came_from() -> None:
    held = settle(task("draft"), task("on-hold"))
    with pytest.raises(InvalidTransition, match=r"'on-hold' to 'requested'.*or back to draft"):
        settle(held, task("requested"))


def test_a_hold_of_started_work_has_no_origin_and_a_forged_one_is_ignored() -> None:
    forged = [{"url": HELD_FROM, "valueCode": "draft"}]
    held = settle(task("in-progress"), task("on-hold", extension=forged))
    assert held_from(held) is None
    with pytest.raises(InvalidTransition):
        settle(held, task("draft"))


def test_final_states_say_so() -> None:
    with pytest.raises(InvalidTransition, match="it is final: only entered-in-error"):
        settle(task("completed"), task("requested"))
