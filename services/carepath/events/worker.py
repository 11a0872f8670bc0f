"""The worker: the duties that keep events moving, run together until SIGTERM.

Duties: the inbound consumer, the outbox relay and the scheduler (events/scheduling.py); a duty is an async
callable taking the stop event. `carepath worker` runs them on a real Redis; without CAREPATH_REDIS_URL,
`carepath serve` runs them in-process on the in-process substitute (embedded mode).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Coroutine
from datetime import timedelta
from typing import Any

from carepath.delivery.duty import delivery_duty
from carepath.events.consumer import Consumer, transient
from carepath.events.relay import relay_once
from carepath.events.scheduling import scheduler_duty
from carepath.events.streams import Streams
from carepath.store import outbox
from carepath.store.repository import Repository

log = logging.getLogger("carepath.events")
Duty = Callable[[asyncio.Event], Coroutine[Any, Any, None]]
PROCESSED_KEY_RETENTION = timedelta(days=30)  # far beyond any redelivery: a key older than that is never needed
_PURGE_EVERY_S = 3600.0


async def relay_duty(repository: Repository, streams: Streams, stop: asyncio.Event) -> None:
    """Relay the outbox until `stop`; poll when it is empty; back off while Redis or the database is down."""
    backoff, since_purge = 0.0, _PURGE_EVERY_S
    poll = streams.settings.events_poll_ms / 1000
    while not stop.is_set():
        try:
            published = await relay_once(repository, streams)
            backoff = 0.0
            if since_purge >= _PURGE_EVERY_S:
                async with repository.transaction() as tx:
                    await outbox.purge_processed(tx.conn, PROCESSED_KEY_RETENTION)
                since_purge = 0.0
        except Exception as exc:
            if not await transient(exc, repository.engine):
                raise
            backoff = min(max(streams.settings.events_retry_base_ms / 1000, backoff * 2), 10.0)
            log.warning("outbox relay: %s; retrying in %.1f s", exc, backoff)
            published = 0
        if not published:
            delay = backoff or poll
            since_purge += delay
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay)


def default_duties(repository: Repository, streams: Streams) -> list[Duty]:
    consumer = Consumer(repository, streams)

    async def relay(stop: asyncio.Event) -> None:
        await relay_duty(repository, streams, stop)

    async def scheduler(stop: asyncio.Event) -> None:
        await scheduler_duty(repository, streams.settings.scheduler_interval_s, stop)

    delivery = delivery_duty(repository, streams.settings)  # Subscriptions and the push to the hospital
    return [consumer.run, relay, scheduler, delivery]


async def run_duties(duties: list[Duty], stop: asyncio.Event) -> None:
    """Run every duty until `stop`; if one fails, stop the others and raise its error."""
    tasks = [asyncio.create_task(duty(stop)) for duty in duties]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            task.result()
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)


def stop_on_signals(stop: asyncio.Event) -> None:
    """SIGTERM / SIGINT end the worker gracefully: in-flight entries finish, the lease is released."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
