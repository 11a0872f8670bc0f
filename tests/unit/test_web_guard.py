"""What a worklist session may open and hear, by the API's rules; the sign-in's PKCE and scope helpers."""

from __future__ import annotations

import json

from carepath.auth.oidc import practitioner, s256
from carepath.auth.scopes import parse_scopes, scope_text
from carepath.auth.tokens import Principal
from carepath.web import guard
from carepath.web.session import DEV_USER, Session
from carepath.web.views.live import live_message


def caller(scope: str, patient: str | None = None) -> Principal:
    return guard.principal(Session(DEV_USER, "csrf", scope=scope, patient=patient), "urn:test", "carepath-app")


def test_pages_need_their_reads_and_writes() -> None:
    coordinator = caller("user/*.rs user/Task.u")
    assert all(guard.page_decision(coordinator, p) == "full" for p in guard.PAGE_NEEDS)
    reader = caller("user/*.rs")
    assert guard.page_decision(reader, "action") is None and guard.page_decision(reader, "task") == "full"
    no_tasks = caller("user/Patient.rs user/Practitioner.rs user/CarePlan.rs")
    assert {p for p in guard.PAGE_NEEDS if guard.page_decision(no_tasks, p) is None} == set(guard.PAGE_NEEDS)
    # v1 syntax means the same
    assert guard.page_decision(caller("user/*.read user/Task.write"), "action") == "full"


def test_a_patient_session_sees_its_own_patient_only() -> None:
    own = caller("patient/*.rs user/Practitioner.rs", patient="P1")
    decision = guard.page_decision(own, "patient")
    assert decision == "patient"
    assert guard.may_show(own, decision, "P1") and not guard.may_show(own, decision, "P2")
    assert not guard.may_show(own, guard.page_decision(own, "worklist"), None)  # the worklist spans patients
    assert guard.may_see_event(own, "Task", "P1") and not guard.may_see_event(own, "Task", "P2")
    assert not guard.may_see_event(own, "Task", "")


def test_live_frames_follow_the_grants() -> None:
    task = {"type": "dev.carepath.task.created", "subject": "Patient/P1", "data": {"resourceType": "Task", "id": "t1"}}
    plan = {"type": "dev.carepath.careplan.created", "subject": "Patient/P1",
            "data": {"resourceType": "CarePlan", "id": "c1"}}  # fmt: skip
    tasks_only = caller("user/Task.rs")

    def may_see(res_type: str, patient: str) -> bool:
        return guard.may_see_event(tasks_only, res_type, patient)

    assert live_message(json.dumps(task), may_see) is not None
    assert live_message(json.dumps(plan), may_see) is None
    assert live_message(json.dumps({**task, "type": "dev.carepath.task.overdue"}), may_see) is not None
    assert live_message(json.dumps({**task, "data": {"id": "t1"}}), may_see) is None  # no type: nothing to judge


def test_pkce_s256_matches_rfc_7636_appendix_b() -> None:
    assert s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk") == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_scope_text_round_trips_the_grants() -> None:
    grants = parse_scopes("user/*.rs patient/Task.read system/Observation.cud openid fhirUser")
    assert parse_scopes(scope_text(grants)) == grants


def test_fhir_user_must_be_a_practitioner() -> None:
    assert practitioner("Practitioner/dr1") == "Practitioner/dr1"
    assert practitioner("https://ehr.example/fhir/Practitioner/dr1/") == "Practitioner/dr1"
    assert practitioner("Patient/p1") is None and practitioner(None) is None and practitioner("Practitioner/") is None
