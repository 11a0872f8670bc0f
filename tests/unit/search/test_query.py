"""parse_search: modifiers, prefixes, value syntaxes, result parameters and the errors a client gets (400)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest

from carepath.errors import InvalidRequest
from carepath.fhir.search.includes import IncludeSpec
from carepath.fhir.search.query import Criterion, SearchQuery, SortKey, parse_search
from carepath.fhir.search.values import (
    DateValue,
    MissingValue,
    QuantityValue,
    ReferenceValue,
    StringValue,
    TokenValue,
    UriValue,
)


def _one(resource_type: str, name: str, value: str) -> Criterion:
    query = parse_search(resource_type, [(name, value)])
    assert len(query.criteria) == 1
    return query.criteria[0]


def test_worklist_query() -> None:
    query = parse_search(
        "Task",
        [("owner", "Practitioner/x"), ("status", "requested,ready"), ("_sort", "due-date"), ("_count", "50")],
    )
    assert query == SearchQuery(
        "Task",
        criteria=(
            Criterion("owner", "reference", None, (ReferenceValue("Practitioner", "x"),)),
            Criterion("status", "token", None, (TokenValue(None, "requested"), TokenValue(None, "ready"))),
        ),
        count=50,
        sort=(SortKey("due-date", "date"),),
    )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("http://snomed.info/sct|123", TokenValue("http://snomed.info/sct", "123")),
        ("|123", TokenValue(None, "123", no_system=True)),
        ("http://snomed.info/sct|", TokenValue("http://snomed.info/sct", None)),
        ("123", TokenValue(None, "123")),
        (r"a\|b", TokenValue(None, "a|b")),
    ],
)
def test_token_syntaxes(raw: str, expected: TokenValue) -> None:
    assert _one("Task", "code", raw).values == (expected,)


def test_escaped_comma_is_part_of_the_value() -> None:
    assert _one("Patient", "name", r"Smith\, Jr,Doe").values == (StringValue("Smith, Jr"), StringValue("Doe"))


@pytest.mark.parametrize("modifier", ["exact", "contains"])
def test_string_modifiers(modifier: str) -> None:
    criterion = _one("Patient", f"name:{modifier}", "Ann")
    assert (criterion.modifier, criterion.values) == (modifier, (StringValue("Ann"),))


def test_token_not_and_missing() -> None:
    assert _one("Task", "status:not", "completed").modifier == "not"
    missing = _one("Task", "due-date:missing", "true")
    assert (missing.modifier, missing.values) == ("missing", (MissingValue(True),))
    with pytest.raises(InvalidRequest, match="true or false"):
        parse_search("Task", [("owner:missing", "yes")])


@pytest.mark.parametrize("prefix", ["eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap"])
def test_date_prefixes(prefix: str) -> None:
    criterion = _one("Task", "due-date", f"{prefix}2024-03")
    assert criterion.values == (DateValue(prefix, datetime(2024, 3, 1), datetime(2024, 4, 1)),)


def test_date_without_prefix_is_eq_and_last_updated_is_a_date() -> None:
    assert _one("Task", "_lastUpdated", "2024-03-05T10:00:00Z").values == (
        DateValue("eq", datetime(2024, 3, 5, 10), datetime(2024, 3, 5, 10, 0, 1)),
    )


@pytest.mark.parametrize("raw", ["xx2024", "2024-13-01", "gt", "ge2024-02-30", "2024/01/01"])
def test_bad_dates_and_prefixes_are_400(raw: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_search("Task", [("due-date", raw)])
    assert caught.value.status == 400


def test_quantity_precision_prefix_system_and_code() -> None:
    value = _one("Observation", "value-quantity", "gt5.4|http://unitsofmeasure.org|mg").values[0]
    assert value == QuantityValue("gt", Decimal("5.4"), 5.35, 5.45, "http://unitsofmeasure.org", "mg")
    plain = _one("Observation", "value-quantity", "100").values[0]
    assert isinstance(plain, QuantityValue) and (plain.low, plain.high, plain.code) == (99.5, 100.5, None)
    unit_only = _one("Observation", "value-quantity", "5||kg").values[0]
    assert isinstance(unit_only, QuantityValue) and (unit_only.system, unit_only.code) == (None, "kg")
    with pytest.raises(InvalidRequest, match="Invalid quantity"):
        parse_search("Observation", [("value-quantity", "5.x")])


@pytest.mark.parametrize(
    ("name", "raw", "expected"),
    [
        ("subject", "Patient/p1", ReferenceValue("Patient", "p1")),
        ("subject:Patient", "p1", ReferenceValue("Patient", "p1")),
        ("subject", "p1", ReferenceValue(None, "p1")),
        ("patient", "p1", ReferenceValue("Patient", "p1")),  # one target type
        ("owner", "https://other.example/fhir/Practitioner/9",
         ReferenceValue(None, None, "https://other.example/fhir/Practitioner/9")),
    ],
)  # fmt: skip
def test_reference_syntaxes(name: str, raw: str, expected: ReferenceValue) -> None:
    assert _one("Task", name, raw).values == (expected,)


def test_canonical_reference_with_version() -> None:
    value = _one("CarePlan", "instantiates-canonical", "https://fhir.carepath.dev/PlanDefinition/tf|1.2").values[0]
    assert value == ReferenceValue(None, None, "https://fhir.carepath.dev/PlanDefinition/tf", "1.2")


def test_reference_type_errors() -> None:
    with pytest.raises(InvalidRequest, match="not a target"):
        parse_search("Task", [("owner", "Observation/1")])
    with pytest.raises(InvalidRequest, match="not a target type"):
        parse_search("Task", [("owner:Observation", "1")])
    with pytest.raises(InvalidRequest, match="does not match"):
        parse_search("Task", [("owner:Practitioner", "Organization/1")])


def test_uri_and_below() -> None:
    assert _one("PlanDefinition", "url", "https://x.example/PlanDefinition/a").values == (
        UriValue("https://x.example/PlanDefinition/a"),
    )
    assert _one("PlanDefinition", "url:below", "https://x.example/").modifier == "below"


def test_repeated_parameter_is_and_and_empty_value_is_ignored() -> None:
    query = parse_search("Task", [("due-date", "ge2024-01-01"), ("due-date", "lt2024-02-01"), ("code", "")])
    assert [c.param for c in query.criteria] == ["due-date", "due-date"]


def test_unknown_parameters_strict_and_lenient() -> None:
    with pytest.raises(InvalidRequest, match="Unknown search parameter 'colour'"):
        parse_search("Task", [("colour", "red")])
    for name in ("subject.name", "_has:Observation:patient:code", "status:text", "_contained"):
        with pytest.raises(InvalidRequest):
            parse_search("Task", [(name, "x")])
    lenient = parse_search("Task", [("colour", "red"), ("status:text", "x"), ("status", "ready")], strict=False)
    assert [i.name for i in lenient.ignored] == ["colour", "status:text"]
    assert "Unknown search parameter 'colour'" in lenient.ignored[0].reason
    assert [c.param for c in lenient.criteria] == ["status"]


def test_bad_values_are_400_even_when_lenient() -> None:
    with pytest.raises(InvalidRequest):
        parse_search("Task", [("due-date", "soon")], strict=False)


def test_count_offset_and_limits() -> None:
    query = parse_search("Task", [("_count", "1000"), ("_offset", "40")], default_count=20, max_count=100)
    assert (query.count, query.offset) == (100, 40)
    assert parse_search("Task", [], default_count=7).count == 7
    for name, raw in (("_count", "-1"), ("_count", "ten"), ("_offset", "1.5")):
        with pytest.raises(InvalidRequest, match=r"must be an? .*integer"):
            parse_search("Task", [(name, raw)])


def test_sort_summary_total_elements() -> None:
    query = parse_search(
        "Task",
        [("_sort", "-due-date,_lastUpdated,status"), ("_summary", "count"), ("_total", "accurate"),
         ("_elements", "status,owner"), ("_format", "json")],
    )  # fmt: skip
    assert query.sort == (
        SortKey("due-date", "date", True), SortKey("_lastUpdated", "date"), SortKey("status", "token"),
    )  # fmt: skip
    assert (query.summary, query.total, query.elements) == ("count", "accurate", ("status", "owner"))
    for name, raw in (("_sort", "owner"), ("_sort", "colour"), ("_summary", "short"), ("_total", "exact")):
        with pytest.raises(InvalidRequest):
            parse_search("Task", [(name, raw)])


def test_include_and_revinclude() -> None:
    query = parse_search(
        "Task", [("_include", "Task:owner"), ("_include", "Task:subject:Patient"), ("_revinclude", "Provenance:target")]
    )
    assert query.includes == (IncludeSpec("Task", "owner"), IncludeSpec("Task", "subject", "Patient"))
    assert query.revincludes == (IncludeSpec("Provenance", "target"),)
    bad = ["Task:*", "Task", "CarePlan:subject", "Task:status", "Task:owner:Observation", "Nope:x"]
    for raw in bad:
        with pytest.raises(InvalidRequest):
            parse_search("Task", [("_include", raw)])
    with pytest.raises(InvalidRequest, match="cannot point at"):
        parse_search("Patient", [("_revinclude", "Task:part-of")])
    with pytest.raises(InvalidRequest, match="not supported"):
        parse_search("Task", [("_include:iterate", "Task:owner")])


def test_unsupported_resource_type() -> None:
    with pytest.raises(InvalidRequest, match="not served: the R4B models have no such type"):
        parse_search("MedicinalProduct", [])  # R4, but the R4B models lack it
