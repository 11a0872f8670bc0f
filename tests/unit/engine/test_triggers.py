"""TriggerDefinition matching (engine/triggers.py), pure, on small plans and on the shipped pathway."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from carepath.engine.triggers import TriggerEvent, triggered_by
from carepath.errors import InvalidResource

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
LOINC, SNOMED = "http://loinc.org", "http://snomed.info/sct"
SHIPPED = json.loads(
    (Path(__file__).resolve().parents[3] / "pathways" / "plandefinition-chemo-failure-follow-up.json").read_text(
        "utf-8"
    )
)


def plan(*triggers: dict[str, Any], status: str = "active") -> dict[str, Any]:
    return {"resourceType": "PlanDefinition", "status": status,
            "action": [{"id": "root", "action": [{"id": "child", "trigger": list(triggers)}]}]}  # fmt: skip


def status_obs(answer: str) -> dict[str, Any]:
    return {"resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": LOINC, "code": "97509-4"}]},
            "valueCodeableConcept": {"coding": [{"system": SNOMED, "code": answer}]}}  # fmt: skip


OBS_DATA = [{"type": "Observation", "codeFilter": [{"path": "code", "code": [{"system": LOINC, "code": "97509-4"}]}]}]


def test_a_named_event_matches_by_name_only() -> None:
    p = plan({"type": "named-event", "name": "go"})
    assert triggered_by(p, TriggerEvent(name="go"), NOW) == ["PlanDefinition.action[0].action[0].trigger[0]"]
    assert triggered_by(p, TriggerEvent(name="stop"), NOW) == []
    assert triggered_by(p, TriggerEvent(resource=status_obs("271299001")), NOW) == []


def test_only_active_plans_are_triggered() -> None:
    assert triggered_by(plan({"type": "named-event", "name": "go"}, status="draft"), TriggerEvent(name="go"), NOW) == []


@pytest.mark.parametrize(
    ("kind", "added", "modified"),
    [("data-added", True, False), ("data-modified", False, True), ("data-changed", True, True)],
)
def test_data_kinds_match_additions_and_modifications(kind: str, added: bool, modified: bool) -> None:
    p = plan({"type": kind, "data": OBS_DATA})
    obs = status_obs("271299001")
    assert bool(triggered_by(p, TriggerEvent(resource=obs), NOW)) is added
    assert bool(triggered_by(p, TriggerEvent(resource=obs, previous=obs), NOW)) is modified


def test_the_code_filter_and_the_type_must_match() -> None:
    p = plan({"type": "data-changed", "data": OBS_DATA})
    other = {**status_obs("271299001"), "code": {"coding": [{"system": LOINC, "code": "72514-3"}]}}
    assert triggered_by(p, TriggerEvent(resource=other), NOW) == []
    condition = {"resourceType": "Condition", "code": {"coding": [{"system": LOINC, "code": "97509-4"}]}}
    assert triggered_by(p, TriggerEvent(resource=condition), NOW) == []


def test_every_data_requirement_must_hold() -> None:
    both = [*OBS_DATA, {"type": "MedicationRequest"}]
    assert triggered_by(plan({"type": "data-changed", "data": both}), TriggerEvent(resource=status_obs("x")), NOW) == []


def test_the_condition_sees_the_resource_and_previous() -> None:
    expression = "value.coding.code = '271299001' and %previous.value.coding.code != '271299001'"
    p = plan({"type": "data-changed", "data": OBS_DATA,
              "condition": {"language": "text/fhirpath", "expression": expression}})  # fmt: skip
    worse, stable = status_obs("271299001"), status_obs("359746009")
    assert triggered_by(p, TriggerEvent(resource=worse, previous=stable), NOW)
    assert triggered_by(p, TriggerEvent(resource=worse, previous=worse), NOW) == []
    assert triggered_by(p, TriggerEvent(resource=stable, previous=worse), NOW) == []


def test_a_condition_in_another_language_is_refused_naming_it() -> None:
    p = plan({"type": "data-changed", "data": OBS_DATA, "condition": {"language": "text/cql", "expression": "true"}})
    with pytest.raises(InvalidResource) as caught:
        triggered_by(p, TriggerEvent(resource=status_obs("x")), NOW)
    assert caught.value.expression == ("PlanDefinition.action[0].action[0].trigger[0].condition",)


def test_the_shipped_pathway_triggers_on_its_entry_rule() -> None:
    worse, stable = status_obs("271299001"), status_obs("359746009")
    assert triggered_by(SHIPPED, TriggerEvent(resource=worse), NOW)
    assert triggered_by(SHIPPED, TriggerEvent(resource=worse, previous=stable), NOW)
    assert triggered_by(SHIPPED, TriggerEvent(resource=worse, previous=worse), NOW) == []  # no change: no trigger
    assert triggered_by(SHIPPED, TriggerEvent(resource=stable), NOW) == []
    for kind in ("MedicationRequest", "MedicationAdministration"):
        for reason, fires in (("266721009", True), ("407563006", True), ("105480006", False)):
            stopped = {"resourceType": kind, "status": "stopped",
                       "statusReason": {"coding": [{"system": SNOMED, "code": reason}]}}  # fmt: skip
            if kind == "MedicationAdministration":
                stopped["statusReason"] = [stopped["statusReason"]]  # 0..* there, 0..1 on MedicationRequest
            assert bool(triggered_by(SHIPPED, TriggerEvent(resource=stopped), NOW)) is fires, (kind, reason)
    assert triggered_by(SHIPPED, TriggerEvent(name="chemotherapy-failure"), NOW)
