"""to_transaction_bundle: independent resources, rewritten references, Provenance; extension definitions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from engine_support import activity, apply, ctx, plan

from carepath.engine import to_transaction_bundle
from carepath.fhir.models import model_class

SERVICE = activity("s", "ServiceRequest", code={"text": "CT"})
CONTRACTS = Path(__file__).resolve().parents[3] / "contracts" / "extensions"


def make_bundle(**extra: Any) -> tuple[Any, dict[str, Any]]:
    plan_ = plan({"id": "a", "definitionCanonical": SERVICE["url"]},
                 {"id": "b", "definitionCanonical": SERVICE["url"],
                  "relatedAction": [{"actionId": "a", "relationship": "after-end"}]})  # fmt: skip
    data = {"resourceType": "Bundle", "id": "d1", "type": "collection", "entry": []}
    result = apply(plan_, [SERVICE], data=data)
    bundle = to_transaction_bundle(result, plan_reference="PlanDefinition/test-plan/_history/3", ctx=ctx(data=data),
                                   **extra)  # fmt: skip
    return result, bundle


def _refs(value: Any) -> list[str]:
    if isinstance(value, dict):
        own = [value["reference"]] if isinstance(value.get("reference"), str) else []
        return own + [r for v in value.values() for r in _refs(v)]
    if isinstance(value, list):
        return [r for v in value for r in _refs(v)]
    return []


def test_every_contained_resource_becomes_an_entry_with_careplan_first() -> None:
    result, bundle = make_bundle()
    model_class("Bundle").model_validate(bundle)
    assert bundle["type"] == "transaction"
    types = [e["resource"]["resourceType"] for e in bundle["entry"]]
    assert types[0] == "CarePlan" and types[-1] == "Provenance"
    assert types[1:-1] == [r["resourceType"] for r in result.careplan["contained"]]
    for entry in bundle["entry"]:
        assert entry["fullUrl"].startswith("urn:uuid:") and "id" not in entry["resource"]
        assert entry["request"] == {"method": "POST", "url": entry["resource"]["resourceType"]}
        assert "contained" not in entry["resource"]
        model_class(entry["resource"]["resourceType"]).model_validate(entry["resource"])


def test_local_references_are_rewritten_to_entry_urns() -> None:
    _, bundle = make_bundle()
    urns = {e["fullUrl"] for e in bundle["entry"]}
    refs = _refs([e["resource"] for e in bundle["entry"]])
    assert not [r for r in refs if r.startswith("#")]
    careplan_urn = bundle["entry"][0]["fullUrl"]
    tasks = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Task"]
    assert all(t["basedOn"] == [{"reference": careplan_urn}] for t in tasks)
    assert all(t["focus"]["reference"] in urns for t in tasks)
    waits = [x["valueReference"]["reference"] for t in tasks for x in t.get("extension", []) if "valueReference" in x]
    assert waits and all(w in urns for w in waits)


def test_provenance_names_plan_version_inputs_and_targets() -> None:
    _, bundle = make_bundle(extra_inputs=[{"reference": "Observation/trigger-1"}])
    provenance = bundle["entry"][-1]["resource"]
    assert [t["reference"] for t in provenance["target"]] == [e["fullUrl"] for e in bundle["entry"][:-1]]
    assert provenance["recorded"] == "2024-03-01T09:30:00+00:00"
    assert [e["what"] for e in provenance["entity"]] == [
        {"reference": "PlanDefinition/test-plan/_history/3",
         "display": "https://fhir.carepath.dev/PlanDefinition/test-plan|2.1.0"},
        {"reference": "Patient/p1"}, {"reference": "Bundle/d1"}, {"reference": "Observation/trigger-1"},
    ]  # fmt: skip


def test_bundle_is_deterministic() -> None:
    assert make_bundle()[1] == make_bundle()[1]


def _containers(value: Any) -> list[Any]:
    """Every dict and list inside a JSON value, itself included."""
    if isinstance(value, dict):
        return [value, *(c for v in value.values() for c in _containers(v))]
    if isinstance(value, list):
        return [value, *(c for v in value for c in _containers(v))]
    return []


def test_the_bundle_shares_nothing_mutable_with_the_result() -> None:
    """Persisting rewrites the entries in place (ids, references): that must never reach the engine's result."""
    result, bundle = make_bundle()
    before = json.dumps(result.careplan, sort_keys=True)
    shared = {id(c) for c in _containers(result.careplan)} & {id(c) for c in _containers(bundle)}
    assert shared == set()
    for entry in bundle["entry"]:
        entry["resource"]["id"] = "changed"
        entry["resource"].pop("extension", None)
    assert json.dumps(result.careplan, sort_keys=True) == before


def test_every_extension_the_engine_writes_is_defined_in_contracts() -> None:
    definitions = [json.loads(p.read_text()) for p in sorted(CONTRACTS.glob("*.json"))]
    for definition in definitions:
        model_class("StructureDefinition").model_validate(definition)
    defined = {d["url"] for d in definitions}
    result, _ = make_bundle()
    group = {"id": "g", "trigger": [{"type": "named-event", "name": "x"}], "definitionCanonical": SERVICE["url"]}
    used = {
        e["url"]
        for r in [*result.careplan["contained"], *apply(plan(group), [SERVICE]).careplan["contained"]]
        for e in [*r.get("extension", []), *(x for a in r.get("action", []) for x in a.get("extension", []))]
        if e["url"].startswith("https://fhir.carepath.dev/")
    }
    assert used and used <= defined
