"""extract_index: each parameter type's conversion, FHIR date precision, and the fast path against fhirpathpy."""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from carepath import jsonutil
from carepath.errors import InvalidRequest
from carepath.fhir.fhirpath import FhirPathError, evaluate
from carepath.fhir.models import is_supported
from carepath.fhir.search.dates import MAX_INSTANT, MIN_INSTANT, date_range, parse_instant
from carepath.fhir.search.definitions import params_for, split_union
from carepath.fhir.search.extract import extract_index
from carepath.fhir.search.paths import compile_branch
from carepath.fhir.search.rows import DateRow, QuantityRow, ReferenceRow, StringRow, TokenRow, UriRow

EXAMPLES = Path(__file__).resolve().parents[3] / ".." / "shared" / "fixtures" / "fhir-r4-examples"


@pytest.fixture(scope="module")
def examples() -> list[dict[str, Any]]:
    """Every official example resource (CC0), parsed as the API parses bodies (decimals as Decimal)."""
    if not EXAMPLES.is_dir():
        pytest.skip(f"fixtures folder absent: {EXAMPLES}")
    return [jsonutil.loads(p.read_bytes()) for p in sorted(EXAMPLES.glob("*.json"))]


def _of(rows: list[Any], param: str) -> list[Any]:
    return [r for r in rows if r.param == param]


def test_tokens_from_code_coding_codeable_concept_identifier_boolean_contact_point() -> None:
    patient = {
        "resourceType": "Patient", "active": True, "gender": "female",
        "meta": {"tag": [{"system": "urn:tags", "code": "demo"}]},
        "identifier": [{"system": "urn:mrn", "value": "42"}],
        "telecom": [{"system": "email", "value": "a@b.example"}, {"system": "phone", "value": "555"}],
    }  # fmt: skip
    tokens = extract_index(patient).tokens
    assert _of(tokens, "active") == [TokenRow("active", None, "true")]
    assert _of(tokens, "gender") == [TokenRow("gender", None, "female")]
    assert _of(tokens, "_tag") == [TokenRow("_tag", "urn:tags", "demo")]
    assert _of(tokens, "identifier") == [TokenRow("identifier", "urn:mrn", "42")]
    assert _of(tokens, "email") == [TokenRow("email", "email", "a@b.example")]
    assert _of(tokens, "phone") == [TokenRow("phone", "phone", "555")]
    task = {
        "resourceType": "Task",
        "status": "ready",
        "intent": "order",
        "code": {"coding": [{"system": "urn:a", "code": "x"}, {"system": "urn:b", "code": "y"}], "text": "t"},
    }
    assert _of(extract_index(task).tokens, "code") == [TokenRow("code", "urn:a", "x"), TokenRow("code", "urn:b", "y")]


def test_strings_are_normalised_and_keep_the_exact_text() -> None:
    patient = {"resourceType": "Patient", "name": [{"family": "Müller", "given": ["Zoë", "Ann"], "text": "Zoë Müller"}],
               "address": [{"line": ["1 Rue Sœur"], "city": "Genève"}]}  # fmt: skip
    strings = extract_index(patient).strings
    assert _of(strings, "family") == [StringRow("family", "muller", "Müller")]
    assert {r.value for r in _of(strings, "name")} == {"zoe muller", "muller", "zoe", "ann"}
    assert {r.exact for r in _of(strings, "given")} == {"Zoë", "Ann"}
    assert {r.value for r in _of(strings, "address")} == {"1 rue sœur", "geneve"}


def test_over_long_text_is_clipped_to_the_column_width() -> None:
    rows = extract_index({"resourceType": "PlanDefinition", "title": "x" * 2000}).strings
    assert len(rows[0].value) == len(rows[0].exact) == 512


