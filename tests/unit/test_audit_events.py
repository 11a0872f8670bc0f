"""Every kind of AuditEvent the trail writes is valid R4 (the trail stores them without re-validating)."""

from __future__ import annotations

from datetime import datetime

import pytest

from carepath.auth.audit import Request, access_event, failure_event, outcome_code
from carepath.auth.scopes import parse_scopes
from carepath.auth.tokens import Principal
from carepath.fhir.validation import validate_resource

SYSTEM = Principal("engine-1", "engine-1", "https://as", parse_scopes("system/*.rs"))
USER = Principal("u-7", "worklist", "https://as", parse_scopes("user/*.rs"), fhir_user="Practitioner/dr1")
NOW = datetime(2026, 12, 1, 10, 0, 0)


@pytest.mark.parametrize("interaction", ["read", "vread", "search-type", "create", "update", "patch", "delete",
                                         "history-instance", "transaction", "batch", "operation"])  # fmt: skip
@pytest.mark.parametrize("principal", [SYSTEM, USER, None])
@pytest.mark.parametrize("status", [200, 201, 403, 500])
def test_access_events_are_valid(interaction: str, principal: Principal | None, status: int) -> None:
    request = Request("10.0.0.1", interaction, "Observation", status)
    touched = ["Observation/o1", "Patient/p1"]
    event = access_event(request, principal, touched=touched, patients=["p1", "p2"], source="carepath", now=NOW)
    validate_resource(event)
    assert event["outcome"] == outcome_code(status)


def test_an_empty_search_is_valid_and_names_no_value() -> None:
    event = access_event(Request("::1", "search-type", "Patient", 200), SYSTEM, touched=[], patients=[],
                         source="carepath", now=NOW)  # fmt: skip
    validate_resource(event)
    assert event["entity"] == [{"type": event["entity"][0]["type"], "role": event["entity"][0]["role"],
                                "description": "Patient search"}]  # fmt: skip


def test_failure_events_are_valid() -> None:
    event = failure_event("192.0.2.9", 401, "carepath", now=NOW)
    validate_resource(event)
    assert event["type"]["code"] == "110114" and event["outcome"] == "4"
    assert event["agent"][0]["network"]["address"] == "192.0.2.9"
