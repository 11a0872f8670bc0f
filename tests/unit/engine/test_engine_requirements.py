"""`pathway_data_requirements`: the resource types a pathway can read, derived from its definitions.

The derivation must never be smaller than what the engine reads: the shipped pathway applied to every sample
patient gives the same CarePlan from the whole record (plus earlier carepath output) as from the derived types.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from engine_support import NOW, condition, expr, variable

from carepath.content.loader import load_pathway_files
from carepath.content.samples import ALL_CASES
from carepath.engine import ApplyContext, DictResolver, apply_plan_definition
from carepath.engine.requirements import module_definition_library, pathway_data_requirements
from carepath.fhir.validation import validate_resource

PATHWAYS = Path(__file__).resolve().parents[3] / "pathways"
PLAN_URL = "https://fhir.carepath.dev/PlanDefinition/chemo-failure-follow-up"
GENERATED = ("CarePlan", "RequestGroup", "Task", "ServiceRequest", "CommunicationRequest", "Provenance", "Goal")


def _plan(*expressions: str, **fields: Any) -> dict[str, Any]:
    return {"resourceType": "PlanDefinition", "url": "urn:test:plan", "version": "1", "status": "active",
            "extension": [variable(f"v{i}", text) for i, text in enumerate(expressions)], **fields}  # fmt: skip


def _types(*expressions: str) -> frozenset[str] | None:
    return pathway_data_requirements(_plan(*expressions), DictResolver([])).types


@pytest.fixture(scope="module")
def content() -> list[dict[str, Any]]:
    return load_pathway_files(PATHWAYS)


def test_the_shipped_pathway_reads_its_clinical_record_only(content: list[dict[str, Any]]) -> None:
    plan = next(r for r in content if r.get("url") == PLAN_URL)
    requirements = pathway_data_requirements(plan, DictResolver(content))
    assert requirements.types == {"Observation", "Condition", "MedicationRequest", "MedicationAdministration"}
    assert requirements.unbounded == ()
    assert len(requirements.definitions) == 1 + len([r for r in content if r["resourceType"] == "ActivityDefinition"])


@pytest.mark.parametrize("case", ALL_CASES, ids=lambda c: c.key)
def test_applying_to_the_derived_types_gives_the_same_careplan(content: list[dict[str, Any]], case: Any) -> None:
    """Earlier carepath output in the record (a Task, a CarePlan) is left out and changes nothing."""
    plan = next(r for r in content if r.get("url") == PLAN_URL)
    bundle = case.bundle(NOW)
    patient = f"Patient/{case.key}"
    earlier = [{"resourceType": "Task", "id": "t-old", "status": "requested", "intent": "order",
                "for": {"reference": patient}},
               {"resourceType": "CarePlan", "id": "cp-old", "status": "active", "intent": "plan",
                "subject": {"reference": patient}}]  # fmt: skip
    whole = {**bundle, "entry": [*bundle["entry"], *({"resource": r} for r in earlier)]}
    types = pathway_data_requirements(plan, DictResolver(content)).types
    assert types is not None
    kept = [e for e in whole["entry"] if e["resource"]["resourceType"] in types or e["resource"]["id"] == case.key]
    results = [apply_plan_definition(plan, DictResolver(content), ApplyContext(patient, NOW, data=data))
               for data in (whole, {**whole, "entry": kept})]  # fmt: skip
    assert results[0].careplan == results[1].careplan
    assert results[0].applicable == results[1].applicable


@pytest.mark.parametrize(
    ("text", "types"),
    [
        ("%data.entry.resource.ofType(Observation).value", {"Observation"}),
        ("%data.entry.resource.where(resourceType = 'Condition' and clinicalStatus.exists())", {"Condition"}),
        ("%data.entry.resource.where((resourceType='MedicationRequest' or resourceType='Procedure') and x)",
         {"MedicationRequest", "Procedure"}),
        ("%data.entry.resource.where(resourceType in ('Observation' | 'Condition')).count() > 1",
         {"Observation", "Condition"}),
        ("%data.entry.resource.where(resourceType='Observation' and code.text = 'a) or (b').exists()", {"Observation"}),
        ("%data.entry.resource.where(resourceType='Task') | %data.entry.resource.ofType(CarePlan)",
         {"Task", "CarePlan"}),
        ("%subject.birthDate < %now", set()),
        ("%encounter.class.exists()", {"Encounter"}),
    ],
)  # fmt: skip
def test_bounded_reads(text: str, types: set[str]) -> None:
    assert _types(text) == types


@pytest.mark.parametrize(
    "text",
    [
        "%data.entry.resource.count() > 3",
        "%data.entry.resource.where(status = 'final').exists()",
        "%data.entry.resource.where(resourceType = 'Observation' or status = 'final').exists()",
        "%data.entry.resource.ofType(Observation).subject.resolve().exists()",
        "%data.entry.where(resource.resourceType = 'Observation').exists()",
        "%data.descendants().exists()",
        "%subject.generalPractitioner.resolve().exists()",
    ],
)
def test_unbounded_reads_fetch_the_whole_record(text: str) -> None:
    requirements = pathway_data_requirements(_plan(text), DictResolver([]))
    assert requirements.types is None
    assert requirements.unbounded == ("PlanDefinition.extension[0].valueExpression",)


def test_another_language_is_unbounded() -> None:
    plan = _plan(action=[{"condition": [condition("Exists([Observation])", language="text/cql")]}])
    assert pathway_data_requirements(plan, DictResolver([])).types is None


def test_activity_definitions_nested_plans_and_declared_inputs_are_followed() -> None:
    activity = {"resourceType": "ActivityDefinition", "url": "urn:test:ad", "version": "1", "status": "active",
                "kind": "Task", "dynamicValue": [{"path": "description", "expression": expr(
                    "%data.entry.resource.ofType(Procedure).first().id")}]}  # fmt: skip
    nested = {**_plan("%data.entry.resource.ofType(AllergyIntolerance).exists()"), "url": "urn:test:nested",
              "action": [{"definitionCanonical": "urn:test:ad|1"}]}  # fmt: skip
    glucose = {"system": "http://loinc.org", "code": "2339-0"}
    plan = _plan(action=[
        {"definitionCanonical": "urn:test:nested"},
        {"input": [{"type": "Observation", "codeFilter": [{"path": "code", "code": [glucose]}]}],
         "trigger": [{"type": "data-added", "data": [{"type": "DiagnosticReport"}]}]},
    ])  # fmt: skip
    requirements = pathway_data_requirements(plan, DictResolver([activity, nested]))
    assert requirements.types == {"Procedure", "AllergyIntolerance", "Observation", "DiagnosticReport"}
    observation = next(r for r in requirements.requirements if r.type == "Observation")
    assert observation.codes == (("http://loinc.org", "2339-0"),)
    assert requirements.definitions == ("urn:test:plan|1", "urn:test:nested|1", "urn:test:ad|1")


def test_codes_named_beside_the_type_are_kept_unless_some_read_has_none() -> None:
    ecog = (
        "%data.entry.resource.where(resourceType='Observation' and "
        "code.coding.exists(system='http://loinc.org' and code='89247-1'))"
    )
    coded = pathway_data_requirements(_plan(ecog), DictResolver([])).requirements
    assert [(r.type, r.codes) for r in coded] == [("Observation", (("http://loinc.org", "89247-1"),))]
    mixed = pathway_data_requirements(_plan(ecog, "%data.entry.resource.ofType(Observation)"), DictResolver([]))
    assert [(r.type, r.codes) for r in mixed.requirements] == [("Observation", ())]


def test_reads_tells_which_writes_concern_the_pathway() -> None:
    bounded = pathway_data_requirements(_plan("%data.entry.resource.ofType(Observation)"), DictResolver([]))
    assert bounded.reads("Observation") and not bounded.reads("Task")
    unbounded = pathway_data_requirements(_plan("%data.entry.resource.count()"), DictResolver([]))
    assert unbounded.reads("Task")


def test_generated_types_only_when_asked() -> None:
    assert not (_types("%data.entry.resource.ofType(Observation)") or set()) & set(GENERATED)
    assert _types("%data.entry.resource.ofType(Task).exists()") == {"Task"}


def test_the_library_is_a_valid_module_definition(content: list[dict[str, Any]]) -> None:
    plan = next(r for r in content if r.get("url") == PLAN_URL)
    library = module_definition_library(plan, pathway_data_requirements(plan, DictResolver(content)))
    validate_resource(library)
    assert library["type"]["coding"][0]["code"] == "module-definition"
    assert sorted(d["type"] for d in library["dataRequirement"]) == [
        "Condition", "MedicationAdministration", "MedicationRequest", "Observation"]  # fmt: skip
    assert library["relatedArtifact"][0] == {"type": "depends-on", "resource": f"{PLAN_URL}|{plan['version']}"}
    unbounded = module_definition_library(plan, pathway_data_requirements(_plan("%data"), DictResolver([])))
    validate_resource(unbounded)
    assert unbounded["dataRequirement"] == [{"type": "Resource"}]
