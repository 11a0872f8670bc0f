"""Compiled FHIRPath against fhirpathpy: same results (order and types included) and errors on the same inputs.

Inputs: every FHIRPath expression of the shipped pathways and of the search-parameter Bundle, over the scenario
Bundles (P01-P10, NA-NE at a fixed `now`) and the official R4 examples (CC0), plus hypothesis-built variations.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fhirpathpy.engine.nodes import FP_Type
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from carepath import jsonutil
from carepath.content.samples import ALL_CASES
from carepath.fhir import fhirpath
from carepath.fhir.fhirpath import evaluate, evaluate_compiled, evaluate_fhirpathpy, now_value

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / ".." / "shared" / "fixtures" / "fhir-r4-examples"
SEARCH_PARAMETERS = ROOT / "services" / "carepath" / "fhir" / "search" / "search-parameters.json"
NOW = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
_RAISED = object()


def _normal(value: Any) -> Any:
    """A comparable form that keeps what `==` forgets: bool vs int vs Decimal, FP_* types, list order."""
    if isinstance(value, list):
        return ["list", [_normal(v) for v in value]]
    if isinstance(value, dict):
        return ["dict", sorted((k, _normal(v)) for k, v in value.items())]
    if isinstance(value, FP_Type):
        return [type(value).__name__, str(value)]
    return [type(value).__name__, str(value) if isinstance(value, Decimal) else value]


def _outcome(run: Callable[[], Any]) -> Any:
    try:
        return run()
    except Exception:  # fhirpathpy signals every evaluation error with a bare Exception; raising is the outcome
        return _RAISED


Case = tuple[Any, str, dict[str, Any], Any, datetime | None]  # resource, expression, variables, lookup, now


def check(resource: Any, expression: str, variables: dict[str, Any], lookup: Any = None, now: Any = None) -> str:
    """Compare one evaluation; returns "compiled", "fallback" (not in the subset) or "deferred" (compiled form
    raised where fhirpathpy answers: `evaluate` then returns fhirpathpy's answer)."""
    reference = _outcome(lambda: evaluate_fhirpathpy(resource, expression, variables, lookup, now))
    compiled = _outcome(lambda: evaluate_compiled(resource, expression, variables, lookup, now))
    if compiled is None:
        return "fallback"
    if compiled is _RAISED:
        assert reference is _RAISED or _normal(evaluate(resource, expression, variables, lookup, now)) == _normal(
            reference
        ), expression
        return "deferred" if reference is not _RAISED else "compiled"
    assert reference is not _RAISED, f"fhirpathpy raises on {expression!r}, the compiled form answers {compiled!r}"
    assert _normal(compiled) == _normal(reference), expression
    return "compiled"


def _expressions(node: Any) -> Iterator[tuple[str | None, str]]:
    """(variable name or None, text) of every FHIRPath Expression in a JSON document, in document order."""
    if isinstance(node, dict):
        if node.get("language") == "text/fhirpath" and isinstance(node.get("expression"), str):
            yield node.get("name"), node["expression"]
        for value in node.values():
            yield from _expressions(value)
    elif isinstance(node, list):
        for value in node:
            yield from _expressions(value)


def pathway_expressions() -> list[tuple[str | None, str]]:
    found: list[tuple[str | None, str]] = []
    for path in sorted((ROOT / "pathways").glob("*.json")):
        found.extend(_expressions(jsonutil.loads(path.read_bytes())))
    return found


def _lookup_in(bundle: dict[str, Any]) -> Callable[[str], dict[str, Any] | None]:
    index = {
        f"{e['resource'].get('resourceType')}/{e['resource'].get('id')}": e["resource"]
        for e in bundle.get("entry", [])
        if isinstance(e.get("resource"), dict)
    }
    return index.get


def _base_variables(bundle: dict[str, Any]) -> dict[str, Any]:
    resources = [e.get("resource", {}) for e in bundle.get("entry", [])]
    patients = [r for r in resources if r.get("resourceType") == "Patient"]
    subject = patients[0] if patients else {"resourceType": "Patient", "id": "none"}
    request = {"resourceType": "ServiceRequest", "orderDetail": [{"coding": [{"code": "x"}]}, {"text": "no code"}]}
    return {"data": bundle, "patient": subject, "subject": subject, "context": subject, "now": now_value(NOW),
            "resource": request}  # fmt: skip


def check_pathway_on(bundle: dict[str, Any]) -> list[str]:
    """Every pathway expression on one data Bundle, variables computed in declaration order (as the engine does)."""
    variables = _base_variables(bundle)
    lookup, outcomes = _lookup_in(bundle), []
    for name, text in pathway_expressions():
        outcomes.append(check(variables["subject"], text, variables, lookup, NOW))
        if name is not None:
            value = _outcome(lambda t=text: evaluate_fhirpathpy(variables["subject"], t, variables, lookup, NOW))
            if value is not _RAISED:
                variables[name] = value[0] if len(value) == 1 else value
    return outcomes


@pytest.fixture(scope="module")
def examples() -> list[dict[str, Any]]:
    if not EXAMPLES.is_dir():
        pytest.skip(f"fixtures folder absent: {EXAMPLES}")
    return [jsonutil.loads(p.read_bytes()) for p in sorted(EXAMPLES.glob("*.json"))]


@pytest.mark.parametrize("case", ALL_CASES, ids=lambda case: case.key)
def test_every_pathway_expression_compiles_and_agrees_on_the_scenario_bundles(case: Any) -> None:
    outcomes = check_pathway_on(case.bundle(NOW))
    assert outcomes and set(outcomes) == {"compiled"}, outcomes


def test_pathway_expressions_agree_on_official_example_bundles(examples: list[dict[str, Any]]) -> None:
    bundles = [r for r in examples if r.get("resourceType") == "Bundle" and r.get("entry")]
    assert bundles
    outcomes = [outcome for bundle in bundles for outcome in check_pathway_on(bundle)]
    assert outcomes.count("compiled") > 0.9 * len(outcomes)


def _search_parameters() -> list[tuple[list[str], str]]:
    bundle = json.loads(SEARCH_PARAMETERS.read_text())
    definitions = [e["resource"] for e in bundle["entry"]]
    return [(d["base"], d["expression"]) for d in definitions if d.get("expression")]


def test_search_parameter_expressions_agree_on_every_official_example(examples: list[dict[str, Any]]) -> None:
    outcomes = [
        check(resource, expression, {})
        for resource in examples
        for bases, expression in _search_parameters()
        if resource.get("resourceType") in bases
    ]
    assert outcomes.count("compiled") > 0.9 * len(outcomes), {o: outcomes.count(o) for o in set(outcomes)}


def test_search_parameter_expressions_agree_with_resolve_over_a_lookup() -> None:
    bundle = ALL_CASES[0].bundle(NOW)
    lookup = _lookup_in(bundle)
    resources = [e["resource"] for e in bundle["entry"]]
    outcomes = [
        check(resource, expression, {}, lookup, NOW)
        for resource in resources
        for bases, expression in _search_parameters()
        if resource["resourceType"] in bases
    ]
    assert "compiled" in outcomes


# Hypothesis: expressions built from the pieces the pathway uses, over the scenario data.
_PATHS = ["code.coding.code", "code.coding.system", "value", "value.value", "value.coding.code", "effective",
          "status", "resourceType", "id", "meta.profile", "extension.url", "component.code.coding.code",
          "subject.reference", "clinicalStatus.coding.code", "statusReason.coding.code", "value.unit"]  # fmt: skip
_LITERALS = ["'final'", "'89247-1'", "'http://loinc.org'", "1", "2.5", "true", "false", "{}", "@2025-01-01",
             "@2025-02-01T10:00:00Z", "28 days", "'Observation'", "0", "5 'kg'"]  # fmt: skip
_CALLS = ["exists()", "empty()", "not()", "count()", "first()", "last()", "distinct()", "where({})", "select({})",
          "exists({})", "all({})", "iif({}, 'y', 'n')", "aggregate(iif($total.empty(), $this, $total))",
          "startsWith('8')", "contains('9')", "ofType(Quantity)", "is Quantity", "as Quantity", "intersect({})",
          "union({})", "toString()"]  # fmt: skip
_SOURCES = ["%observations", "%data.entry.resource", "%conditions", "%patient", "%observations.first()"]


def _atom() -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(_PATHS), st.sampled_from(_LITERALS), st.just("$this"), st.just("$index"))


