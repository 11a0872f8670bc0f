"""Dead letters of the inbound shards: the entry as received, why it failed, and a way back.

Fields of a dead-letter entry: `event` (the original field, byte for byte; empty when the entry was trimmed away
before it could be processed), `error` (an OperationOutcome, JSON), `attempts` (deliveries so far), `failed_at`
(UTC instant) and `origin_id` (the inbound entry id). The dead letter and the acknowledgement of the original
entry are one MULTI/EXEC, so an entry is never both pending and dead, nor lost between the two.

Each shard has its own dead-letter stream (events/shards.py: same hash tag as its inbound stream, so that MULTI
stays in one Redis Cluster slot). Listing reads them all, oldest first; with more than one shard a dead letter's
id is `<shard>/<entry id>` (entry ids of different streams may be equal), with one shard the entry id alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from carepath import jsonutil
from carepath.errors import Issue, operation_outcome
from carepath.events.shards import Shard, shards
from carepath.events.streams import Entry, Streams
from carepath.store.records import instant, utc_now


@dataclass(frozen=True)
class DeadLetter:
    id: str
    event: bytes
    error: dict[str, Any]
    attempts: int
    failed_at: str
    origin_id: str
    shard: int

    @property
    def entry_id(self) -> str:
        """The id of the entry on its shard's dead-letter stream."""
        return self.id.rpartition("/")[2]


async def dead_letter(
    streams: Streams, shard: Shard, origin_id: bytes, event: bytes, issues: list[Issue], attempts: int
) -> None:
    """Move the entry `origin_id` of `shard` to its dead-letter stream and acknowledge it, atomically."""
    fields = {
        "event": event,
        "error": jsonutil.dumps(operation_outcome(issues)),
        "attempts": str(attempts),
        "failed_at": instant(utc_now()),
        "origin_id": origin_id,
    }
    pipe = streams.redis.pipeline(transaction=True)
    pipe.xadd(shard.dead, fields)  # type: ignore[arg-type]
    pipe.xack(shard.stream, streams.settings.events_group, origin_id)
    await pipe.execute()


async def list_dead(streams: Streams, count: int = 100) -> list[DeadLetter]:
    """The oldest `count` dead letters over every shard."""
    every = shards(streams.settings)
    letters: list[tuple[tuple[int, int], DeadLetter]] = []
    for shard in every:
        entries = cast(list[Entry], await streams.redis.xrange(shard.dead, count=count))
        letters += [(_order(entry_id), _letter(shard, len(every), entry_id, fields)) for entry_id, fields in entries]
    return [letter for _, letter in sorted(letters, key=lambda pair: pair[0])[:count]]


async def redrive(streams: Streams, ids: list[str] | None = None) -> list[str]:
    """Put dead letters (all, or those ids) back on their shard's inbound stream as new entries; the new entry ids.

    The original `event` bytes go back unchanged, so its CloudEvents id (hence its idempotency key) is the same,
    and so does its patient, hence its shard. Each dead letter is re-added and deleted in one MULTI/EXEC.
    Trimmed-away entries (no event) cannot be.
    """
    every = shards(streams.settings)
    letters = await list_dead(streams, count=100000)
    chosen = [d for d in letters if ids is None or d.id in ids]
    redriven: list[str] = []
    for letter in chosen:
        if not letter.event:
            continue
        shard = every[letter.shard]
        pipe = streams.redis.pipeline(transaction=True)
        pipe.xadd(shard.stream, {"event": letter.event})
        pipe.xdel(shard.dead, letter.entry_id)
        new_id, _ = await pipe.execute()
        redriven.append(new_id.decode())
    return redriven


def _order(entry_id: bytes) -> tuple[int, int]:
    millis, _, sequence = entry_id.decode().partition("-")
    return int(millis), int(sequence or 0)


def _letter(shard: Shard, count: int, entry_id: bytes, fields: dict[bytes, bytes]) -> DeadLetter:
    return DeadLetter(
        id=entry_id.decode() if count == 1 else f"{shard.index}/{entry_id.decode()}",
        event=fields.get(b"event", b""),
        error=jsonutil.loads(fields.get(b"error", b"{}")),
        attempts=int(fields.get(b"attempts", b"0")),
        failed_at=fields.get(b"failed_at", b"").decode(),
        origin_id=fields.get(b"origin_id", b"").decode(),
        shard=shard.index,
    )
