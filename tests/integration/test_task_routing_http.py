"""Routing of the shipped pathway's Tasks ("my tasks"), the waits-for search both ways, and one completion
releasing its dependant — through the API, with and without a CareTeam, on both back ends."""

from __future__ import annotations

from typing import Any

import httpx
from rest_support import create, search
from workflow_support import move, patient_tasks, read, start_pathway

from carepath.content import codes
from carepath.content.samples import sample_case
from carepath.workflow.tasks import WAITS_FOR

ONCOLOGIST, COORDINATOR = "310512001", "768820003"
LOCAL = "https://fhir.carepath.dev/CodeSystem/cfp-local"


def _role(system: str, code: str) -> list[dict[str, Any]]:
    return [{"coding": [{"system": system, "code": code}]}]


async def _careteam(client: httpx.AsyncClient, patient: str) -> dict[str, str]:
    """A CareTeam with an oncologist, a care coordinator and an RCP coordinator; their references."""
    members = {name: f"Practitioner/{(await create(client, {'resourceType': 'Practitioner'}))['id']}"
               for name in ("oncologist", "coordinator", "rcp")}  # fmt: skip
    roles = {"oncologist": _role(codes.SNOMED, ONCOLOGIST), "coordinator": _role(codes.SNOMED, COORDINATOR),
             "rcp": _role(LOCAL, "rcp-coordinator")}  # fmt: skip
    participants = [{"role": roles[n], "member": {"reference": members[n]}} for n in members]
    await create(client, {"resourceType": "CareTeam", "status": "active", "subject": {"reference": patient},
                          "participant": participants})  # fmt: skip
    return members


def _step(task: dict[str, Any]) -> str:
    return next(p["valueString"] for e in task["extension"] if e["url"].endswith("/generated-by")
                for p in e["extension"] if p["url"] == "actionId")  # fmt: skip


async def _ids(client: httpx.AsyncClient, **params: str) -> set[str]:
    bundle = await search(client, "Task", _count="200", **params)
    return {e["resource"]["id"] for e in bundle.get("entry", []) if e["search"]["mode"] == "match"}


async def test_without_a_careteam_every_task_is_coded_and_unowned(pathway_client: httpx.AsyncClient) -> None:
    tasks = await patient_tasks(pathway_client, await start_pathway(pathway_client, "P01"))
    assert tasks and all("owner" not in t for t in tasks)
    assert all(any(c.get("code") for role in t["performerType"] for c in role.get("coding", [])) for t in tasks)


async def test_with_a_careteam_tasks_are_owned_and_found_by_owner_and_performer(
    pathway_client: httpx.AsyncClient,
) -> None:
    patient = f"Patient/{sample_case('P01').key}"
    members = await _careteam(pathway_client, patient)  # before the pathway starts: its Tasks are routed at once
    tasks = {_step(t): t for t in await patient_tasks(pathway_client, await start_pathway(pathway_client, "P01"))}
    owners = {step: t.get("owner", {}).get("reference") for step, t in tasks.items()}
    assert owners["S02"] == owners["S16"] == owners["S17"] == members["oncologist"]
    assert owners["S01"] == members["coordinator"] and owners["S05"] == owners["S19"] == members["rcp"]
    assert owners["S06"] is None  # nobody in the palliative roles: not routed by a guess
    mine = await _ids(pathway_client, owner=members["coordinator"])
    assert mine == {tasks["S01"]["id"]}
    by_role = await _ids(pathway_client, performer=f"{codes.SNOMED}|{COORDINATOR}", patient=patient)
    assert by_role == {tasks["S01"]["id"], tasks["S19"]["id"]}


async def test_waits_for_both_ways_and_completion_releases_the_rcp(pathway_client: httpx.AsyncClient) -> None:
    tasks = {_step(t): t for t in await patient_tasks(pathway_client, await start_pathway(pathway_client, "P01"))}
    ps, rcp = tasks["S02"], tasks["S05"]
    assert [e["valueReference"]["reference"] for e in rcp["extension"] if e["url"] == WAITS_FOR] == [f"Task/{ps['id']}"]
    assert await _ids(pathway_client, **{"waits-for": f"Task/{ps['id']}"}) == {rcp["id"]}
    included = await search(pathway_client, "Task", _id=rcp["id"], _include="Task:waits-for")
    assert {e["resource"]["id"] for e in included["entry"] if e["search"]["mode"] == "include"} == {ps["id"]}
    after_rcp = {tasks[s]["id"] for s in ("S16", "S17", "S18", "S19")}
    assert await _ids(pathway_client, **{"waits-for": f"Task/{rcp['id']}"}) == after_rcp
    await move(pathway_client, ps, "in-progress", "completed")
    assert (await read(pathway_client, f"Task/{rcp['id']}"))["status"] == "requested"
    assert [(await read(pathway_client, f"Task/{i}"))["status"] for i in sorted(after_rcp)] == ["draft"] * 4


async def test_the_stop_rules_review_task_goes_to_the_care_coordinator(pathway_client: httpx.AsyncClient) -> None:
    patient = "Patient/P02"
    members = await _careteam(pathway_client, patient)
    await start_pathway(pathway_client, "P02")
    improved = {"resourceType": "Observation", "status": "final", "subject": {"reference": patient},
                "code": {"coding": [{"system": codes.LOINC, "code": codes.DISEASE_STATUS}]},
                "valueCodeableConcept": {"coding": [{"system": codes.SNOMED, "code": codes.IMPROVED}]}}  # fmt: skip
    await create(pathway_client, improved)
    [review] = [t for t in await patient_tasks(pathway_client, patient) if "focus" in t and
                t["focus"]["reference"].startswith("Observation/")]  # fmt: skip
    assert review["performerType"][0]["coding"][0]["code"] == COORDINATOR
    assert review["owner"] == {"reference": members["coordinator"]}


async def test_a_refusal_hold_records_where_each_task_came_from(pathway_client: httpx.AsyncClient) -> None:
    patient = await start_pathway(pathway_client, "P01")
    refusal = {"resourceType": "MedicationRequest", "status": "stopped", "intent": "order",
               "subject": {"reference": patient}, "medicationCodeableConcept": {"text": "chemotherapy"},
               "statusReason": {"coding": [{"system": codes.SNOMED, "code": codes.PATIENT_REFUSAL}]}}  # fmt: skip
    await create(pathway_client, refusal)
    held = {_step(t): t for t in await patient_tasks(pathway_client, patient) if t["status"] == "on-hold"}
    assert set(held) == {"S16", "S17", "S18"}  # the therapy assessments of P01, all waiting for the RCP
    for task in held.values():
        assert {"url": "https://fhir.carepath.dev/StructureDefinition/task-held-from", "valueCode": "draft"} in (
            task["extension"]
        )
        version = f"Task/{task['id']}/_history/2"
        found = (await search(pathway_client, "Provenance", target=version))["entry"]
        [change] = [e["resource"] for e in found if e["resource"]["target"] == [{"reference": version}]]
        assert change["reason"][0]["text"] == "draft -> on-hold: Treatment refused by the patient"
