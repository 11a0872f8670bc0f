"""Overdue detection and priority steps, and routing to a CareTeam participant, as pure rules."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from carepath.workflow.overdue import overdue
from carepath.workflow.routing import owner_for

NOW = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)
SNOMED = "http://snomed.info/sct"
ONCOLOGIST = {"coding": [{"system": SNOMED, "code": "310512001", "display": "Medical oncologist"}]}


def task(status: str = "requested", end: str = "2025-03-10T11:59:59+00:00", **extra: Any) -> dict[str, Any]:
    return {"resourceType": "Task", "id": "t", "status": status, "restriction": {"period": {"end": end}}, **extra}


@pytest.mark.parametrize(("before", "after"), [("routine", "urgent"), ("urgent", "asap"), ("asap", "asap"),
                                               ("stat", "stat")])  # fmt: skip
def test_an_overdue_task_goes_up_one_priority_step_never_to_stat(before: str, after: str) -> None:
    alert = overdue(task(priority=before), NOW)
    assert alert is not None and alert.task["priority"] == after and alert.raised_from == before
    assert alert.due == "2025-03-10T11:59:59+00:00"


def test_a_task_without_priority_counts_as_routine() -> None:
    alert = overdue(task(), NOW)
    assert alert is not None and alert.task["priority"] == "urgent"


def test_not_overdue() -> None:
    assert overdue(task(end="2025-03-10T12:00:00+00:00"), NOW) is None  # due exactly now: not yet late
    assert overdue(task(end="2025-03-10T14:00:00+02:00"), NOW) is None  # the same instant in another zone
    assert overdue(task(end="2025-03-10"), NOW) is None  # a date is due at the end of that day
    assert overdue(task(end="2025-03-09"), NOW) is not None
    for status in ("draft", "on-hold", "completed", "cancelled"):
        assert overdue(task(status), NOW) is None
    assert overdue({"resourceType": "Task", "id": "t", "status": "requested"}, NOW) is None


def careteam(*participants: dict[str, Any], status: str = "active") -> dict[str, Any]:
    return {"resourceType": "CareTeam", "id": "ct", "status": status, "participant": list(participants)}


def test_owner_is_the_participant_in_the_tasks_role() -> None:
    nurse = {"role": [{"coding": [{"system": SNOMED, "code": "224552008"}]}], "member": {"reference": "Practitioner/n"}}
    doctor = {"role": [ONCOLOGIST], "member": {"reference": "Practitioner/d", "display": "Dr D"}}
    routed = {"resourceType": "Task", "performerType": [ONCOLOGIST]}
    assert owner_for(routed, [careteam(nurse, doctor)], NOW) == {"reference": "Practitioner/d", "display": "Dr D"}


def test_no_owner_without_a_match() -> None:
    doctor = {"role": [ONCOLOGIST], "member": {"reference": "Practitioner/d"}}
    ended = {**doctor, "period": {"end": "2025-03-01"}}
    routed = {"resourceType": "Task", "performerType": [ONCOLOGIST]}
    assert owner_for(routed, [], NOW) is None
    assert owner_for(routed, [careteam(ended)], NOW) is None
    assert owner_for(routed, [careteam(doctor, status="inactive")], NOW) is None
    assert owner_for({"resourceType": "Task", "performerType": [{"text": "Medical oncologist"}]},
                     [careteam(doctor)], NOW) is None  # fmt: skip
    assert owner_for({**routed, "owner": {"reference": "Practitioner/x"}}, [careteam(doctor)], NOW) is None
