"""Helpers for the engine tests: a frozen `now`, small plan builders and the output property checks."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from carepath.engine import ApplyContext, ApplyResult, DictResolver, apply_plan_definition
from carepath.fhir.invariants import invariant_issues
from carepath.fhir.models import model_class

NOW = datetime(2024, 3, 1, 9, 30, tzinfo=UTC)
FIXTURES = Path(__file__).resolve().parents[3] / ".." / "shared" / "fixtures" / "fhir-r4-examples"
FHIRPATH = "text/fhirpath"


def fixture(name: str) -> dict[str, Any]:
    if not FIXTURES.is_dir():
        pytest.skip("fixtures folder absent")
    return json.loads((FIXTURES / name).read_text())  # type: ignore[no-any-return]


def expr(text: str, description: str | None = None, language: str = FHIRPATH) -> dict[str, Any]:
    out = {"language": language, "expression": text}
    return {**out, "description": description} if description else out


def condition(text: str, description: str | None = None, language: str = FHIRPATH) -> dict[str, Any]:
    return {"kind": "applicability", "expression": expr(text, description, language)}


def variable(name: str, text: str) -> dict[str, Any]:
    return {
        "url": "http://hl7.org/fhir/StructureDefinition/variable",
        "valueExpression": {"name": name, "language": FHIRPATH, "expression": text},
    }


def activity(name: str, kind: str = "Task", **fields: Any) -> dict[str, Any]:
    return {
        "resourceType": "ActivityDefinition",
        "id": name,
        "url": f"https://fhir.carepath.dev/ActivityDefinition/{name}",
        "version": "1.0.0",
        "name": name,
        "title": name.replace("-", " ").title(),
        "status": "active",
        "kind": kind,
        **fields,
    }


def plan(*actions: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {
        "resourceType": "PlanDefinition",
        "id": "test-plan",
        "url": "https://fhir.carepath.dev/PlanDefinition/test-plan",
        "version": "2.1.0",
        "title": "Test plan",
        "status": "active",
        "action": list(actions),
        **fields,
    }


def ctx(**fields: Any) -> ApplyContext:
    return ApplyContext(**{"subject": "Patient/p1", "now": NOW, **fields})


def apply(
    plan_: dict[str, Any],
    definitions: list[dict[str, Any]] = (),
    **ctx_fields: Any,  # type: ignore[assignment]
) -> ApplyResult:
    result = apply_plan_definition(plan_, DictResolver(definitions), ctx(**ctx_fields))
    check_output(result.careplan)
    return result


def contained(result: ApplyResult, resource_type: str | None = None) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = result.careplan.get("contained", [])
    return [r for r in items if resource_type is None or r["resourceType"] == resource_type]


def by_id(result: ApplyResult, reference: str) -> dict[str, Any]:
    return next(r for r in contained(result) if f"#{r['id']}" == reference)


def request_group(result: ApplyResult) -> dict[str, Any]:
    return by_id(result, result.careplan["activity"][0]["reference"]["reference"])


def extension_values(resource: dict[str, Any], url: str) -> list[dict[str, Any]]:
    return [e for e in resource.get("extension", []) if e["url"] == url]


def _references(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        if isinstance(value.get("reference"), str):
            yield value["reference"]
        for item in value.values():
            yield from _references(item)
    elif isinstance(value, list):
        for item in value:
            yield from _references(item)


def check_output(careplan: dict[str, Any]) -> None:
    """The properties every $apply output must have: it validates, ids are unique, `#id` references resolve."""
    model_class("CarePlan").model_validate(careplan)
    assert invariant_issues(careplan) == []
    ids = [r["id"] for r in careplan.get("contained", [])]
    assert len(ids) == len(set(ids)), f"duplicate contained ids: {ids}"
    for resource in careplan.get("contained", []):
        model_class(resource["resourceType"]).model_validate(resource)
    local = {f"#{i}" for i in ids} | {"#"}
    dangling = [r for r in _references(careplan) if r.startswith("#") and r not in local]
    assert not dangling, f"unresolved local references: {dangling}"
