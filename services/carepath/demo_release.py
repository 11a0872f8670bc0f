"""The demo's workflow step: one patient's Task is completed, through the same update path as a FHIR PUT, and
the Tasks that waited for it are released in that same transaction."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from carepath.fhir.search.query import parse_search
from carepath.service.interactions import Interaction, execute_crud
from carepath.store.repository import Repository, StoreTransaction
from carepath.workflow.tasks import label, reference, waits_for


async def show_release(repository: Repository, patient: str) -> str:
    """Complete the predecessors of one held Task of `patient` (requested -> in-progress -> completed, two
    updates, as the state table requires); return what a coordinator would see happen."""
    async with repository.reader() as tx:
        tasks = {reference(t): t for t in await _tasks(tx, patient)}
    held = next((t for t in tasks.values() if t["status"] == "draft" and waits_for(t)
                 and all(tasks.get(ref, {}).get("status") == "requested" for ref in waits_for(t))), None)  # fmt: skip
    if held is None:
        return f"Workflow: {patient} has no held Task whose predecessors are all still to do (an earlier run did it)."
    lines = [f"Workflow: {patient}, '{label(held)}' waits for {len(waits_for(held))} Task(s)."]
    for ref in waits_for(held):
        for status in ("in-progress", "completed"):
            async with repository.transaction() as tx:
                current = (await tx.read("Task", ref.partition("/")[2])).json()
                await execute_crud(tx, Interaction("update", "Task", current["id"], body={**current, "status": status}))
        lines.append(f"  completed '{label(tasks[ref])}' (requested -> in-progress -> completed)")
    async with repository.reader() as tx:
        after = [t for t in await _tasks(tx, patient) if set(waits_for(t)) & set(waits_for(held))]
    lines += [f"  '{label(t)}': draft -> {t['status']}" + (" (released: task.released event, Provenance)"
              if t["status"] != "draft" else " (still waiting)") for t in after]  # fmt: skip
    return "\n".join([*lines, ""])


async def _tasks(tx: StoreTransaction, patient: str) -> list[dict[str, Any]]:
    query = replace(parse_search("Task", [("patient", patient)]), count=500)
    return [stored.json() for _, stored in await tx.search(query)]
