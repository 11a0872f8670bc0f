"""Dead letters of the inbound stream: the entry as received, why it failed, and a way back.

Fields of a dead-letter entry: `event` (the original field, byte for byte; empty when the entry was trimmed away
before it could be processed), `error` (an OperationOutcome, JSON), `attempts` (deliveries so far), `failed_at`
(UTC instant) and `origin_id` (the inbound entry id). The dead letter and the acknowledgement of the original
entry are one MULTI/EXEC, so an entry is never both pending and dead, nor lost between the two.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from carepath import jsonutil
from carepath.errors import Issue, operation_outcome
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


async def dead_letter(streams: Streams, origin_id: bytes, event: bytes, issues: list[Issue], attempts: int) -> None:
    """Move the inbound entry `origin_id` to the dead-letter stream and acknowledge it, atomically."""
    settings = streams.settings
    fields = {
        "event": event,
        "error": jsonutil.dumps(operation_outcome(issues)),
        "attempts": str(attempts),
        "failed_at": instant(utc_now()),
        "origin_id": origin_id,
    }
    pipe = streams.redis.pipeline(transaction=True)
    pipe.xadd(settings.events_dead_stream, fields)  # type: ignore[arg-type]
    pipe.xack(settings.events_inbound_stream, settings.events_group, origin_id)
    await pipe.execute()


async def list_dead(streams: Streams, count: int = 100) -> list[DeadLetter]:
    entries = cast(list[Entry], await streams.redis.xrange(streams.settings.events_dead_stream, count=count))
    return [_letter(entry_id, fields) for entry_id, fields in entries]


async def redrive(streams: Streams, ids: list[str] | None = None) -> list[str]:
    """Put dead letters (all, or those ids) back on the inbound stream as new entries; the new entry ids.

    The original `event` bytes go back unchanged, so its CloudEvents id (hence its idempotency key) is the same.
    Each dead letter is re-added and deleted in one MULTI/EXEC. Trimmed-away entries (no event) cannot be.
    """
    settings = streams.settings
    letters = await list_dead(streams, count=100000)
    chosen = [d for d in letters if ids is None or d.id in ids]
    redriven: list[str] = []
    for letter in chosen:
        if not letter.event:
            continue
        pipe = streams.redis.pipeline(transaction=True)
        pipe.xadd(settings.events_inbound_stream, {"event": letter.event})
        pipe.xdel(settings.events_dead_stream, letter.id)
        new_id, _ = await pipe.execute()
        redriven.append(new_id.decode())
    return redriven


def _letter(entry_id: bytes, fields: dict[bytes, bytes]) -> DeadLetter:
    return DeadLetter(
        id=entry_id.decode(),
        event=fields.get(b"event", b""),
        error=jsonutil.loads(fields.get(b"error", b"{}")),
        attempts=int(fields.get(b"attempts", b"0")),
        failed_at=fields.get(b"failed_at", b"").decode(),
        origin_id=fields.get(b"origin_id", b"").decode(),
    )
