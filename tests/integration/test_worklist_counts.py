"""The worklist's one-pass counts (web/data.py `_counts`, store/search_sql.py `build_bucket_counts`) equal one FHIR
search count per due window, on SQLite and PostgreSQL: due dates on every window edge and a second either side,
written in other time zones, at day precision (a range across two windows), and no due date at all."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from carepath.fhir.search.definitions import params_for
from carepath.fhir.search.query import parse_search
from carepath.settings import Settings
from carepath.store.repository import Repository
from carepath.web import data
from carepath.web.views.worklist import WINDOWS, Filters, search_pairs

TZ = ZoneInfo("Europe/Paris")
NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)  # local midnights: 2026-12-01T23:00Z and 2026-12-07T23:00Z
DUES = [
    "2026-12-01T09:59:59Z", "2026-12-01T10:00:00Z", "2026-12-01T10:00:01Z",  # now
    "2026-12-01T22:59:59Z", "2026-12-01T23:00:00Z", "2026-12-01T23:00:01Z",  # tomorrow, local midnight
    "2026-12-07T22:59:59Z", "2026-12-07T23:00:00Z", "2026-12-07T23:00:01Z",  # the end of the week
    "2026-12-01T22:59:59.999Z", "2026-12-01T10:00:00.5Z",  # fractions of a second at the edges
    "2026-12-01T05:00:00-05:00", "2026-12-02T00:00:00+01:00", "2026-12-08T04:00:00+05:00",  # edges, other zones
    "2026-12-01T23:59:59+14:00",  # 09:59:59Z: overdue by one second
    "2026-12-01", "2026-12-07", "2026-12",  # day and month precision: ranges across window edges
    "2025-01-01T00:00:00Z", "2027-06-01T00:00:00Z",
]  # fmt: skip


def _task(n: int, due: str | None, status: str = "ready", owner: str | None = None) -> dict[str, Any]:
    task: dict[str, Any] = {"resourceType": "Task", "id": f"c{n}", "status": status, "intent": "order"}
    if due is not None:
        task["restriction"] = {"period": {"end": due}}
    if owner is not None:
        task["owner"] = {"reference": f"Practitioner/{owner}"}
    return task


def test_due_date_has_at_most_one_value() -> None:
    """The one-pass counts are exact only because of this (Task.restriction 0..1, Period 0..1, Period.end 0..1)."""
    assert params_for("Task")["due-date"].expression == "Task.restriction.period.end"


@pytest.mark.parametrize(
    "filters", [Filters(), Filters(due="today"), Filters(due="overdue"), Filters(status="all"), Filters(owner="none"),
                Filters(owner="pr1", due="week")],
)  # fmt: skip
async def test_one_pass_counts_equal_a_search_count_per_window(
    repository: Repository, settings: Settings, filters: Filters
) -> None:
    tasks = [_task(n, due, owner="pr1" if n % 2 == 0 else None) for n, due in enumerate(DUES)]
    tasks += [_task(100, None), _task(101, None, owner="pr1"), _task(102, DUES[1], status="completed"),
              _task(103, DUES[4], status="cancelled", owner="pr1")]  # fmt: skip
    async with repository.transaction() as tx:
        for task in tasks:
            await tx.update("Task", task["id"], task)

    async with repository.reader() as tx:
        page = await data.worklist(tx, settings, filters, NOW, TZ)

        async def searched(pairs: list[tuple[str, str]]) -> int:
            return await tx.count(parse_search("Task", pairs, default_count=10, max_count=100, strict=True))

        total = await searched(search_pairs(filters, NOW, TZ))
        windows = {w: await searched(search_pairs(filters, NOW, TZ, window=w)) for w in WINDOWS}
        undated = await searched([*search_pairs(replace(filters, due=""), NOW, TZ), ("due-date:missing", "true")])

    assert (page.total, page.window_counts) == (total, windows)
    assert all(windows.values()), "every window must hold some of these Tasks, or the test compares zeros"
    if not filters.due:
        assert undated > 0 and page.total >= undated + max(windows.values()), "Tasks without a due date count"
