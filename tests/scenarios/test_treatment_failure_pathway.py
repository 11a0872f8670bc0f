"""The clinical spec's scenarios (§5 P01-P10, negatives a-e) applied to the shipped pathway with a frozen clock.

Expected values are the spec's: §5 for which steps appear and their priority, §2 for codes and resource kinds,
§4.3 for due dates and dependency holds. Dates count from NOW; steps after the RCP count from the RCP's due date
(provisional until the RCP completes).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from carepath.content import codes
from carepath.content.bundles import Obs
from carepath.content.loader import load_pathway_files
from carepath.content.samples import SCENARIOS, sample_case
from carepath.content.summary import TaskSummary, summarise
from carepath.engine import ApplyContext, ApplyResult, DictResolver, apply_plan_definition

PATHWAYS = Path(__file__).resolve().parents[2] / "pathways"
PLAN_URL = "https://fhir.carepath.dev/PlanDefinition/chemo-failure-follow-up"
NOW = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
R, U = "routine", "urgent"

# §5: "Every scenario also gets S01, S02, S05, S06, S07, S08, S09, S10, S12, S13 and S19", routine unless stated.
COMMON = dict.fromkeys(("S01", "S02", "S05", "S06", "S07", "S08", "S09", "S10", "S12", "S13", "S19"), R)
EXPECTED: dict[str, dict[str, str]] = {
    "P01": {**COMMON, "S16": R, "S17": R, "S18": R},
    "P02": {**COMMON, "S16": R, "S18": R},
    "P03": {**COMMON, "S14": R, "S15": R, "S18": R},
    "P04": {**COMMON, "S14": R, "S15": R, "S09": U, "S18": R},
    "P05": {**COMMON, "S17": R, "S18": R},
    "P06": {**COMMON, "S17": R, "S18": R},
    "P07": {**COMMON, "S03": R, "S04": R, "S06": U, "S09": U, "S11": R, "S15": R},
    "P08": {**COMMON, "S04": R, "S05": U, "S06": U, "S07": U, "S07b": U, "S09": U, "S10": U, "S11": U, "S15": U,
            "S18": R},
    "P09": {**COMMON, "S16": R, "S18": R},
    "P10": {**COMMON, "S18": R},
}  # fmt: skip
EXPECTED |= {
    "NB": EXPECTED["P01"],  # (b) no ECOG/KPS: %notFrail is true, S16/S18 still generated, S02 collects PS
    "NC": {**COMMON, "S06": U, "S09": U, "S11": R, "S15": R},  # (c) ECOG 4: no S03/S04/S17 (nor S14/S16/S18)
    "ND": EXPECTED["P08"],  # (d) pain as valueInteger
    "NE": EXPECTED["P10"],  # (e) entered-in-error observations ignored
}

LOCAL_CODE = {"S01": "gp-notify", "S02": "ps-reassessment", "S05": "tumor-board-review", "S07": "pain-assessment",
              "S08": "distress-screening", "S10": "nutrition-screening", "S16": "immunotherapy-eligibility-review",
              "S17": "targeted-therapy-review", "S18": "clinical-trial-screening", "S19": "gp-notify"}  # fmt: skip
STANDARD_CODE = {"S03": (codes.SNOMED, "363679005"), "S04": (codes.LOINC, "51969-4"),
                 "S06": (codes.SNOMED, "306237005"), "S07b": (codes.SNOMED, "306265007"),
                 "S09": (codes.SNOMED, "308459004"), "S11": (codes.SNOMED, "103699006"),
                 "S12": (codes.SNOMED, "308440001"), "S13": (codes.SNOMED, "711281004"),
                 "S14": (codes.SNOMED, "183541002"), "S15": (codes.SNOMED, "306256000")}  # fmt: skip
SURGEON = {"P03": "306313008", "P04": "306318004"}  # §5: hepatobiliary surgeon (liver mets), urologist (prostate)
TASK_STEPS = {"S02", "S07", "S08", "S10", "S16", "S17", "S18"}
NOTIFICATION_STEPS = {"S01", "S19"}
# §4.3 due dates from T0 in days: one number, or (urgent, routine).
DUE_DAYS: dict[str, int | tuple[int, int]] = {
    "S01": 2, "S02": 7, "S03": 14, "S04": 7, "S05": (7, 28), "S06": (3, 14), "S07": (1, 7), "S07b": 3, "S08": 7,
    "S09": (7, 28), "S10": 7, "S11": (7, 14), "S12": 28, "S13": 28, "S15": (7, 0),
}  # fmt: skip
AFTER_RCP_DAYS = {"S14": 14, "S15": 14, "S16": 14, "S17": 14, "S18": 14, "S19": 2}


@pytest.fixture(scope="module")
def content() -> list[dict[str, Any]]:
    return load_pathway_files(PATHWAYS)


@pytest.fixture(scope="module")
def applied(content: list[dict[str, Any]]) -> dict[str, ApplyResult]:
    """Each sample patient applied once (about 0.3 s each), shared by the per-scenario checks."""
    return {key: apply(content, sample_case(key).bundle(NOW)) for key in CASES}


def apply(
    content: list[dict[str, Any]], bundle: dict[str, Any], parameters: dict[str, Any] | None = None,
    *, persist: bool = True,
) -> ApplyResult:  # fmt: skip
    plan = next(r for r in content if r.get("url") == PLAN_URL)
    patient = next(e["resource"]["id"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient")
    # persist=True: the scenarios describe the worklist a persisted $apply stores (Tasks ordered, requests proposed)
    ctx = ApplyContext(subject=f"Patient/{patient}", now=NOW, data=bundle, parameters=parameters, persist=persist)
    return apply_plan_definition(plan, DictResolver(content), ctx)


def by_step(result: ApplyResult) -> dict[str, TaskSummary]:
    items = summarise(result)
    steps = {item.step: item for item in items}
    assert len(steps) == len(items), f"a step produced two Tasks: {[i.step for i in items]}"
    return steps


def expected_code(key: str, step: str) -> tuple[str, str]:
    if step in LOCAL_CODE:
        return codes.LOCAL, LOCAL_CODE[step]
    if step == "S14" and key in SURGEON:
        return codes.SNOMED, SURGEON[key]
    return STANDARD_CODE[step]


def expected_kind(step: str) -> str:
    if step in TASK_STEPS:
        return "Task"
    return "CommunicationRequest" if step in NOTIFICATION_STEPS else "ServiceRequest"


def expected_due(step: str, priority: str, rcp_due: datetime) -> datetime:
    if step in AFTER_RCP_DAYS and not (step == "S15" and priority == U):
        return rcp_due + timedelta(days=AFTER_RCP_DAYS[step])
    days = DUE_DAYS[step]
    if isinstance(days, tuple):
        days = days[0] if priority == U else days[1]
    return NOW + timedelta(days=days)


def expected_holds(step: str, priority: str, steps: set[str]) -> set[str]:
    if step == "S05":
        return {"S02", "S03", "S04"} & steps  # only the predecessors that were generated
    if step in AFTER_RCP_DAYS and not (step == "S15" and priority == U):  # urgent RT runs in parallel with the RCP
        return {"S05"}
    return set()


CASES = [*(c.key for c in SCENARIOS), "NB", "NC", "ND", "NE"]


@pytest.mark.parametrize("key", CASES)
def test_the_expected_steps_are_generated_with_their_priorities(applied: dict[str, ApplyResult], key: str) -> None:
    result = applied[key]
    assert result.applicable is True
    steps = by_step(result)
    assert {step: item.priority for step, item in steps.items()} == EXPECTED[key]


@pytest.mark.parametrize("key", CASES)
def test_each_step_has_its_code_kind_due_date_and_holds(applied: dict[str, ApplyResult], key: str) -> None:
    steps = by_step(applied[key])
    rcp_due = steps["S05"].due
    assert rcp_due == NOW + timedelta(days=7 if steps["S05"].priority == U else 28)  # next weekly / next session
    for step, item in steps.items():
        assert (item.system, item.code) == expected_code(key, step), step
        assert item.kind == expected_kind(step), step
        assert item.due == expected_due(step, item.priority, rcp_due), step
        holds = expected_holds(step, item.priority, set(steps))
        assert set(item.waits_for) == holds, step
        assert item.status == ("draft" if holds else "requested"), step


@pytest.mark.parametrize("key", CASES)
def test_every_request_has_one_companion_task_with_the_same_priority(applied: dict[str, ApplyResult], key: str) -> None:
    contained = applied[key].careplan["contained"]
    requests = {f"#{r['id']}": r for r in contained if r["resourceType"] in ("ServiceRequest", "CommunicationRequest")}
    companions = [t for t in contained if t["resourceType"] == "Task" and "focus" in t]
    assert sorted(t["focus"]["reference"] for t in companions) == sorted(requests)
    for task in companions:
        assert task["code"]["coding"][0]["code"] == "fulfill"
        assert task["priority"] == requests[task["focus"]["reference"]]["priority"]
    tasks = [r for r in contained if r["resourceType"] == "Task"]
    assert len(tasks) == len(EXPECTED[key])
    assert len(requests) == len(set(EXPECTED[key]) - TASK_STEPS)


@pytest.mark.parametrize("key", CASES)
def test_requests_are_proposed_and_tasks_ordered_once_persisted(applied: dict[str, ApplyResult], key: str) -> None:
    """The worklist convention: Tasks `order`, `requested` or `draft` while held; no request is an active order."""
    for resource in applied[key].careplan["contained"]:
        kind = resource["resourceType"]
        if kind == "Task":
            assert resource["intent"] == "order" and resource["status"] in ("requested", "draft")
        elif kind in ("ServiceRequest", "CommunicationRequest"):
            assert resource["status"] == "draft" and resource.get("intent", "option") == "option"


def test_a_transient_result_has_every_resource_the_request_group_points_to_as_an_option(
    content: list[dict[str, Any]],
) -> None:
    """R4 RequestGroup: the resources its actions point to SHALL have intent option (CommunicationRequest has
    no intent: status draft)."""
    result = apply(content, sample_case("P08").bundle(NOW), persist=False)
    contained = {f"#{r['id']}": r for r in result.careplan["contained"]}
    pointed = [
        contained[ref] for ref in _action_resources(contained[result.careplan["activity"][0]["reference"]["reference"]])
    ]
    assert len(pointed) == len(EXPECTED["P08"])
    for resource in pointed:
        assert resource["status"] == "draft" and resource.get("intent", "option") == "option", resource["id"]


def _action_resources(group: dict[str, Any]) -> list[str]:
    def walk(actions: list[dict[str, Any]]) -> list[str]:
        return [ref for a in actions for ref in ([a["resource"]["reference"]] if "resource" in a else [])
                + walk(a.get("action", []))]  # fmt: skip

    return walk(group.get("action", []))


@pytest.mark.parametrize("key", CASES)
def test_the_rcp_request_carries_the_palliative_focus_flag_only_when_frail(
    applied: dict[str, ApplyResult], key: str
) -> None:
    contained = applied[key].careplan["contained"]
    requests = [r for r in contained if r["resourceType"] == "ServiceRequest"]
    (rcp,) = [r for r in requests if r["code"]["coding"][0]["code"] == "tumor-board-review"]
    flags = [c for detail in rcp.get("orderDetail", []) for c in detail["coding"]]
    frail = key in ("P07", "NC")  # ECOG 3 and ECOG 4
    assert flags == ([{"system": codes.LOCAL, "code": codes.PALLIATIVE_FOCUS}] if frail else [])


def test_negative_a_stable_disease_without_failed_treatment_is_not_applicable(content: list[dict[str, Any]]) -> None:
    result = apply(content, sample_case("NA").bundle(NOW))
    assert result.applicable is False
    kinds = {r["resourceType"] for r in result.careplan.get("contained", [])}
    assert kinds & {"Task", "ServiceRequest", "CommunicationRequest"} == set()
    assert summarise(result) == []


def test_either_entry_trigger_alone_makes_the_pathway_applicable(content: list[dict[str, Any]]) -> None:
    p10 = sample_case("P10")
    stable_but_failed = replace(p10, status_history=((codes.STABLE, 5),))
    progression_only = replace(p10, termination=None)
    for case in (stable_but_failed, progression_only):
        assert apply(content, case.bundle(NOW)).applicable is True


def test_karnofsky_40_triggers_the_palliative_focus_like_ecog_3(content: list[dict[str, Any]]) -> None:
    nb = sample_case("NB")  # P01 without ECOG
    kps40 = replace(nb, observations=(*nb.observations, Obs(codes.LOINC, codes.KARNOFSKY, {"valueInteger": 40}, 1)))
    steps = by_step(apply(content, kps40.bundle(NOW)))
    assert steps["S06"].priority == U
    assert {"S16", "S18"}.isdisjoint(steps) and "S17" in steps  # S17 keeps ECOG 3 / KPS 40 on purpose (§4.3)


def _duration(days: int) -> dict[str, Any]:
    return {"value": days, "unit": "days", "system": "http://unitsofmeasure.org", "code": "d"}


def test_thresholds_and_due_dates_are_overridable_through_apply_parameters(content: list[dict[str, Any]]) -> None:
    parameters = {"resourceType": "Parameters", "parameter": [
        {"name": "painSevere", "valueInteger": 9},
        {"name": "dueTumorBoard", "valueDuration": _duration(21)},
        {"name": "oligometastasisMaxSites", "valueInteger": 4},
    ]}  # fmt: skip
    steps = by_step(apply(content, sample_case("P08").bundle(NOW), parameters))
    # Pain 8 is no longer "severe": no S07b, S05/S07 routine; the urgent RT becomes the routine, post-RCP one.
    assert "S07b" not in steps
    assert (steps["S05"].priority, steps["S07"].priority, steps["S15"].priority) == (R, R, R)
    assert steps["S06"].priority == U  # still urgent: 10 % weight loss
    assert steps["S05"].due == NOW + timedelta(days=21)
    assert steps["S19"].due == NOW + timedelta(days=23)
    # With 4 metastatic sites allowed, P08 (4 sites, ECOG 2) counts as limited disease: a surgical assessment.
    assert "S14" in steps


def test_defaults_apply_when_no_parameter_is_given(content: list[dict[str, Any]]) -> None:
    empty = {"resourceType": "Parameters", "parameter": []}
    with_empty = {s: i.priority for s, i in by_step(apply(content, sample_case("P08").bundle(NOW), empty)).items()}
    assert with_empty == EXPECTED["P08"]
