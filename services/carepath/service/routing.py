"""Routing as a use case: a Task gets as `owner` the patient's CareTeam participant in its role
(workflow/routing.py), when it is created by `$apply` or by a stop rule."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime
from typing import Any

from carepath.fhir.search.query import parse_search
from carepath.store.repository import StoreTransaction
from carepath.workflow.routing import owner_for

Resource = dict[str, Any]


async def careteams(tx: StoreTransaction, patient: str) -> list[Resource]:
    """The patient's active CareTeams, oldest first (a stable order: the first match wins)."""
    query = parse_search("CareTeam", [("patient", patient), ("status", "active"), ("_sort", "_lastUpdated")])
    return [stored.json() for _, stored in await tx.search(replace(query, count=100))]


async def route_tasks(tx: StoreTransaction, tasks: Iterable[Resource], patient: str, now: datetime) -> None:
    """Give each Task without an owner the CareTeam participant holding its role (the Tasks are changed)."""
    pending = [task for task in tasks if not task.get("owner") and task.get("performerType")]
    if not pending:
        return
    teams = await careteams(tx, patient)
    for task in pending:
        owner = owner_for(task, teams, now)
        if owner is not None:
            task["owner"] = owner