@pytest.mark.parametrize(
    ("text", "low", "high"),
    [
        ("2024", datetime(2024, 1, 1), datetime(2025, 1, 1)),
        ("2024-02", datetime(2024, 2, 1), datetime(2024, 3, 1)),
        ("2024-12", datetime(2024, 12, 1), datetime(2025, 1, 1)),
        ("2024-02-29", datetime(2024, 2, 29), datetime(2024, 3, 1)),
        ("2024-03-05T10:00Z", datetime(2024, 3, 5, 10), datetime(2024, 3, 5, 10, 1)),
        ("2024-03-05T10:00:05+10:00", datetime(2024, 3, 5, 0, 0, 5), datetime(2024, 3, 5, 0, 0, 6)),
        ("2024-03-05T23:30:00-02:00", datetime(2024, 3, 6, 1, 30), datetime(2024, 3, 6, 1, 30, 1)),
        ("2024-03-05T10:00:05.25Z", datetime(2024, 3, 5, 10, 0, 5, 250000), datetime(2024, 3, 5, 10, 0, 5, 260000)),
        ("9999", datetime(9999, 1, 1), MAX_INSTANT),
    ],
)
def test_date_precision_becomes_a_utc_range(text: str, low: datetime, high: datetime) -> None:
    assert date_range(text) == (low, high)


@pytest.mark.parametrize("text", ["2024-13", "2024-02-30", "24-01-01", "2024-01-01T25:00Z", "tomorrow", ""])
def test_malformed_dates_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"not a FHIR date|must be in|out of range|invalid"):
        date_range(text)


def test_parse_instant_is_a_client_error_when_malformed() -> None:
    assert parse_instant("2024-03-05T10:00:00+01:00") == datetime(2024, 3, 5, 9)
    with pytest.raises(InvalidRequest, match="Invalid date"):
        parse_instant("yesterday")


def test_dates_from_date_datetime_period_and_timing() -> None:
    task = {"resourceType": "Task", "status": "ready", "intent": "order", "authoredOn": "2024-03-01T08:00:00Z",
            "executionPeriod": {"start": "2024-03-01"}, "restriction": {"period": {"end": "2024-03-10"}}}  # fmt: skip
    dates = extract_index(task).dates
    assert _of(dates, "due-date") == [DateRow("due-date", datetime(2024, 3, 10), datetime(2024, 3, 11))]
    assert _of(dates, "period") == [DateRow("period", datetime(2024, 3, 1), MAX_INSTANT)]
    assert _of(dates, "authored-on") == [DateRow("authored-on", datetime(2024, 3, 1, 8), datetime(2024, 3, 1, 8, 0, 1))]
    ended = {"resourceType": "CarePlan", "period": {"end": "2024-05"}}
    assert _of(extract_index(ended).dates, "date") == [DateRow("date", MIN_INSTANT, datetime(2024, 6, 1))]
    timed = {"resourceType": "Observation", "effectiveTiming": {"event": ["2024-01-02", "2024-01-05"]}}
    assert [r.low.day for r in _of(extract_index(timed).dates, "date")] == [2, 5]
    assert _of(extract_index({"resourceType": "Patient", "birthDate": "1974-12"}).dates, "birthdate") == [
        DateRow("birthdate", datetime(1974, 12, 1), datetime(1975, 1, 1))
    ]


def test_references_relative_absolute_canonical_and_versioned() -> None:
    task = {"resourceType": "Task", "status": "ready", "intent": "order",
            "for": {"reference": "Patient/p1/_history/3"},
            "owner": {"reference": "https://other.example/fhir/Practitioner/9"},
            "basedOn": [{"reference": "CarePlan/c1"}, {"reference": "#contained"}, {"display": "no reference"}],
            "focus": {"reference": "urn:uuid:4f1b"}}  # fmt: skip
    refs = extract_index(task).references
    assert _of(refs, "patient") == [ReferenceRow("patient", "Patient", "p1", None, "3")]
    assert _of(refs, "owner") == [ReferenceRow("owner", None, None, "https://other.example/fhir/Practitioner/9")]
    assert _of(refs, "based-on") == [ReferenceRow("based-on", "CarePlan", "c1")]
    assert _of(refs, "focus") == [ReferenceRow("focus", None, None, "urn:uuid:4f1b")]
    plan = {"resourceType": "CarePlan", "instantiatesCanonical": ["https://fhir.carepath.dev/PlanDefinition/tf|1.2"]}
    assert _of(extract_index(plan).references, "instantiates-canonical") == [
        ReferenceRow("instantiates-canonical", None, None, "https://fhir.carepath.dev/PlanDefinition/tf", "1.2")
    ]


