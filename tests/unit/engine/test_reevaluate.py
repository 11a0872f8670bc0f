"""engine/reevaluate.py, pure: what a fresh $apply adds to an active CarePlan and which Tasks it escalates."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from carepath.engine.explain import GENERATED_BY
from carepath.engine.reevaluate import changes, data_requirements, reads

SHIPPED = json.loads(
    (Path(__file__).resolve().parents[3] / "pathways" / "plandefinition-chemo-failure-follow-up.json").read_text()
)


def generated(action: str) -> list[dict[str, Any]]:
    return [{"url": GENERATED_BY, "extension": [{"url": "actionId", "valueString": action}]}]


def task(action: str, priority: str, end: str, status: str = "requested", **extra: Any) -> dict[str, Any]:
    return {"resourceType": "Task", "status": status, "priority": priority, "extension": generated(action),
            "restriction": {"period": {"end": end}}, **extra}  # fmt: skip


def fresh(*resources: dict[str, Any]) -> dict[str, Any]:
    entries = [{"fullUrl": "urn:uuid:cp", "resource": {"resourceType": "CarePlan"}}]
    entries += [{"fullUrl": f"urn:uuid:{i}", "resource": r} for i, r in enumerate(resources)]
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def test_only_new_actions_are_added_pointing_at_the_existing_care_plan_and_tasks() -> None:
    stored = [{**task("A", "routine", "2026-12-10T00:00:00+00:00"), "id": "t-a"}]
    waits = {"url": "waits", "valueReference": {"reference": "urn:uuid:0"}}
    new = task("B", "urgent", "2026-12-04T00:00:00+00:00", basedOn=[{"reference": "urn:uuid:cp"}],
               extension=[*generated("B"), waits])  # fmt: skip
    found = changes(fresh(task("A", "routine", "2026-12-12T00:00:00+00:00"), new), "CarePlan/1", stored)
    assert [e["resource"]["extension"][0]["extension"][0]["valueString"] for e in found.added] == ["B"]
    added = found.added[0]["resource"]
    assert added["basedOn"] == [{"reference": "CarePlan/1"}]
    assert added["extension"][1]["valueReference"] == {"reference": "Task/t-a"}  # the existing Task of A
    assert found.escalated == []


def test_escalation_raises_priority_and_brings_the_due_date_forward_never_back() -> None:
    stored = [{**task("A", "routine", "2026-12-10T00:00:00+00:00"), "id": "t-a"},
              {**task("C", "urgent", "2026-12-03T00:00:00+00:00"), "id": "t-c"},
              {**task("D", "routine", "2026-12-10T00:00:00+00:00", status="completed"), "id": "t-d"}]  # fmt: skip
    found = changes(fresh(task("A", "urgent", "2026-12-02T00:00:00+00:00"),
                          task("C", "routine", "2026-12-30T00:00:00+00:00"),
                          task("D", "urgent", "2026-12-02T00:00:00+00:00")), "CarePlan/1", stored)  # fmt: skip
    assert [(t["id"], t["priority"], t["restriction"]["period"]["end"]) for t in found.escalated] == [
        ("t-a", "urgent", "2026-12-02T00:00:00+00:00")
    ]  # C is never de-escalated; D is closed


def test_an_escalation_keeps_an_earlier_due_date() -> None:
    stored = [{**task("A", "routine", "2026-12-01T00:00:00+00:00"), "id": "t-a"}]
    [escalated] = changes(fresh(task("A", "urgent", "2026-12-05T00:00:00+00:00")), "CarePlan/1", stored).escalated
    assert escalated["restriction"]["period"]["end"] == "2026-12-01T00:00:00+00:00"


def test_the_shipped_pathway_reads_its_observations_and_treatments() -> None:
    types, codes = data_requirements(SHIPPED)
    assert {"Observation", "MedicationRequest", "MedicationAdministration", "Condition"} <= types
    assert {"72514-3", "97509-4", "89247-1", "266721009"} <= codes
    pain = {"resourceType": "Observation", "code": {"coding": [{"system": "http://loinc.org", "code": "72514-3"}]}}
    heart_rate = {"resourceType": "Observation", "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]}}
    requirements = (types, codes)
    assert reads(requirements, pain) and not reads(requirements, heart_rate)
    assert not reads(requirements, {"resourceType": "Appointment"})
