"""Redis connections for the streams: a real server (CAREPATH_REDIS_URL) or the in-process substitute.

A blocking XREADGROUP holds its connection for the whole block time, so the real client's socket timeout is set
well above `events_block_ms`. fakeredis lives in one process and its blocking reads return at once, so the
consumer polls instead of blocking there (`Streams.blocking`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from carepath.settings import Settings

Entry = tuple[bytes, dict[bytes, bytes]]  # (stream entry id, fields)


@dataclass
class Streams:
    redis: Redis
    settings: Settings
    blocking: bool  # False on the in-process substitute: poll with a sleep instead of blocking reads

    async def close(self) -> None:
        await self.redis.aclose()

    async def ping(self) -> bool:
        return bool(await self.redis.ping())


def connect(settings: Settings, *, substitute: Any = None) -> Streams:
    """Streams on `settings.redis_url`, or on `substitute` (a fakeredis server shared in this process)."""
    if settings.redis_url:
        timeout = settings.events_block_ms / 1000 + 10
        redis = Redis.from_url(settings.redis_url, socket_timeout=timeout, socket_connect_timeout=5)
        return Streams(redis, settings, blocking=True)
    import fakeredis

    server = substitute if substitute is not None else fakeredis.FakeServer()
    return Streams(fakeredis.FakeAsyncRedis(server=server), settings, blocking=False)
