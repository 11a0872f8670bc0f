"""The SearchParameter bundle: valid R4, published identically in contracts/, complete for the key parameters."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fhir.resources.R4B.bundle import Bundle

from carepath.canonical import BASE
from carepath.fhir.fhirpath import compile_expression
from carepath.fhir.models import SUPPORTED_TYPES
from carepath.fhir.search.definitions import bundle, definitions, narrow_expression, params_for, split_union

REPO = Path(__file__).resolve().parents[3]


def test_contracts_copy_is_identical_to_the_packaged_master() -> None:
    packaged = REPO / "services" / "carepath" / "fhir" / "search" / "search-parameters.json"
    published = REPO / "contracts" / "search-parameters.json"
    assert published.read_bytes() == packaged.read_bytes()


def test_bundle_is_a_valid_r4_collection_of_search_parameters() -> None:
    Bundle.model_validate(bundle())
    assert bundle()["type"] == "collection"
    assert {d["resourceType"] for d in definitions()} == {"SearchParameter"}
    urls = [d["url"] for d in definitions()]
    assert len(urls) == len(set(urls))


@pytest.mark.parametrize("resource_type", SUPPORTED_TYPES)
def test_every_narrowed_expression_compiles(resource_type: str) -> None:
    params = params_for(resource_type)
    assert {"_id", "_lastUpdated", "_profile", "_tag"} <= params.keys()
    for param in params.values():
        if param.expression:
            compile_expression(param.expression)
            assert all(b.lstrip("(").startswith(f"{resource_type}.") for b in split_union(param.expression))


KEY_PARAMS = {
    "PlanDefinition": {"url", "version", "status", "name", "title", "identifier"},
    "ActivityDefinition": {"url", "version", "status", "name", "title", "identifier"},
    "Task": {"patient", "subject", "status", "owner", "code", "priority", "based-on", "part-of", "focus", "period",
             "authored-on", "business-status", "identifier", "intent", "requester", "performer", "due-date"},
    "CarePlan": {"patient", "subject", "status", "intent", "instantiates-canonical", "based-on", "category"},
    "RequestGroup": {"patient", "subject", "status", "instantiates-canonical"},
    "Patient": {"identifier", "name", "family", "given", "birthdate", "gender"},
    "Observation": {"patient", "subject", "code", "date", "value-quantity", "status", "category"},
    "Condition": {"patient", "subject", "code", "clinical-status"},
    "Provenance": {"target"},
    "AuditEvent": {"date", "entity"},
}  # fmt: skip


@pytest.mark.parametrize(("resource_type", "codes"), KEY_PARAMS.items())
def test_key_parameters_are_defined(resource_type: str, codes: set[str]) -> None:
    assert codes <= params_for(resource_type).keys()


def test_task_due_date_is_our_own_definition() -> None:
    due = params_for("Task")["due-date"]
    assert (due.type, due.expression) == ("date", "Task.restriction.period.end")
    assert due.url == f"{BASE}/SearchParameter/Task-due-date"
    assert {"eq", "lt", "ge", "sa", "eb"} <= due.comparators


def test_spec_expressions_are_kept_and_narrowed_per_type() -> None:
    assert params_for("Task")["patient"].expression == "Task.for.where(resolve() is Patient)"
    assert params_for("Observation")["patient"].expression == "Observation.subject.where(resolve() is Patient)"
    assert params_for("Observation")["value-quantity"].expression == (
        "(Observation.value as Quantity) | (Observation.value as SampledData)"
    )
    assert params_for("Task")["_tag"].expression == "Task.meta.tag"
    assert params_for("Task")["_id"].expression == ""  # answered from the resource table
    assert params_for("Task")["owner"].target[:2] == ("Practitioner", "Organization")


def test_union_split_ignores_bars_inside_parentheses_and_strings() -> None:
    assert split_union("(A.b as X) | A.c.where(d = 'x|y') | B.e") == ["(A.b as X)", "A.c.where(d = 'x|y')", "B.e"]
    assert narrow_expression("Condition.code | Observation.code | Resource.meta.tag", "Observation") == (
        "Observation.code | Observation.meta.tag"
    )


def test_contracts_file_is_json_with_a_fixed_id() -> None:
    loaded = json.loads((REPO / "contracts" / "search-parameters.json").read_text(encoding="utf-8"))
    assert loaded["id"] == "carepath-search-parameters"
