"""Engine-only benchmark: a 20-action pathway with 30 FHIRPath conditions over a 200-resource patient Bundle.

Run: python bench/bench_engine.py [runs] [--fhirpathpy]   (in-process, no network; median, p95)
`--fhirpathpy` evaluates every expression with fhirpathpy alone (compiled FHIRPath off), for before/after figures.

The pathway reads the data the recommended way: a few plan-level named variables pull the facts out of the
Bundle once per apply (lazily, memoised), and the 30 applicability conditions test those facts.

Three figures are printed: (1) facts computed from the 200-resource Bundle by FHIRPath inside the apply, and
(2) the same apply with those facts supplied as parameters (a supplied parameter replaces the variable, so the
Bundle is never scanned): the engine's own cost; (3) the shipped pathway applied to each of the 15 sample
patients of the clinical spec (P01-P10, NA-NE).
"""

from __future__ import annotations

import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from carepath.content.loader import load_pathway_files
from carepath.content.samples import ALL_CASES
from carepath.engine import ApplyContext, DictResolver, apply_plan_definition
from carepath.fhir import fhirpath as fhirpath_module

BASE = "https://fhir.carepath.dev"
LOINC = "http://loinc.org"


def fhirpath(text: str) -> dict[str, str]:
    return {"language": "text/fhirpath", "expression": text}


def variable(name: str, text: str) -> dict[str, Any]:
    return {
        "url": "http://hl7.org/fhir/StructureDefinition/variable",
        "valueExpression": {"name": name, **fhirpath(text)},
    }


def activities() -> list[dict[str, Any]]:
    kinds = ["Task", "ServiceRequest", "CommunicationRequest"]
    return [
        {"resourceType": "ActivityDefinition", "url": f"{BASE}/ActivityDefinition/bench-{i}", "version": "1",
         "status": "active", "kind": kinds[i % 3], "title": f"Step {i}", "code": {"text": f"Step {i}"},
         "participant": [{"type": "practitioner", "role": {"text": "nurse"}}]}
        for i in range(20)
    ]  # fmt: skip


CONDITIONS = [
    "%ecog <= 2", "%ecog.exists()", "%progressed", "%age >= 18", "%age < 100", "%weight > 40",
    "%ecog < %ecogMax", "%progressed and %ecog <= 3", "%weight.exists() and %age > 30", "%conditionCount > 0",
]  # fmt: skip


def action(i: int) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": f"a{i}", "title": f"Action {i}", "definitionCanonical": f"{BASE}/ActivityDefinition/bench-{i}|1",
        "condition": [{"kind": "applicability", "expression": fhirpath(CONDITIONS[(i + k) % 10])}
                      for k in range(1 if i % 2 else 2)],
        "timingDuration": {"value": 7 + i, "unit": "days", "code": "d", "system": "http://unitsofmeasure.org"},
    }  # fmt: skip
    if i % 5 == 4:
        out["relatedAction"] = [{"actionId": f"a{i - 1}", "relationship": "after-end",
                                 "offsetDuration": {"value": 2, "unit": "days", "code": "d"}}]  # fmt: skip
    if i % 4 == 0:
        out["dynamicValue"] = [{"path": "priority", "expression": fhirpath("iif(%ecog >= 2, 'urgent', 'routine')")}]
    return out


def pathway() -> dict[str, Any]:
    actions = [action(i) for i in range(20)]
    return {
        "resourceType": "PlanDefinition", "url": f"{BASE}/PlanDefinition/bench", "version": "1", "status": "active",
        "title": "Benchmark pathway",
        "extension": [
            variable("ecogMax", "4"),
            variable("observations", "%data.entry.resource.ofType(Observation)"),
            variable("ecog", "%observations.where(code.coding.code = '89247-1').last().value"),
            variable("weight", "%observations.where(code.coding.code = '29463-7').last().value.value"),
            variable("progressed", "%observations.where(code.coding.code = '97509-4').exists()"),
            variable("conditionCount", "%data.entry.resource.ofType(Condition).count()"),
            variable("age", "today().toString().substring(0, 4).toInteger() - %patient.birthDate.toString()"
                            ".substring(0, 4).toInteger()"),
        ],
        "action": [*actions[:10], {"id": "group", "title": "Group", "selectionBehavior": "all",
                                   "action": actions[10:]}],
    }  # fmt: skip


