"""CarePlan roll-up as a use case: after a Task change (or a pathway stop), each CarePlan it belongs to gets the
status its Tasks call for (workflow/rollup.py), and its RequestGroup the same; recorded and announced."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime
from typing import Any

from carepath.errors import Gone, NotFound
from carepath.fhir.search.query import parse_search
from carepath.service.task_events import emit, record
from carepath.store.repository import StoreTransaction
from carepath.workflow.rollup import must_actions, rolled_up_status

Resource = dict[str, Any]


async def roll_up(
    tx: StoreTransaction, careplan_refs: Iterable[str], agent: Resource, now: datetime, *, stopped: bool = False
) -> None:
    """Roll up each CarePlan (`CarePlan/<id>`); `stopped` = the pathway was stopped (revoked)."""
    for ref in sorted(set(careplan_refs)):
        careplan = await tx.read_for_update("CarePlan", ref.partition("/")[2])
        if careplan is None:
            continue
        plan = careplan.json()
        group = await _request_group(tx, plan)
        query = replace(parse_search("Task", [("based-on", ref)]), count=500)
        tasks = [stored.json() for _, stored in await tx.search(query)]
        new = rolled_up_status(plan, tasks, must_actions(group or {}), stopped=stopped)
        if new is None:
            continue
        why = "the pathway was stopped" if stopped else "every Task the plan requires is completed or cancelled"
        stored, _ = await tx.update("CarePlan", plan["id"], {**plan, "status": new})
        await record(tx, stored, f"{plan['status']} -> {new}: {why}", agent, now)
        await emit(tx, "dev.carepath.careplan.status-changed", stored)
        if group is not None and group.get("status") != new:
            await tx.update("RequestGroup", group["id"], {**group, "status": new})


async def _request_group(tx: StoreTransaction, plan: Resource) -> Resource | None:
    """The RequestGroup the CarePlan's activity points at (how $apply links them), if stored."""
    for activity in plan.get("activity", []):
        ref = str((activity.get("reference") or {}).get("reference", ""))
        if ref.startswith("RequestGroup/"):
            try:
                return (await tx.read("RequestGroup", ref.partition("/")[2])).json()
            except (NotFound, Gone):
                return None
    return None
