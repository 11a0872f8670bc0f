"""The quick path of `validate_resource` (what was validated before is not validated again) accepts exactly
what both full passes accept: checked on the resources `$apply` generates from the shipped pathway and from every
applicable PlanDefinition of the official examples (../shared/fixtures), transient (contained) and as stored
(transaction entries), each first validated once — the state in which the quick path would let a mistake
through — then broken on purpose in many ways: wrong JSON kinds, bad dates and codes, empty values, nulls,
unknown elements, lists for single values and the reverse, missing elements."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import FIXTURES_DIR as FIXTURES

from carepath.content.loader import load_pathway_files
from carepath.content.samples import SCENARIOS
from carepath.engine import ApplyContext, DictResolver, apply_plan_definition, to_transaction_bundle
from carepath.errors import CarepathError, InvalidResource
from carepath.fhir.models import is_supported, model_class
from carepath.fhir.valid_items import VALID, known_valid
from carepath.fhir.validation import full_validation, validate_resource
from carepath.jsonutil import dumps, loads

NOW = datetime(2024, 3, 1, 9, 30, tzinfo=UTC)
PATHWAYS = Path(__file__).resolve().parents[3] / "pathways"
SAMPLES_PER_RESOURCE = 40
_BAD_STRINGS: tuple[Any, ...] = (12, True, "", "2024-13-45T25:61:00Z", "no such code", "\x01", " ")


def _outcome(check: Any, resource: dict[str, Any]) -> list[dict[str, Any]] | None:
    try:
        check(resource)
    except InvalidResource as exc:
        return [issue.to_fhir() for issue in exc.issues()]
    return None


def _full(resource: dict[str, Any]) -> None:
    full_validation(resource, model_class(resource["resourceType"]))


def _replace(value: Any, path: tuple[Any, ...], new: Any, delete: bool = False) -> Any:
    """A copy of `value` with the node at `path` replaced (or deleted); the rest shared, as it is never mutated."""
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        out = dict(value)
        if delete and not rest:
            del out[head]
        else:
            out[head] = _replace(value[head], rest, new, delete)
        return out
    items = list(value)
    items[head] = _replace(value[head], rest, new, delete)
    return items


def _mutations(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any, bool]]:
    """(path, new value, delete?) for every way of breaking `value` below `path` this test tries."""
    if isinstance(value, dict):
        yield path, {**value, "bogusElement": "x"}, False
        yield path, [value], False
        yield path, {}, False
        for key, item in value.items():
            if key == "resourceType":
                continue
            yield (*path, key), None, True
            yield (*path, key), None, False
            yield from _mutations(item, (*path, key))
    elif isinstance(value, list):
        yield path, [], False
        yield path, [value], False
        yield path, [None, *value], False
        yield path, value[0], False
        for index, item in enumerate(value):
            yield from _mutations(item, (*path, index))
    elif isinstance(value, bool):
        yield from ((path, bad, False) for bad in ("true", 1))
    elif isinstance(value, int):
        yield from ((path, bad, False) for bad in ("1", 1.5, Decimal("2.0"), True, -1, 2**40))
    elif isinstance(value, (Decimal, float)):
        yield from ((path, bad, False) for bad in ("1.5", Decimal("NaN"), float("inf")))
    else:
        yield from ((path, bad, False) for bad in _BAD_STRINGS)


def _broken(resource: dict[str, Any], seed: int, samples: int = SAMPLES_PER_RESOURCE) -> list[dict[str, Any]]:
    every = list(_mutations(resource))
    chosen = random.Random(seed).sample(every, min(samples, len(every)))
    return [_replace(resource, path, new, delete) for path, new, delete in chosen if path]


def _generated(plan: dict[str, Any], definitions: list[dict[str, Any]], subject: str,
               data: dict[str, Any] | None) -> list[dict[str, Any]]:  # fmt: skip
    """The CarePlan with everything contained (transient), then each resource as stored (transaction entries)."""
    ctx = ApplyContext(subject=subject, now=NOW, data=data, persist=True)
    try:
        result = apply_plan_definition(plan, DictResolver(definitions), ctx)
    except CarepathError:  # CQL, a Library, content that cannot apply: not this test's subject
        return []
    bundle = to_transaction_bundle(result, plan_reference="PlanDefinition/p/_history/1", ctx=ctx)
    # As the store gets them: JSON text read back, so decimals are Decimals as in a request.
    return [result.careplan, *(loads(dumps(e["resource"])) for e in bundle["entry"])]


def _shipped() -> list[dict[str, Any]]:
    definitions = load_pathway_files(PATHWAYS)
    plan = next(d for d in definitions if d["resourceType"] == "PlanDefinition")
    out: list[dict[str, Any]] = []
    for case in SCENARIOS[:2]:
        out += _generated(plan, definitions, f"Patient/{case.key}", case.bundle(NOW))
    return out


def _examples() -> list[dict[str, Any]]:
    if not FIXTURES.is_dir():
        pytest.skip("fixtures folder absent")
    files = sorted(FIXTURES.glob("*.json"))
    definitions = [loads(p.read_bytes()) for p in files if p.name.startswith(("activitydefinition-", "plandefinition-",
                                                                               "questionnaire-"))]  # fmt: skip
    patient = {"resourceType": "Bundle", "type": "collection",
               "entry": [{"resource": {"resourceType": "Patient", "id": "example"}}]}  # fmt: skip
    out: list[dict[str, Any]] = []
    for plan in (d for d in definitions if d["resourceType"] == "PlanDefinition"):
        out += _generated(plan, definitions, "Patient/example", patient)
    assert out, "no example PlanDefinition applies without CQL: the comparison would be empty"
    return out


def _compare(resources: list[dict[str, Any]], samples: int = SAMPLES_PER_RESOURCE) -> tuple[int, int]:
    """(broken variants compared, of which refused); every one must get the same answer both ways."""
    VALID.clear()
    for resource in resources:  # valid, and now known (twice: the second time by the quick path itself)
        validate_resource(resource)
        assert known_valid(resource), resource["resourceType"]
    compared = refused = 0
    for seed, resource in enumerate(resources):
        for broken in _broken(resource, seed, samples):
            full = _outcome(_full, broken)
            assert _outcome(validate_resource, broken) == full, broken
            compared, refused = compared + 1, refused + (full is not None)
    return compared, refused


def test_generated_resources_of_the_shipped_pathway_quick_and_full_agree() -> None:
    resources = _shipped()
    assert len(resources) > 40
    compared, refused = _compare(resources)
    assert compared > 1500 and refused > compared // 2


def test_generated_resources_of_the_example_plan_definitions_quick_and_full_agree() -> None:
    compared, refused = _compare(_examples())
    assert compared > 100 and refused > compared // 2


def test_every_official_example_broken_quick_and_full_agree() -> None:
    """What clients store (definitions included) takes the same quick path: every served example, known, then
    broken a few ways each."""
    if not FIXTURES.is_dir():
        pytest.skip("fixtures folder absent")
    examples = [loads(p.read_bytes()) for p in sorted(FIXTURES.glob("*.json"))]
    compared, refused = _compare([e for e in examples if is_supported(e["resourceType"])], samples=6)
    assert compared > 1000 and refused > compared // 2


def test_a_value_changed_inside_a_known_resource_is_checked_not_assumed() -> None:
    """A Task seen valid, then the same Task with one new value of each kind that breaks it: each is refused
    by the quick path's item check with the same issues as the full passes."""
    VALID.clear()
    task = {"resourceType": "Task", "status": "requested", "intent": "order", "for": {"reference": "Patient/p1"},
            "authoredOn": "2024-03-01T09:30:00+00:00", "priority": "routine",
            "restriction": {"period": {"end": "2024-03-08T09:30:00+00:00"}}}  # fmt: skip
    validate_resource(task)
    assert known_valid(task)
    broken = [
        {**task, "priority": "soon"},  # outside the required binding
        {**task, "authoredOn": "2024-02-30T09:30:00+00:00"},  # no such date
        {**task, "restriction": {"period": {"end": 7}}},  # wrong JSON kind
        {**task, "for": {"reference": "Patient/p1", "bogus": 1}},  # unknown element
    ]
    valid_list = {**task, "performerType": [{"text": "nurse"}, {"text": "GP"}]}
    validate_resource(valid_list)
    validate_resource(valid_list)  # now by the quick path, which also knows the list as a whole
    broken.append({**task, "performerType": [valid_list["performerType"]]})  # that list, as one item of itself
    for resource in broken:
        assert not known_valid(resource)
        assert _outcome(validate_resource, resource) == _outcome(_full, resource) is not None
