"""`_include` and `_revinclude` through HTTP: literal references and canonical ones (CarePlan -> PlanDefinition)."""

from __future__ import annotations

import httpx
from rest_support import assert_outcome, create, entry_urls, match_ids, patient, search, task

PLAN_URL = "https://fhir.carepath.dev/PlanDefinition/include-test"


async def test_task_include_patient_and_revinclude_from_patient(client: httpx.AsyncClient) -> None:
    pid = (await create(client, patient("Include")))["id"]
    other = (await create(client, patient("Unrelated")))["id"]
    tid = (await create(client, task(pid)))["id"]
    await create(client, task(other))
    included = await search(client, "Task", _id=tid, _include="Task:patient")
    assert match_ids(included) == [tid]
    assert entry_urls(included, "include") == {f"Patient/{pid}"}
    reverse = await search(client, "Patient", _id=pid, _revinclude="Task:patient")
    assert entry_urls(reverse, "match") == {f"Patient/{pid}"}
    assert entry_urls(reverse, "include") == {f"Task/{tid}"}


async def test_careplan_based_on_and_request_group(client: httpx.AsyncClient) -> None:
    pid = (await create(client, patient("Plan")))["id"]
    request_group = {"resourceType": "RequestGroup", "status": "active", "intent": "plan",
                     "subject": {"reference": f"Patient/{pid}"}}  # fmt: skip
    rg = (await create(client, request_group))["id"]
    parent = (await create(client, _careplan(pid)))["id"]
    child = (await create(client, {**_careplan(pid), "basedOn": [{"reference": f"CarePlan/{parent}"}]}))["id"]
    bundle = await search(client, "CarePlan", _id=child, _include="CarePlan:based-on")
    assert entry_urls(bundle, "include") == {f"CarePlan/{parent}"}
    step = (await create(client, task(pid, basedOn=[{"reference": f"RequestGroup/{rg}"}])))["id"]
    groups = await search(client, "RequestGroup", _id=rg, _revinclude="Task:based-on")
    assert entry_urls(groups, "include") == {f"Task/{step}"}
    tasks = await search(client, "Task", _id=step, _include="Task:based-on")
    assert entry_urls(tasks, "include") == {f"RequestGroup/{rg}"}


async def test_canonical_include_of_the_plan_definition(client: httpx.AsyncClient) -> None:
    plan = {"resourceType": "PlanDefinition", "url": PLAN_URL, "version": "1.0.0", "status": "active"}
    plan_id = (await create(client, plan))["id"]
    pid = (await create(client, patient("Canonical")))["id"]
    cp = (await create(client, {**_careplan(pid), "instantiatesCanonical": [f"{PLAN_URL}|1.0.0"]}))["id"]
    bundle = await search(client, "CarePlan", _id=cp, _include="CarePlan:instantiates-canonical")
    assert entry_urls(bundle, "include") == {f"PlanDefinition/{plan_id}"}
    reverse = await search(client, "PlanDefinition", url=PLAN_URL, _revinclude="CarePlan:instantiates-canonical")
    assert entry_urls(reverse, "include") == {f"CarePlan/{cp}"}


async def test_unknown_include_is_refused(client: httpx.AsyncClient) -> None:
    assert_outcome(await client.get("/fhir/Task", params={"_include": "Task:shoe"}), 400)


def _careplan(patient_id: str) -> dict[str, object]:
    return {"resourceType": "CarePlan", "status": "active", "intent": "plan",
            "subject": {"reference": f"Patient/{patient_id}"}}  # fmt: skip
