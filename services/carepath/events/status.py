"""How the event streams are doing: inbound lag and pending entries (in total and per shard, with the lease
holder of each), live workers, dead letters, outbound length, outbox backlog (`carepath events status`,
`GET /health/events`)."""

from __future__ import annotations

import time
from typing import Any

from redis.exceptions import ResponseError

from carepath.events.leases import holder
from carepath.events.shards import Shard, shards, workers_key
from carepath.events.streams import Streams
from carepath.store import outbox
from carepath.store.records import instant
from carepath.store.repository import Repository


async def events_status(repository: Repository, streams: Streams) -> dict[str, Any]:
    s, redis = streams.settings, streams.redis
    by_shard = [await _shard(streams, shard) for shard in shards(s)]
    lags = [shard["lag"] for shard in by_shard]
    async with repository.transaction() as tx:
        waiting, oldest = await outbox.backlog(tx.conn)
    return {
        "inbound": {
            "stream": s.events_inbound_stream,
            "group": s.events_group,
            "length": sum(shard["length"] for shard in by_shard),
            "lag": None if None in lags else sum(lags),  # entries not yet delivered to the groups (Redis >= 7)
            "pending": sum(shard["pending"] for shard in by_shard),  # delivered, not yet acknowledged
            "consumers": sum(shard["consumers"] for shard in by_shard),  # consumer names known to the groups
            "workers": await _live_workers(streams),
            "shards": by_shard,
        },
        "dead_letters": {
            "stream": s.events_dead_stream,
            "count": sum([await redis.xlen(shard.dead) for shard in shards(s)]),
        },
        "outbound": {"stream": s.events_outbound_stream, "length": await redis.xlen(s.events_outbound_stream)},
        "outbox": {"waiting": waiting, "oldest": instant(oldest) if oldest else None},
    }


async def _shard(streams: Streams, shard: Shard) -> dict[str, Any]:
    redis, group = streams.redis, streams.settings.events_group
    info: dict[str, Any] = {}
    try:
        for found in await redis.xinfo_groups(shard.stream):
            if _text(found["name"]) == group:
                info = found
    except ResponseError:  # no stream yet: nothing has arrived
        pass
    return {
        "shard": shard.index,
        "stream": shard.stream,
        "length": await redis.xlen(shard.stream),
        "lag": info.get("lag"),
        "pending": info.get("pending", 0),
        "consumers": info.get("consumers", 0),
        "holder": await holder(streams, shard),
    }


async def _live_workers(streams: Streams) -> int:
    """Workers whose last heartbeat is younger than the lease lifetime (events/leases.py)."""
    since = int(time.time() * 1000) - streams.settings.events_claim_idle_ms
    return int(await streams.redis.zcount(workers_key(streams.settings), since, "+inf"))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
