"""The outbox relay: committed outbox rows become stream entries, then the rows are deleted.

Rows go out in id order (per patient that is commit order, see store/outbox.py) in one Redis pipeline, and are
deleted in the same database transaction that claimed them: a crash or a Redis error between publishing and the
commit publishes them again with the same CloudEvents `id` (at-least-once; consumers drop duplicates by id),
and nothing is ever lost. A Redis outage leaves the rows in the outbox until it is back. Internal events (the HTTP
door) go on the inbound shard of their patient (events/shards.py), like any producer's.
"""

from __future__ import annotations

from carepath.events.envelope import encode, outbound
from carepath.events.shards import shard_for
from carepath.events.streams import Streams
from carepath.store import outbox
from carepath.store.repository import Repository


async def relay_once(repository: Repository, streams: Streams) -> int:
    """Publish one batch of outbox rows; how many were published (0: nothing waiting or another relay active)."""
    settings = streams.settings
    async with repository.transaction() as tx:
        rows = await outbox.claim(tx.conn, settings.events_batch)
        if not rows:
            return 0
        pipe = streams.redis.pipeline(transaction=False)
        for row in rows:
            if row.channel == outbox.INTERNAL:  # the HTTP door: into the inbound stream, never trimmed here
                event = encode(outbound(row, settings.internal_event_source))
                pipe.xadd(shard_for(settings, row.subject).stream, {"event": event})
            else:
                event = encode(outbound(row, settings.events_source))
                pipe.xadd(settings.events_outbound_stream, {"event": event},
                          maxlen=settings.events_outbound_maxlen, approximate=True)  # fmt: skip
        await pipe.execute()
        await outbox.remove(tx.conn, [row.id for row in rows])
    return len(rows)


async def relay_all(repository: Repository, streams: Streams) -> int:
    """Relay until the outbox is empty (or another relay holds it); how many rows went out."""
    total = 0
    while published := await relay_once(repository, streams):
        total += published
    return total
