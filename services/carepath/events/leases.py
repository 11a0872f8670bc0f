"""Who reads which inbound shard: one lease per shard, and a fair share of shards per worker.

- **A lease per shard** (a Redis key holding the consumer's name, TTL = `events_claim_idle_ms`): only its holder
  reads the shard, so one patient's events are consumed one at a time, in stream order. The holder renews it every
  round; a worker that dies or hangs lets it lapse, and the next holder takes the shard's pending entries over
  (XAUTOCLAIM once they are idle as long, events/consumer.py).
- **Heartbeats**: every worker writes its name and the time in one sorted set each round; entries older than the
  lease TTL are dropped, so the set's size is the number of live workers W.
- **Fair share** = ceil(N shards / W). Below it a worker takes free leases, trying the shards in an order that
  starts at its own offset (crc32 of its name, mod N), so workers starting together try different shards first.
  Above it (a worker joined) it gives up one shard per round, after that shard's batch in hand is finished; the
  newcomer takes it on its next round. With more workers than shards the extra ones hold nothing and stand by.
"""

from __future__ import annotations

import time
import zlib

from redis.exceptions import WatchError

from carepath.events.shards import Shard, workers_key
from carepath.events.streams import Streams


class Leases:
    def __init__(self, streams: Streams, name: str) -> None:
        self.streams, self.name = streams, name
        self.ttl_ms = streams.settings.events_claim_idle_ms
        self.workers_key = workers_key(streams.settings)

    async def fair_share(self, count: int) -> int:
        """Heartbeat, then ceil(count / live workers) (this one included)."""
        now = int(time.time() * 1000)
        pipe = self.streams.redis.pipeline(transaction=True)
        pipe.zadd(self.workers_key, {self.name: now})
        pipe.zremrangebyscore(self.workers_key, "-inf", now - self.ttl_ms)
        pipe.zcard(self.workers_key)
        pipe.pexpire(self.workers_key, self.ttl_ms * 2)  # the set itself goes away with the last worker
        live = int((await pipe.execute())[2])
        return -(-count // max(live, 1))

    def order(self, shards: tuple[Shard, ...]) -> tuple[Shard, ...]:
        """The shards in the order this worker tries them: from its own offset, wrapping around."""
        offset = zlib.crc32(self.name.encode()) % len(shards)
        return shards[offset:] + shards[:offset]

    async def take(self, shard: Shard) -> bool:
        return bool(await self.streams.redis.set(shard.lease, self.name, nx=True, px=self.ttl_ms))

    async def renew(self, shard: Shard) -> bool:
        """Extend this worker's lease (taking it if free); False while another worker holds it."""
        redis = self.streams.redis
        if await self.take(shard):
            return True
        async with redis.pipeline(transaction=True) as pipe:
            try:
                await pipe.watch(shard.lease)
                if await pipe.get(shard.lease) != self.name.encode():
                    return False
                pipe.multi()  # type: ignore[no-untyped-call]
                pipe.pexpire(shard.lease, self.ttl_ms)
                await pipe.execute()
            except WatchError:
                return False
        return True

    async def release(self, shard: Shard) -> None:
        if await self.streams.redis.get(shard.lease) == self.name.encode():
            await self.streams.redis.delete(shard.lease)

    async def leave(self) -> None:
        """Stop counting as a live worker (at shutdown): the others' fair share grows at once."""
        await self.streams.redis.zrem(self.workers_key, self.name)


async def holder(streams: Streams, shard: Shard) -> str | None:
    """The name of the consumer holding the shard's lease, if any."""
    value = await streams.redis.get(shard.lease)
    return value.decode() if isinstance(value, bytes) else value
