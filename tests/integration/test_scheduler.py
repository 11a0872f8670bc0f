"""The scheduler's overdue scan (service/scheduler.py) with a frozen clock, on both back ends: one alert per
Task and due date — one priority step, one `task.overdue` event, one notification of the care coordinator —
even with two scanners at once on PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from carepath import jsonutil
from carepath.events.scheduling import scheduler_duty
from carepath.fhir.search.query import parse_search
from carepath.service.scheduler import scan_overdue
from carepath.settings import Settings
from carepath.store import outbox
from carepath.store.database import create_engine
from carepath.store.migrate import upgrade_async
from carepath.store.repository import Repository

NOW = datetime(2025, 3, 10, 9, 0, tzinfo=UTC)
COORDINATOR = [{"coding": [{"system": "http://snomed.info/sct", "code": "768820003"}]}]


async def _setup(repository: Repository, *, careteam: bool = True) -> dict[str, str]:
    async with repository.transaction() as tx:
        patient = (await tx.create({"resourceType": "Patient"})).relative_url
        ids = {"patient": patient}
        if careteam:
            idec = (await tx.create({"resourceType": "Practitioner"})).relative_url
            await tx.create({"resourceType": "CareTeam", "status": "active", "subject": {"reference": patient},
                             "participant": [{"role": COORDINATOR, "member": {"reference": idec}}]})  # fmt: skip
            ids["coordinator"] = idec
        for name, status, end in (("late", "requested", "2025-03-09T09:00:00+00:00"),
                                  ("later", "requested", "2025-03-11T09:00:00+00:00"),
                                  ("held", "draft", "2025-03-01T09:00:00+00:00"),
                                  ("done", "completed", "2025-03-01T09:00:00+00:00")):  # fmt: skip
            task = {"resourceType": "Task", "status": status, "intent": "order", "priority": "routine",
                    "for": {"reference": patient}, "description": name,
                    "restriction": {"period": {"end": end}}}  # fmt: skip
            ids[name] = (await tx.create(task)).res_id
    return ids


async def _all(repository: Repository, res_type: str, *criteria: tuple[str, str]) -> list[dict[str, Any]]:
    async with repository.reader() as tx:
        return [s.json() for _, s in await tx.search(parse_search(res_type, list(criteria)))]


async def _task(repository: Repository, task_id: str) -> dict[str, Any]:
    async with repository.reader() as tx:
        return (await tx.read("Task", task_id)).json()


async def _overdue_events(repository: Repository) -> list[str]:
    async with repository.reader() as tx:
        rows = await outbox.claim(tx.conn, 10_000) or []
    return [jsonutil.loads(r.data)["id"] for r in rows if r.type == "dev.carepath.task.overdue"]


async def test_an_overdue_task_is_alerted_once_per_due_date(repository: Repository) -> None:
    ids = await _setup(repository)
    report = await scan_overdue(repository, NOW)
    assert report.ran and report.alerted == (f"Task/{ids['late']}",)
    assert (await _task(repository, ids["late"]))["priority"] == "urgent"
    assert (await _task(repository, ids["later"]))["priority"] == "routine"
    [notice] = await _all(repository, "CommunicationRequest")
    assert notice["recipient"] == [{"reference": ids["coordinator"]}]
    assert notice["about"] == [{"reference": f"Task/{ids['late']}"}] and notice["priority"] == "urgent"
    assert "was due 2025-03-09T09:00:00+00:00" in notice["payload"][0]["contentString"]
    assert await _overdue_events(repository) == [ids["late"]]
    [provenance] = await _all(repository, "Provenance", ("target", f"Task/{ids['late']}/_history/2"))
    assert provenance["reason"][0]["text"] == "overdue: due 2025-03-09T09:00:00+00:00; priority routine -> urgent"

    again = await scan_overdue(repository, NOW)  # the next round: nothing new
    assert again.ran and again.alerted == ()
    assert (await _task(repository, ids["late"]))["priority"] == "urgent"
    assert len(await _all(repository, "CommunicationRequest")) == 1

    # A new due date that passes is a new alert: one more step, to asap, and never beyond it to stat.
    async with repository.transaction() as tx:
        late = (await tx.read("Task", ids["late"])).json()
        await tx.update("Task", ids["late"], {**late, "restriction": {"period": {"end": "2025-03-09T18:00:00Z"}}})
    assert (await scan_overdue(repository, NOW)).alerted == (f"Task/{ids['late']}",)
    assert (await _task(repository, ids["late"]))["priority"] == "asap"
    async with repository.transaction() as tx:
        late = (await tx.read("Task", ids["late"])).json()
        await tx.update("Task", ids["late"], {**late, "restriction": {"period": {"end": "2025-03-09T20:00:00Z"}}})
    assert (await scan_overdue(repository, NOW)).alerted == (f"Task/{ids['late']}",)
    assert (await _task(repository, ids["late"]))["priority"] == "asap"


async def test_without_a_careteam_the_notice_has_no_recipient(repository: Repository) -> None:
    ids = await _setup(repository, careteam=False)
    await scan_overdue(repository, NOW)
    [notice] = await _all(repository, "CommunicationRequest")
    assert "recipient" not in notice and notice["subject"] == {"reference": ids["patient"]}


async def test_two_schedulers_at_once_alert_once(postgres_settings: Settings) -> None:
    url, schema = postgres_settings.effective_database_url, postgres_settings.database_schema
    await upgrade_async(url, schema)
    engines = [create_engine(url, schema=schema) for _ in range(2)]
    try:
        first, second = (Repository(e) for e in engines)
        ids = await _setup(first)
        for _ in range(3):  # a few rounds, each with both scanners racing
            await asyncio.gather(scan_overdue(first, NOW), scan_overdue(second, NOW))
        assert len(await _all(first, "CommunicationRequest")) == 1
        assert await _overdue_events(first) == [ids["late"]]
        assert (await _task(first, ids["late"]))["priority"] == "urgent"
    finally:
        for engine in engines:
            await engine.dispose()


async def test_the_worker_duty_scans_every_interval_until_stopped(repository: Repository) -> None:
    ids = await _setup(repository)
    stop = asyncio.Event()
    scans: list[datetime] = []

    def clock() -> datetime:
        scans.append(NOW)
        if len(scans) == 3:
            stop.set()  # the duty ends after its third scan
        return NOW

    await asyncio.wait_for(scheduler_duty(repository, 0.01, stop, clock), timeout=30)
    assert len(scans) == 3
    assert (await _task(repository, ids["late"]))["priority"] == "urgent"  # three scans, one alert
    assert len(await _all(repository, "CommunicationRequest")) == 1


async def test_tasks_alerted_earlier_do_not_hide_new_ones(repository: Repository) -> None:
    async def overdue_task(end: str) -> str:
        async with repository.transaction() as tx:
            task = {"resourceType": "Task", "status": "requested", "intent": "order", "priority": "routine",
                    "restriction": {"period": {"end": end}}}  # fmt: skip
            return (await tx.create(task)).relative_url

    early = [await overdue_task(f"2025-03-0{day}T09:00:00Z") for day in range(1, 6)]
    first = await scan_overdue(repository, NOW, page_size=2)
    assert sorted(first.alerted) == sorted(early)
    late = await overdue_task("2025-03-09T10:00:00Z")  # sorts after the five already alerted
    assert (await scan_overdue(repository, NOW, page_size=2)).alerted == (late,)
