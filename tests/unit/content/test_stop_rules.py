"""Stop rules (§4.2): death cancels open Tasks, refusal holds therapy assessments, improvement only notifies."""

from __future__ import annotations

from typing import Any

from carepath.content import codes
from carepath.content.stop_rules import evaluate_stop_rules, is_therapy_assessment

FULFILL = {"coding": [{"system": "http://hl7.org/fhir/CodeSystem/task-code", "code": "fulfill"}]}


def _task(task_id: str, status: str, code: dict[str, Any] | None = None, focus: str | None = None) -> dict[str, Any]:
    task: dict[str, Any] = {"resourceType": "Task", "id": task_id, "status": status, "intent": "order"}
    task["code"] = code or FULFILL
    if focus:
        task["focus"] = {"reference": focus}
    return task


def _local(code: str) -> dict[str, Any]:
    return {"coding": [{"system": codes.LOCAL, "code": code}]}


def _request(snomed: str) -> dict[str, Any]:
    return {"resourceType": "ServiceRequest", "code": {"coding": [{"system": codes.SNOMED, "code": snomed}]}}


REQUESTS = {
    "ServiceRequest/surgery": _request("183541002"),
    "ServiceRequest/palliative": _request("306237005"),
    "ServiceRequest/radiotherapy": _request("306256000"),
}

TASKS = [
    _task("rcp", "requested", focus="ServiceRequest/rcp"),
    _task("palliative", "in-progress", focus="ServiceRequest/palliative"),
    _task("surgery", "draft", focus="ServiceRequest/surgery"),
    _task("radiotherapy", "on-hold", focus="ServiceRequest/radiotherapy"),
    _task("trial", "draft", code=_local("clinical-trial-screening")),
    _task("immuno", "requested", code=_local("immunotherapy-eligibility-review")),
    _task("pain", "completed", code=_local("pain-assessment")),
    _task("distress", "cancelled", code=_local("distress-screening")),
]


def _medication_stopped(reason: str) -> dict[str, Any]:
    reason_concept = {"coding": [{"system": codes.SNOMED, "code": reason}]}
    return {"resourceType": "MedicationRequest", "status": "stopped", "statusReason": reason_concept}


def _disease_status(trend: str, status: str = "final") -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": status,
        "code": {"coding": [{"system": codes.LOINC, "code": codes.DISEASE_STATUS}]},
        "valueCodeableConcept": {"coding": [{"system": codes.SNOMED, "code": trend}]},
    }


def test_death_cancels_every_open_task_and_leaves_finished_ones() -> None:
    for event in ({"resourceType": "Patient", "deceasedBoolean": True},
                  {"resourceType": "Patient", "deceasedDateTime": "2025-03-01"},
                  _medication_stopped(codes.DEATH)):  # fmt: skip
        outcome = evaluate_stop_rules(TASKS, event, REQUESTS.get)
        assert outcome.rule == "death"
        open_tasks = ("rcp", "palliative", "surgery", "radiotherapy", "trial", "immuno")
        assert {c.task for c in outcome.changes} == {f"Task/{t}" for t in open_tasks}
        assert {c.status for c in outcome.changes} == {"cancelled"}
        assert outcome.changes[0].status_reason()["coding"][0]["code"] == codes.DEATH
        assert outcome.notify_coordinator is None


def test_refusal_holds_open_therapy_assessments_and_keeps_supportive_care() -> None:
    outcome = evaluate_stop_rules(TASKS, _medication_stopped(codes.PATIENT_REFUSAL), REQUESTS.get)
    assert outcome.rule == "refusal"
    # radiotherapy is already on hold; palliative care and the RCP keep running; finished tasks are untouched.
    assert [(c.task, c.status) for c in outcome.changes] == [
        ("Task/surgery", "on-hold"), ("Task/trial", "on-hold"), ("Task/immuno", "on-hold"),
    ]  # fmt: skip
    assert outcome.changes[0].status_reason()["text"] == "Treatment refused by the patient"


def test_therapy_assessment_is_recognised_through_the_focus_only_with_a_lookup() -> None:
    surgery = _task("surgery", "draft", focus="ServiceRequest/surgery")
    assert is_therapy_assessment(surgery, REQUESTS.get)
    assert not is_therapy_assessment(surgery)
    assert is_therapy_assessment(_task("t", "draft", code=_local("targeted-therapy-review")))
    assert not is_therapy_assessment(_task("p", "draft", focus="ServiceRequest/palliative"), REQUESTS.get)


def test_improvement_or_stability_notifies_the_coordinator_and_cancels_nothing() -> None:
    for trend, word in ((codes.IMPROVED, "improved"), (codes.STABLE, "stable")):
        outcome = evaluate_stop_rules(TASKS, _disease_status(trend), REQUESTS.get)
        assert outcome.rule == "disease-status-review"
        assert outcome.changes == ()
        assert outcome.notify_coordinator is not None and word in outcome.notify_coordinator


def test_unrelated_or_unusable_events_change_nothing() -> None:
    for event in (
        _disease_status(codes.WORSENED),
        _disease_status(codes.IMPROVED, status="entered-in-error"),
        _medication_stopped(codes.NO_RESPONSE),
        {"resourceType": "Patient", "deceasedBoolean": False},
    ):
        outcome = evaluate_stop_rules(TASKS, event, REQUESTS.get)
        assert (outcome.rule, outcome.changes, outcome.notify_coordinator) == (None, (), None)
