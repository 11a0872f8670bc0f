"""SMART scopes v1/v2 as grants, the decision per need, the R4 Patient compartment, the sliding window."""

from __future__ import annotations

import pytest

from carepath.auth.access import Need, classify, decide
from carepath.auth.compartment import COMPARTMENT_PARAMS, belongs_to, restriction
from carepath.auth.limits import SlidingWindow
from carepath.auth.scopes import Grant, parse_scopes
from carepath.auth.tokens import Principal
from carepath.fhir.search.definitions import params_for


def letters(scope: str, res_type: str = "Observation") -> str:
    grants = parse_scopes(scope)
    return "".join(sorted({g.letter for g in grants if g.res_type == res_type}, key="cruds".index))


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        ("system/Observation.read", "rs"), ("system/Observation.write", "cud"), ("system/Observation.*", "cruds"),
        ("system/Observation.rs", "rs"), ("system/Observation.cruds", "cruds"), ("system/Observation.c", "c"),
        ("system/Observation.ds", "ds"),
        ("system/Observation.sr", ""),  # v2 letters must be in order
        ("system/Observation.rr", ""), ("system/Observation.x", ""), ("system/Observation.", ""),
        ("system/Observation.rs?category=laboratory", ""),  # granular scopes grant nothing
        ("launch/patient openid fhirUser offline_access", ""), ("System/Observation.rs", ""),
        ("system/observation.rs", ""),
    ],
)  # fmt: skip
def test_scope_letters(scope: str, expected: str) -> None:
    assert letters(scope) == expected


def test_wildcard_and_context() -> None:
    grants = parse_scopes("patient/*.rs user/Task.u")
    assert Grant("patient", "*", "r") in grants and Grant("user", "Task", "u") in grants
    assert Grant("patient", "*", "c") not in grants and len(grants) == 3


def principal(scope: str, patient: str | None = None) -> Principal:
    return Principal("sub", "client", "iss", parse_scopes(scope), patient=patient)


def test_decisions() -> None:
    read = [Need("Observation", "r")]
    assert decide(principal("system/Observation.rs"), read) == "full"
    assert decide(principal("user/*.read"), read) == "full"
    assert decide(principal("patient/*.rs", "p1"), read) == "patient"
    assert decide(principal("patient/*.rs"), read) is None  # patient/ without a patient claim
    assert decide(principal("patient/*.rs", "p1"), [Need("Practitioner", "r")]) is None  # outside the compartment
    assert decide(principal("patient/Observation.r", "p1"), [Need("PlanDefinition", "s")]) == "full"  # definitions
    assert decide(principal("system/Observation.c"), [Need("PlanDefinition", "r")]) is None
    assert decide(principal("system/*.cruds"), []) is None  # nothing classified is nothing allowed


@pytest.mark.parametrize(
    ("method", "path", "interaction", "needs"),
    [
        ("GET", "/fhir/Observation", "search-type", "s"), ("HEAD", "/fhir/Observation/", "search-type", "s"),
        ("POST", "/fhir/Observation/_search", "search-type", "s"), ("POST", "/fhir/Observation", "create", "c"),
        ("GET", "/fhir/Observation/1", "read", "r"), ("PUT", "/fhir/Observation/1", "update", "u"),
        ("PATCH", "/fhir/Observation/1", "patch", "u"), ("DELETE", "/fhir/Observation/1", "delete", "d"),
        ("GET", "/fhir/Observation/1/_history", "history-instance", "r"),
        ("GET", "/fhir/Observation/1/_history/2", "vread", "r"),
        ("GET", "/fhir/Observation/_history", "history-type", "s"),
        ("PUT", "/fhir/Observation", "update", "us"), ("DELETE", "/fhir/Observation", "delete", "ds"),
    ],
)  # fmt: skip
def test_classification(method: str, path: str, interaction: str, needs: str) -> None:
    access = classify(method, path)
    assert access.interaction == interaction
    assert "".join(n.letter for n in access.needs) == needs


def test_unknown_paths_are_unknown_and_open_ones_open() -> None:
    for path in ("/fhir/Observation/1/$everything", "/fhir/Nonsense", "/admin", "/fhir/Observation/1/_history/2/x",
                 "/appx", "/application"):  # fmt: skip
        assert classify("GET", path).kind == "unknown", path
    # the worklist checks its own session: its own kind, and only under /app
    for method, path in (("GET", "/app"), ("POST", "/app/tasks/t1"), ("GET", "/app/login")):
        assert classify(method, path).kind == "app", path
    for path in ("/fhir/metadata", "/fhir/.well-known/smart-configuration", "/healthz"):
        assert classify("GET", path).kind == "open", path
    assert classify("DELETE", "/fhir/metadata").kind != "open"
    assert classify("POST", "/fhir/Observation", headers_conditional=True).needs[-1].letter == "s"


def test_the_compartment_table_uses_indexed_r4_parameters() -> None:
    for res_type, params in COMPARTMENT_PARAMS.items():
        assert params or res_type == "Patient", res_type  # a Patient is in its own compartment by id
        for param in params:
            assert params_for(res_type)[param].type == "reference", (res_type, param)
    assert "Task" in COMPARTMENT_PARAMS and "Practitioner" not in COMPARTMENT_PARAMS
    assert "PlanDefinition" not in COMPARTMENT_PARAMS


def test_membership() -> None:
    obs = {"resourceType": "Observation", "status": "final", "code": {}, "subject": {"reference": "Patient/p1"}}
    assert belongs_to(obs, "p1") and not belongs_to(obs, "p2")
    performed = {**obs, "subject": {"reference": "Group/g"}, "performer": [{"reference": "Patient/p2"}]}
    assert belongs_to(performed, "p2")
    task = {"resourceType": "Task", "status": "ready", "intent": "order", "for": {"reference": "Patient/p1"}}
    assert belongs_to(task, "p1") and not belongs_to({**task, "for": {"reference": "Group/g"}}, "p1")
    assert belongs_to({"resourceType": "Patient", "id": "p1"}, "p1")
    assert not belongs_to({"resourceType": "Practitioner", "id": "p1"}, "p1")
    assert restriction("Patient", "p1") == ("_id", "p1")
    assert restriction("Observation", "p1") == ("subject", "Patient/p1")


def test_sliding_window() -> None:
    now = [0.0]
    window = SlidingWindow(3, 1.0, clock=lambda: now[0])
    assert [window.allow("a") for _ in range(4)] == [True, True, True, False]
    assert window.allow("b")
    now[0] = 1.01
    assert window.allow("a")
    for _ in range(3):
        window.record("c")
    assert window.exceeded("c") and not window.exceeded("d")
