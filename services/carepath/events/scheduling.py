"""The scheduler as a worker duty: an overdue scan (service/scheduler.py) every `CAREPATH_SCHEDULER_INTERVAL_S`.

Every worker runs it; the scan itself makes sure only one of them acts at a time and that each alert is raised
once, so adding workers never duplicates an alert. A database outage (unreachable, restarting, refusing logins)
skips rounds (logged) instead of stopping the worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime

from carepath.events.consumer import transient
from carepath.service.scheduler import scan_overdue
from carepath.store.repository import Repository

log = logging.getLogger("carepath.scheduler")


def utc_clock() -> datetime:
    return datetime.now(UTC)


async def scheduler_duty(
    repository: Repository, interval_s: float, stop: asyncio.Event, clock: Callable[[], datetime] = utc_clock
) -> None:
    """Scan, then wait `interval_s` (or until `stop`), until `stop`."""
    while not stop.is_set():
        try:
            report = await scan_overdue(repository, clock())
            if report.alerted:
                log.info("scheduler: %s", report.summary())
        except Exception as exc:
            if not await transient(exc, repository.engine):
                raise
            log.warning("scheduler: %s; next round in %.0f s", exc, interval_s)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval_s)
