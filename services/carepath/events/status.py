"""How the event streams are doing: inbound lag and pending entries, dead letters, outbound length, outbox backlog
(`carepath events status`, `GET /health/events`)."""

from __future__ import annotations

from typing import Any

from redis.exceptions import ResponseError

from carepath.events.streams import Streams
from carepath.store import outbox
from carepath.store.records import instant
from carepath.store.repository import Repository


async def events_status(repository: Repository, streams: Streams) -> dict[str, Any]:
    s, redis = streams.settings, streams.redis
    group: dict[str, Any] = {}
    try:
        for info in await redis.xinfo_groups(s.events_inbound_stream):
            if _text(info["name"]) == s.events_group:
                group = info
    except ResponseError:  # no stream yet: nothing has arrived
        pass
    async with repository.transaction() as tx:
        waiting, oldest = await outbox.backlog(tx.conn)
    return {
        "inbound": {
            "stream": s.events_inbound_stream,
            "group": s.events_group,
            "length": await redis.xlen(s.events_inbound_stream),
            "lag": group.get("lag"),  # entries not yet delivered to the group (Redis >= 7)
            "pending": group.get("pending", 0),  # delivered, not yet acknowledged
            "consumers": group.get("consumers", 0),
        },
        "dead_letters": {"stream": s.events_dead_stream, "count": await redis.xlen(s.events_dead_stream)},
        "outbound": {"stream": s.events_outbound_stream, "length": await redis.xlen(s.events_outbound_stream)},
        "outbox": {"waiting": waiting, "oldest": instant(oldest) if oldest else None},
    }


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
