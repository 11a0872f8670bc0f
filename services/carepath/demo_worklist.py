"""`carepath demo`'s additions for the worklist: two coordinators, and some work already done, held, assigned or
late, so the first look at `/app` shows every state. Changes go through the ordinary update path (the same as a
FHIR PUT); the late Tasks are backdated — a demo stand-in for patients enrolled some days ago."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from carepath.errors import CarepathError
from carepath.fhir.search.query import parse_search
from carepath.service.interactions import Interaction, execute_crud
from carepath.store.repository import Repository

COORDINATORS = {
    "dev-coordinator": "Dev Coordinator (IDEC)",  # the fixed user of CAREPATH_AUTH=off
    "rcp-secretary": "Sophie Laurent (RCP secretary)",
}


def _instant(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


async def add_worklist_examples(repository: Repository, now: datetime) -> str:
    """Returns a line saying what was changed (nothing on a re-run: the coordinators exist already)."""
    async with repository.transaction() as tx:
        if await tx.search(parse_search("Practitioner", [("_id", "dev-coordinator")])):
            return "worklist examples: already there"
        for pid, name in COORDINATORS.items():
            await tx.update("Practitioner", pid, {"resourceType": "Practitioner", "id": pid, "name": [{"text": name}]})
    plans: list[tuple[str, str, dict[str, Any]]] = [
        ("P01", "complete", {"owner": "dev-coordinator", "note": "Done by phone with the GP (demo)."}),
        ("P01", "late", {"owner": "dev-coordinator"}),
        ("P01", "hold", {"reason": "Patient in hospital for an infection (demo)."}),
        ("P01", "assign", {"owner": "rcp-secretary"}),
        ("P02", "late", {"owner": "rcp-secretary", "priority": "urgent"}),
        ("P02", "assign", {"owner": "dev-coordinator"}),
    ]
    done = 0
    for patient, change, values in plans:
        async with repository.transaction() as tx:
            open_unowned = [("subject", f"Patient/{patient}"), ("status", "requested,ready"), ("owner:missing", "true")]
            query = parse_search("Task", [*open_unowned, ("_sort", "due-date"), ("_count", "1")])
            found = await tx.search(query)
            if not found:
                continue
            stored = found[0][1]
            task = {k: v for k, v in stored.json().items() if k != "meta"}
            if "owner" in values:
                task["owner"] = {"reference": f"Practitioner/{values['owner']}",
                                 "display": COORDINATORS[values["owner"]]}  # fmt: skip
            if change == "complete":  # started first: the state machine has no requested -> completed
                started = {**task, "status": "in-progress"}
                stored = (await execute_crud(tx, Interaction("update", "Task", stored.res_id, body=started,
                                                             if_match=stored.version))).stored or stored  # fmt: skip
                task["status"] = "completed"
                task["note"] = [*task.get("note", []), {"text": values["note"], "time": _instant(now)}]
            elif change == "hold":
                task["status"], task["statusReason"] = "on-hold", {"text": values["reason"]}
            elif change == "late":
                task["restriction"] = {"period": {"start": _instant(now - timedelta(days=12)),
                                                  "end": _instant(now - timedelta(days=2))}}  # fmt: skip
                task["priority"] = values.get("priority", task.get("priority", "routine"))
            try:
                await execute_crud(tx, Interaction("update", "Task", stored.res_id, body=task,
                                                   if_match=stored.version))  # fmt: skip
                done += 1
            except CarepathError as error:  # e.g. the workflow refuses a move: say so, do not hide it
                print(f"worklist example {patient} {change}: {error}")
    return f"worklist examples: 2 coordinators, {done} Tasks assigned, completed, held or made late"
