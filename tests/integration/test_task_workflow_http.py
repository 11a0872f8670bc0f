"""The Task workflow through the FHIR API, on both back ends: the state table over PUT and transaction Bundles,
release of held Tasks, CarePlan roll-up, the Provenance and the outbound events of every change."""

from __future__ import annotations

from typing import Any

import httpx
from rest_support import HEADERS, assert_outcome, create, put, search
from workflow_support import careplan_with_tasks, events, move, read

from carepath.settings import Settings
from task_states import EDGES, expected


async def _task(client: httpx.AsyncClient, status: str) -> dict[str, Any]:
    return await create(client, {"resourceType": "Task", "status": status, "intent": "order"})


async def _transaction_put(client: httpx.AsyncClient, *resources: dict[str, Any]) -> httpx.Response:
    entries = [{"resource": r, "request": {"method": "PUT", "url": f"Task/{r['id']}"}} for r in resources]
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
    return await client.post("/fhir", json=bundle, headers=HEADERS)


async def test_every_edge_of_the_state_table_over_put(client: httpx.AsyncClient) -> None:
    for before, after in EDGES:
        task = await _task(client, before)
        response = await put(client, {**task, "status": after})
        if expected(before, after):
            assert response.status_code == 200, (before, after, response.text)
            assert response.json()["status"] == after
        else:
            outcome = assert_outcome(response, 422, expression="Task.status")
            assert f"from {before!r} to {after!r}" in outcome["issue"][0]["diagnostics"]
            assert (await read(client, f"Task/{task['id']}"))["meta"]["versionId"] == "1"  # nothing written


async def test_every_edge_of_the_state_table_in_transaction_bundles(client: httpx.AsyncClient) -> None:
    for before, after in EDGES:
        task, bystander = await _task(client, before), await _task(client, "requested")
        response = await _transaction_put(client, {**bystander, "status": "accepted"}, {**task, "status": after})
        if expected(before, after):
            assert response.status_code == 200, (before, after, response.text)
        else:
            outcome = assert_outcome(response, 422)
            assert f"from {before!r} to {after!r}" in outcome["issue"][0]["diagnostics"]
            assert outcome["issue"][0]["diagnostics"].startswith("Bundle.entry[1]: ")
            # Atomic: the other entry's valid move was rolled back too.
            assert (await read(client, f"Task/{bystander['id']}"))["status"] == "requested"


async def test_a_hold_resumes_to_where_it_came_from(client: httpx.AsyncClient) -> None:
    task = await _task(client, "ready")
    held = await move(client, task, "on-hold")
    assert held["extension"] == [{"url": "https://fhir.carepath.dev/StructureDefinition/task-held-from",
                                  "valueCode": "ready"}]  # fmt: skip
    assert_outcome(await put(client, {**held, "status": "requested"}), 422)
    resumed = await move(client, held, "ready")
    assert "extension" not in resumed


