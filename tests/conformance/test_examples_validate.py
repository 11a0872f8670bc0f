"""Conformance at the validation level, over the official FHIR R4 examples (CC0) in ../shared/fixtures.

Every example of a type carepath serves validates as it is and is left unchanged by validation; the others
(Bundles) are refused naming resourceType. No official example in the folder violates a required binding or
our structural checks, so none is listed as a known-invalid exception: should a new example be refused, this
suite fails and the case must be judged (a bug in our checks, or an example that really breaks R4).

Then official examples with one element broken on purpose: the refusal must name exactly that element.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from carepath import jsonutil
from carepath.errors import InvalidResource
from carepath.fhir.models import is_supported
from carepath.fhir.validation import validate_resource

pytestmark = pytest.mark.conformance

FIXTURES = Path(__file__).resolve().parents[2] / ".." / "shared" / "fixtures" / "fhir-r4-examples"
ABSENT = f"fixtures folder absent: {FIXTURES} (the official FHIR R4 examples sit beside the clone in CI)"


def example_files() -> list[Any]:
    if not FIXTURES.is_dir():
        return [pytest.param(None, id="fixtures-absent", marks=pytest.mark.skip(reason=ABSENT))]
    return [pytest.param(path, id=path.name) for path in sorted(FIXTURES.glob("*.json"))]


def load(name: str) -> dict[str, Any]:
    path = FIXTURES / name
    if not path.is_file():
        pytest.skip(ABSENT)
    resource: dict[str, Any] = jsonutil.loads(path.read_bytes())
    return resource


@pytest.mark.parametrize("path", example_files())
def test_official_example(path: Path) -> None:
    raw = path.read_bytes()
    resource = jsonutil.loads(raw)
    if not is_supported(resource["resourceType"]):
        with pytest.raises(InvalidResource) as caught:
            validate_resource(resource)
        assert caught.value.expression == ("resourceType",)
        return
    before = copy.deepcopy(resource)
    validate_resource(resource, expected_type=resource["resourceType"])
    assert resource == before  # validation never touches what we store


def test_the_folder_holds_examples_of_the_types_we_serve() -> None:
    if not FIXTURES.is_dir():
        pytest.skip(ABSENT)
    types = {jsonutil.loads(path.read_bytes())["resourceType"] for path in FIXTURES.glob("*.json")}
    assert {"PlanDefinition", "ActivityDefinition", "CarePlan", "Task", "Patient", "Observation"} <= types


# (example file, where to break it, the bad value, the expression the refusal must name)
BROKEN = [
    ("task-example1.json", ["status"], "bogus", "Task.status"),
    ("task-example1.json", ["intent"], "directive", "Task.intent"),
    ("plandefinition-example.json", ["action", 0, "action", 1, "action", 0, "selectionBehavior"], "some",
     "PlanDefinition.action[0].action[1].action[0].selectionBehavior"),
    ("careplan-example.json", ["activity", 0, "detail", "status"], "done", "CarePlan.activity[0].detail.status"),
    ("questionnaire-example.json", ["item", 0, "item", 0, "item", 0, "type"], "table",
     "Questionnaire.item[0].item[0].item[0].type"),
    ("condition-example.json", ["clinicalStatus", "coding", 0, "code"], "cured",
     "Condition.clinicalStatus.coding[0].code"),
    ("medicationrequest0301.json", ["dosageInstruction", 0, "timing", "repeat", "periodUnit"], "hour",
     "MedicationRequest.dosageInstruction[0].timing.repeat.periodUnit"),
    ("patient-example.json", ["telecom", 1, "system"], "pigeon", "Patient.telecom[1].system"),
    ("subscription-example.json", ["channel", "type"], "fax", "Subscription.channel.type"),
    ("careplan-example.json", ["text", "status"], "written", "CarePlan.text.status"),
    # bad dates, wrong JSON types, unknown elements
    ("observation-example.json", ["effectiveDateTime"], "2016-02-30", "Observation.effectiveDateTime"),
    ("task-example1.json", ["authoredOn"], "2016-10-31 08:25", "Task.authoredOn"),
    ("patient-example.json", ["active"], "true", "Patient.active"),
    ("patient-example.json", ["telecom", 1, "rank"], "1", "Patient.telecom[1].rank"),
    ("plandefinition-example.json", ["action", 0, "action", 0, "colour"], "red",
     "PlanDefinition.action[0].action[0].colour"),
    ("task-example1.json", ["id"], "example 1", "Task.id"),
]  # fmt: skip


def set_at(node: Any, steps: list[str | int], value: Any) -> None:
    for step in steps[:-1]:
        node = node[step]
    node[steps[-1]] = value


@pytest.mark.parametrize(("name", "steps", "value", "expression"), BROKEN, ids=[case[3] for case in BROKEN])
def test_a_broken_official_example_is_refused_naming_the_element(
    name: str, steps: list[str | int], value: Any, expression: str
) -> None:
    resource = load(name)
    set_at(resource, steps, value)
    with pytest.raises(InvalidResource) as caught:
        validate_resource(resource)
    assert [issue.expression for issue in caught.value.issues()] == [(expression,)]