def _call(parts: tuple[str, str, str]) -> str:
    """`focus.fn(argument)`, or `(focus is T)` for the type operators."""
    focus, call, argument = parts
    return f"({focus} {call})" if call.startswith(("is ", "as ")) else f"{focus}.{call.format(argument)}"


def _expression() -> st.SearchStrategy[str]:
    def extend(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        binary = st.tuples(
            inner, st.sampled_from(["=", "!=", "~", "<", ">=", "and", "or", "xor", "implies", "|", "+", "-", "in"]),
            inner,
        ).map(lambda t: f"({t[0]} {t[1]} {t[2]})")  # fmt: skip
        call = st.tuples(inner, st.sampled_from(_CALLS), inner).map(_call)
        return st.one_of(binary, call)

    return st.recursive(_atom(), extend, max_leaves=6)


_VARIABLE_BUNDLES = [case.bundle(NOW) for case in ALL_CASES[:3]]


def _variables(bundle: dict[str, Any]) -> dict[str, Any]:
    variables = _base_variables(bundle)
    resources = [e["resource"] for e in bundle["entry"]]
    variables["observations"] = [r for r in resources if r["resourceType"] == "Observation"]
    variables["conditions"] = [r for r in resources if r["resourceType"] == "Condition"]
    return variables


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(source=st.sampled_from(_SOURCES), body=_expression(), bundle=st.sampled_from(range(len(_VARIABLE_BUNDLES))))
def test_generated_expressions_agree(source: str, body: str, bundle: int) -> None:
    variables = _variables(_VARIABLE_BUNDLES[bundle])
    for expression in (f"{source}.where({body})", f"{source}.select({body})", body):
        check(variables["patient"], expression, variables, _lookup_in(_VARIABLE_BUNDLES[bundle]), NOW)


def test_an_unknown_variable_is_the_same_error() -> None:
    with pytest.raises(fhirpath.FhirPathError, match="undefined environment variable"):
        evaluate({"resourceType": "Patient"}, "%missing.exists()", {}, None, NOW)


def test_this_after_a_finished_where_is_left_to_fhirpathpy() -> None:
    # fhirpathpy evaluates a function parameter on the $this a finished where() left behind; not compiled
    assert evaluate_compiled({}, "%a.where($this > 1).union($this)", {"a": [1, 2]}) is None
    assert evaluate({}, "%a.where($this > 1).union($this)", {"a": [1, 2]}) == evaluate_fhirpathpy(
        {}, "%a.where($this > 1).union($this)", {"a": [1, 2]}, None, None
    )
