"""The scheduler's duty: rapid alerts for overdue work (workflow/overdue.py), run every
`CAREPATH_SCHEDULER_INTERVAL_S` by a worker or once by `carepath scheduler run-once`.

One scan is one transaction. Only one scheduler scans at a time (`scheduler_turn`); each alert first claims its
(Task, due date) key, so even two scans that overlap raise it once. An alert, all in that transaction: the
Task's priority goes up one step (a new version with its Provenance), a `task.overdue` event, and a
CommunicationRequest telling the care coordinator (service/coordinator.py).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from carepath.fhir.search.query import parse_search
from carepath.service.agent import SYSTEM_AGENT
from carepath.service.coordinator import notify_coordinator
from carepath.service.task_events import emit, record
from carepath.store.records import StoredResource
from carepath.store.repository import Repository, StoreTransaction
from carepath.workflow.overdue import ACTIONABLE, Overdue, overdue
from carepath.workflow.tasks import label

PAGE = 500  # Tasks read at a time


@dataclass(frozen=True)
class ScanReport:
    ran: bool  # False: another scheduler had the turn
    alerted: tuple[str, ...] = ()  # Task/<id> of every alert raised

    def summary(self) -> str:
        if not self.ran:
            return "another scheduler is scanning; nothing done"
        return f"{len(self.alerted)} overdue Task(s) alerted" + (f": {', '.join(self.alerted)}" if self.alerted else "")


async def scan_overdue(repository: Repository, now: datetime, *, page_size: int = PAGE) -> ScanReport:
    """Alert every actionable Task due before `now` (aware) that was not alerted for that due date yet."""
    async with repository.transaction() as tx:
        if not await tx.scheduler_turn():
            return ScanReport(False)
        due = now.isoformat(timespec="seconds")
        criteria = [("status", ",".join(sorted(ACTIONABLE))), ("due-date", f"lt{due}"),
                    ("_sort", "due-date")]  # fmt: skip
        query, alerted = replace(parse_search("Task", criteria), count=page_size), []
        while True:  # every page: Tasks alerted earlier stay overdue, so the first page alone could hide new ones
            page = await tx.search(query)
            for _, stored in page:
                alert = overdue(stored.json(), now)
                if alert is not None and await tx.claim_overdue_alert(stored.res_id, alert.due):
                    await _alert(tx, stored, alert, now)
                    alerted.append(stored.relative_url)
            if len(page) < page_size:
                return ScanReport(True, tuple(alerted))
            query = replace(query, offset=query.offset + page_size)


async def _alert(tx: StoreTransaction, stored: StoredResource, alert: Overdue, now: datetime) -> None:
    raised, _ = await tx.update("Task", stored.res_id, alert.task)
    kept = alert.raised_to == alert.raised_from
    step = f"priority stays {alert.raised_to}" if kept else f"priority {alert.raised_from} -> {alert.raised_to}"
    await record(tx, raised, f"overdue: due {alert.due}; {step}", SYSTEM_AGENT, now)
    await emit(tx, "dev.carepath.task.overdue", raised)
    text = f"Overdue: '{label(raised.json())}' was due {alert.due} and is not done ({step}). Please follow up."
    await notify_coordinator(tx, raised.json(), text, "alert", alert.raised_to, now)