def test_resolve_is_filters_references_by_type() -> None:
    task = {"resourceType": "Task", "status": "ready", "intent": "order", "for": {"reference": "Group/g1"}}
    refs = extract_index(task).references
    assert _of(refs, "subject") == [ReferenceRow("subject", "Group", "g1")]
    assert _of(refs, "patient") == []


_VALUE_QUANTITY = ("combo-value-quantity", "value-quantity")


def test_quantities_and_uris() -> None:
    obs = {"resourceType": "Observation", "status": "final", "code": {"text": "w"},
           "valueQuantity": {"value": Decimal("72.50"), "unit": "kg"}}  # fmt: skip
    # R4 indexes an Observation's own value twice: value-quantity and combo-value-quantity (value or components)
    assert extract_index(obs).quantities == [QuantityRow(p, 72.5, None, "kg") for p in _VALUE_QUANTITY]
    coded = dict(obs, valueQuantity={"value": 5, "system": "http://unitsofmeasure.org", "code": "mg", "unit": "mg!"})
    assert extract_index(coded).quantities == [
        QuantityRow(p, 5.0, "http://unitsofmeasure.org", "mg") for p in _VALUE_QUANTITY
    ]
    plan = {"resourceType": "PlanDefinition", "url": "https://fhir.carepath.dev/PlanDefinition/tf", "status": "active",
            "meta": {"profile": ["http://hl7.org/fhir/StructureDefinition/PlanDefinition"]}}  # fmt: skip
    assert extract_index(plan).uris == [
        UriRow("_profile", "http://hl7.org/fhir/StructureDefinition/PlanDefinition"),
        UriRow("url", "https://fhir.carepath.dev/PlanDefinition/tf"),
    ]


def test_choice_elements_and_as_casts() -> None:
    med = {"resourceType": "MedicationRequest", "status": "active", "intent": "order",
           "subject": {"reference": "Patient/p"},
           "medicationCodeableConcept": {"coding": [{"system": "urn:med", "code": "m1"}]}}  # fmt: skip
    rows = extract_index(med)
    assert _of(rows.tokens, "code") == [TokenRow("code", "urn:med", "m1")]
    assert _of(rows.references, "medication") == []
    onset = {"resourceType": "Condition", "subject": {"reference": "Patient/p"}, "onsetString": "childhood"}
    assert _of(extract_index(onset).dates, "onset-date") == []


def test_duplicates_are_written_once_and_id_and_last_updated_give_no_rows() -> None:
    task = {"resourceType": "Task", "id": "t1", "meta": {"lastUpdated": "2024-01-01T00:00:00Z"}, "status": "ready",
            "intent": "order", "basedOn": [{"reference": "CarePlan/c"}, {"reference": "CarePlan/c"}]}  # fmt: skip
    rows = extract_index(task)
    assert _of(rows.references, "based-on") == [ReferenceRow("based-on", "CarePlan", "c")]
    assert not [r for r in rows.tokens + rows.dates if r.param in ("_id", "_lastUpdated")]  # type: ignore[operator]


def test_fast_path_gives_what_fhirpathpy_gives_on_every_official_example(examples: list[dict[str, Any]]) -> None:
    compared = 0
    for resource in examples:
        res_type = resource.get("resourceType", "")
        if not is_supported(res_type):
            continue
        for param in params_for(res_type).values():
            for text in split_union(param.expression):
                fast = [value for value, _ in compile_branch(text).run(resource)]
                assert fast == evaluate(resource, _filtering(resource, text)), f"{res_type}.{param.code}: {text}"
                compared += 1
    assert compared > 1000


def _filtering(resource: dict[str, Any], text: str) -> str:
    """R4's `(X.useContext.value as T)` applies `as` to a collection, which strict FHIRPath refuses; search
    engines read it as the filter it means (`ofType(T)`), and so does the fast path."""
    try:
        evaluate(resource, text)
    except FhirPathError as exc:
        match = re.fullmatch(r"\((.+) as ([A-Za-z]+)\)", text)
        if match is None or "singleton" not in str(exc):
            raise
        return f"{match[1]}.ofType({match[2]})"
    return text