def patient_bundle(size: int = 200) -> dict[str, Any]:
    codes = ["89247-1", "29463-7", "97509-4", "8867-4", "8480-6", "2160-0"]
    entries: list[dict[str, Any]] = [{"resource": {"resourceType": "Patient", "id": "p1", "birthDate": "1958-04-02"}}]
    for i in range(size - 1):
        if i % 5 == 0:
            resource = {"resourceType": "Condition", "id": f"c{i}", "subject": {"reference": "Patient/p1"},
                        "code": {"text": "condition"}}  # fmt: skip
        else:
            code = codes[i % len(codes)]
            value = {"valueInteger": 1} if code == "89247-1" else {"valueQuantity": {"value": 70 + i % 5, "unit": "kg"}}
            resource = {"resourceType": "Observation", "id": f"o{i}", "status": "final",
                        "code": {"coding": [{"system": LOINC, "code": code}]}, "subject": {"reference": "Patient/p1"},
                        "effectiveDateTime": "2024-01-01T00:00:00Z", **value}  # fmt: skip
        entries.append({"resource": resource})
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}


def measure(label: str, runs: int, plan: dict[str, Any], resolver: DictResolver, *contexts: ApplyContext) -> None:
    results = [apply_plan_definition(plan, resolver, ctx) for ctx in contexts]  # warm-up: compiles every expression
    timings = []
    for _ in range(runs):
        for ctx in contexts:
            start = time.perf_counter()
            apply_plan_definition(plan, resolver, ctx)
            timings.append((time.perf_counter() - start) * 1000)
    timings.sort()
    p95 = timings[min(len(timings) - 1, int(len(timings) * 0.95))]
    contained = sum(len(r.careplan["contained"]) for r in results)
    print(f"{label}: {contained} contained resources, {len(timings)} applies: "
          f"median {statistics.median(timings):.2f} ms   p95 {p95:.2f} ms   min {timings[0]:.2f} ms")  # fmt: skip


def shipped(runs: int, now: datetime) -> None:
    content = load_pathway_files(Path(__file__).resolve().parents[1] / "pathways")
    plan = next(r for r in content if r.get("url") == f"{BASE}/PlanDefinition/chemo-failure-follow-up")
    contexts = []
    for case in ALL_CASES:
        bundle = case.bundle(now)
        patient = next(e["resource"]["id"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient")
        contexts.append(ApplyContext(subject=f"Patient/{patient}", now=now, data=bundle))
    measure("shipped pathway, 15 samples", max(1, runs // 10), plan, DictResolver(content), *contexts)


FACTS = {"ecog": {"valueInteger": 1}, "weight": {"valueDecimal": 72}, "progressed": {"valueBoolean": True},
         "conditionCount": {"valueInteger": 40}, "age": {"valueInteger": 66}}  # fmt: skip


def main(runs: int) -> None:
    plan, resolver, data = pathway(), DictResolver(activities()), patient_bundle()
    now = datetime(2024, 3, 1, 9, 30, tzinfo=UTC)
    print(f"engine $apply: 20 actions, 30 conditions, {len(data['entry'])}-resource Bundle")
    measure("facts from the Bundle    ", runs, plan, resolver, ApplyContext(subject="Patient/p1", now=now, data=data))
    supplied = {"resourceType": "Parameters", "parameter": [{"name": k, **v} for k, v in FACTS.items()]}
    measure("facts as parameters      ", runs, plan, resolver,
            ApplyContext(subject="Patient/p1", now=now, data=data, parameters=supplied))  # fmt: skip
    shipped(runs, now)


if __name__ == "__main__":
    if "--fhirpathpy" in sys.argv:
        fhirpath_module._fast = lambda expression: None  # type: ignore[assignment]  # all via fhirpathpy
    numbers = [arg for arg in sys.argv[1:] if arg.isdigit()]
    main(int(numbers[0]) if numbers else 200)
