"""The delivery duty the worker runs (events/worker.py registers it): fan-out, Subscription sender and, when
`CAREPATH_EHR_BASE_URL` is set, the hospital push — three loops, each polling when idle and backing off while the
database is unreachable. Sent notifications older than `delivery_retention_days` are purged hourly."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from datetime import timedelta
from typing import Any

import httpx

from carepath.delivery.fanout import fanout_once
from carepath.delivery.sender import SubscriptionSender
from carepath.events.consumer import transient
from carepath.settings import Settings
from carepath.store import delivery
from carepath.store.probe import SearchProbe
from carepath.store.records import utc_now
from carepath.store.repository import Repository

log = logging.getLogger("carepath.delivery")
Duty = Callable[[asyncio.Event], Coroutine[Any, Any, None]]  # as events/worker.py runs them
_PURGE_EVERY = timedelta(hours=1)


def delivery_duty(repository: Repository, settings: Settings) -> Duty:
    async def run(stop: asyncio.Event) -> None:
        async with httpx.AsyncClient(follow_redirects=False) as client:
            probe = SearchProbe()
            sender = SubscriptionSender(repository, settings, client)
            steps: list[Callable[[], Awaitable[int]]] = [
                lambda: fanout_once(repository, probe, settings),
                _with_purge(repository, settings, sender.send_once),
            ]
            if settings.ehr_base_url:
                from carepath.delivery.ehr import EhrPusher

                steps.append(EhrPusher(repository, settings, client).push_once)
            await asyncio.gather(*(_loop(repository, step, stop, settings) for step in steps))

    return run


def _with_purge(
    repository: Repository, settings: Settings, step: Callable[[], Awaitable[int]]
) -> Callable[[], Awaitable[int]]:
    last = utc_now() - _PURGE_EVERY

    async def run() -> int:
        nonlocal last
        if utc_now() - last >= _PURGE_EVERY:
            async with repository.transaction() as tx:
                await delivery.purge_sent(tx.conn, utc_now() - timedelta(days=settings.delivery_retention_days))
            last = utc_now()
        return await step()

    return run


async def _loop(
    repository: Repository, step: Callable[[], Awaitable[int]], stop: asyncio.Event, settings: Settings
) -> None:
    backoff, poll = 0.0, settings.delivery_poll_ms / 1000
    while not stop.is_set():
        try:
            moved = await step()
            backoff = 0.0
        except Exception as exc:
            if not await transient(exc, repository.engine):
                raise
            backoff = min(max(settings.delivery_retry_base_ms / 1000, backoff * 2), 10.0)
            log.warning("delivery: %s; retrying in %.1f s", exc, backoff)
            moved = 0
        if not moved:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=backoff or poll)
