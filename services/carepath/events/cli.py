"""`carepath worker` and `carepath events status | dead list | dead redrive [ID...]`."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from carepath import jsonutil
from carepath.auth.config import announce_events_door
from carepath.events.dead import list_dead, redrive
from carepath.events.status import events_status
from carepath.events.streams import Streams, connect
from carepath.events.worker import default_duties, run_duties, stop_on_signals
from carepath.settings import Settings
from carepath.store.database import create_engine
from carepath.store.migrate import upgrade_async
from carepath.store.repository import Repository


@asynccontextmanager
async def _open(settings: Settings) -> AsyncIterator[tuple[Repository, Streams]]:
    engine = create_engine(settings.effective_database_url, schema=settings.database_schema)
    streams = connect(settings)
    try:
        yield Repository(engine, feed_always=bool(settings.ehr_base_url)), streams  # as the API (api/app.py)
    finally:
        await streams.close()
        await engine.dispose()


async def run_events_command(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "worker":
        return await _worker(settings)
    async with _open(settings) as (repository, streams):
        if args.events_command == "status":
            print(json.dumps(await events_status(repository, streams), indent=2))
        elif args.dead_command == "list":
            for letter in await list_dead(streams, count=100000):
                line = {"id": letter.id, "origin_id": letter.origin_id, "failed_at": letter.failed_at,
                        "attempts": letter.attempts, "error": letter.error,
                        "event": letter.event.decode(errors="replace")}  # fmt: skip
                print(jsonutil.dumps(line).decode())
        else:
            ids = await redrive(streams, args.ids or None)
            print(f"redriven: {len(ids)} dead letter(s) back on {_inbound(settings)}")
    return 0


def _inbound(settings: Settings) -> str:
    count = settings.events_inbound_shards
    return settings.events_inbound_stream + (f" ({count} shards)" if count > 1 else "")


async def _worker(settings: Settings) -> int:
    if not settings.redis_url:
        print("carepath worker needs CAREPATH_REDIS_URL (without it, `carepath serve` runs the duties itself)",
              file=sys.stderr)  # fmt: skip
        return 2
    if settings.migrate_on_start:
        await upgrade_async(settings.effective_database_url, settings.database_schema)
    announce_events_door(settings)
    stop = asyncio.Event()
    stop_on_signals(stop)
    async with _open(settings) as (repository, streams):
        print(f"carepath worker: {_inbound(settings)} -> database -> {settings.events_outbound_stream}",
              flush=True)  # fmt: skip
        await run_duties(default_duties(repository, streams), stop)
    return 0