async def test_completing_the_last_predecessor_releases_the_held_task(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    made = await careplan_with_tasks(client)
    d = f"Task/{made['d']['id']}"
    await move(client, made["a"], "in-progress", "completed")
    assert (await read(client, d))["status"] == "draft"  # b is still open
    await move(client, made["b"], "in-progress", "completed")
    released = await read(client, d)
    assert released["status"] == "requested" and "businessStatus" not in released
    sent = await events(settings)
    assert [data["id"] for kind, data in sent if kind == "dev.carepath.task.released"] == [made["d"]["id"]]
    changes = [(data["id"], data["status"]) for kind, data in sent if kind == "dev.carepath.task.status-changed"]
    assert changes == [(made["a"]["id"], "in-progress"), (made["a"]["id"], "completed"),
                       (made["b"]["id"], "in-progress"), (made["b"]["id"], "completed"),
                       (made["d"]["id"], "requested")]  # fmt: skip
    # who / when / why of the release
    provenance = await search(client, "Provenance", target=f"{d}/_history/2")
    [record] = [e["resource"] for e in provenance["entry"]]
    assert record["reason"][0]["text"] == "draft -> requested: released: every Task it waited for is completed"
    assert record["agent"][0]["who"]["display"].startswith("carepath")
    assert (await read(client, f"CarePlan/{made['plan']['id']}"))["status"] == "active"


async def test_the_release_happens_in_the_transaction_that_completes_the_predecessors(
    client: httpx.AsyncClient,
) -> None:
    made = await careplan_with_tasks(client)
    a, b = [await move(client, made[k], "in-progress") for k in ("a", "b")]
    response = await _transaction_put(client, {**a, "status": "completed"}, {**b, "status": "completed"})
    assert response.status_code == 200, response.text
    assert (await read(client, f"Task/{made['d']['id']}"))["status"] == "requested"


async def test_an_owned_task_is_released_ready(client: httpx.AsyncClient) -> None:
    made = await careplan_with_tasks(client)
    owned = await move(client, {**made["d"], "owner": {"reference": "Practitioner/p1"}}, "draft")
    await move(client, made["a"], "in-progress", "completed")
    await move(client, made["b"], "in-progress", "completed")
    assert (await read(client, f"Task/{owned['id']}"))["status"] == "ready"


async def test_a_careteam_formed_after_apply_routes_the_task_when_it_is_released(client: httpx.AsyncClient) -> None:
    made = await careplan_with_tasks(client)
    oncologist = [{"coding": [{"system": "http://snomed.info/sct", "code": "310512001"}]}]
    d = await move(client, {**made["d"], "performerType": oncologist}, "draft")
    subject = {"reference": f"Patient/{made['patient']['id']}"}
    member = {"role": oncologist, "member": {"reference": "Practitioner/onc"}}
    await create(client, {"resourceType": "CareTeam", "status": "active", "subject": subject, "participant": [member]})
    await move(client, made["a"], "in-progress", "completed")
    await move(client, made["b"], "in-progress", "completed")
    released = await read(client, f"Task/{d['id']}")
    assert released["owner"] == {"reference": "Practitioner/onc"} and released["status"] == "ready"


async def test_a_cancelled_predecessor_holds_the_dependant_for_review(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    made = await careplan_with_tasks(client)
    await move(client, made["a"], "in-progress", "completed")
    await move(client, made["b"], "cancelled")
    held = await read(client, f"Task/{made['d']['id']}")
    assert held["status"] == "draft"
    assert held["businessStatus"]["text"] == "held for care coordinator review: step b (cancelled) did not complete"
    assert not [d for kind, d in await events(settings) if kind == "dev.carepath.task.released"]
    # Out of the worklist (draft), so the coordinator is told.
    [notice] = [e["resource"] for e in (await search(client, "CommunicationRequest"))["entry"]]
    assert notice["about"] == [{"reference": f"Task/{held['id']}"}]
    assert notice["category"][0]["coding"][0]["code"] == "notification"
    assert "step b (cancelled) did not complete" in notice["payload"][0]["contentString"]
    # The coordinator decides: moving it on by hand is an allowed move.
    assert (await move(client, held, "requested"))["status"] == "requested"


async def test_the_careplan_completes_when_its_tasks_are_done(client: httpx.AsyncClient, settings: Settings) -> None:
    made = await careplan_with_tasks(client)
    await move(client, made["a"], "in-progress", "completed")
    await move(client, made["b"], "cancelled")
    held = await read(client, f"Task/{made['d']['id']}")
    await move(client, held, "ready", "in-progress", "completed")
    plan = await read(client, f"CarePlan/{made['plan']['id']}")
    assert plan["status"] == "completed"
    assert (await read(client, f"RequestGroup/{made['group']['id']}"))["status"] == "completed"
    assert [d["id"] for k, d in await events(settings) if k == "dev.carepath.careplan.status-changed"] == [plan["id"]]


async def test_death_revokes_the_careplan(client: httpx.AsyncClient, settings: Settings) -> None:
    made = await careplan_with_tasks(client)
    response = await put(client, {**made["patient"], "deceasedBoolean": True})
    assert response.status_code == 200, response.text
    assert (await read(client, f"CarePlan/{made['plan']['id']}"))["status"] == "revoked"
    assert (await read(client, f"RequestGroup/{made['group']['id']}"))["status"] == "revoked"
    for key in ("a", "b", "d"):
        assert (await read(client, f"Task/{made[key]['id']}"))["status"] == "cancelled"
    statuses = [d["status"] for k, d in await events(settings) if k == "dev.carepath.careplan.status-changed"]
    assert statuses == ["revoked"]


async def test_a_refusal_hold_resumes_to_draft_and_then_releases(client: httpx.AsyncClient) -> None:
    made = await careplan_with_tasks(client)
    held = await move(client, made["d"], "on-hold")  # e.g. the refusal stop rule, before its predecessors finished
    assert held["extension"][-1] == {"url": "https://fhir.carepath.dev/StructureDefinition/task-held-from",
                                     "valueCode": "draft"}  # fmt: skip
    await move(client, made["a"], "in-progress", "completed")
    await move(client, made["b"], "in-progress", "completed")
    assert (await read(client, f"Task/{held['id']}"))["status"] == "on-hold"  # a hold is not released
    await move(client, held, "draft")  # resumed: its predecessors are done, so it is released at once
    assert (await read(client, f"Task/{held['id']}"))["status"] == "requested"
