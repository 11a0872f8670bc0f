"""PATCH of a Task goes through the Task state machine (it is the update of the patched version)."""

from __future__ import annotations

import httpx
from rest_support import assert_outcome, create
from workflow_support import careplan_with_tasks, read

from task_states import EDGES, expected

JSON_PATCH = {"Content-Type": "application/json-patch+json", "Accept": "application/fhir+json"}


async def _patch(client: httpx.AsyncClient, task_id: str, status: str) -> httpx.Response:
    ops = [{"op": "replace", "path": "/status", "value": status}]
    return await client.patch(f"/fhir/Task/{task_id}", json=ops, headers=JSON_PATCH)


async def test_every_edge_of_the_state_table_over_patch(client: httpx.AsyncClient) -> None:
    for before, after in EDGES:
        task = await create(client, {"resourceType": "Task", "status": before, "intent": "order"})
        response = await _patch(client, task["id"], after)
        if expected(before, after):
            assert response.status_code == 200, (before, after, response.text)
        else:
            outcome = assert_outcome(response, 422)
            assert f"from {before!r} to {after!r}" in outcome["issue"][0]["diagnostics"]


async def test_patch_completing_the_last_predecessor_releases(client: httpx.AsyncClient) -> None:
    made = await careplan_with_tasks(client)
    for key in ("a", "b"):
        for status in ("in-progress", "completed"):
            assert (await _patch(client, made[key]["id"], status)).status_code == 200
    assert (await read(client, f"Task/{made['d']['id']}"))["status"] == "requested"
