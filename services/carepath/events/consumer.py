"""The inbound consumer: entries of `carepath:inbound` -> `handle_event` -> acknowledged after the commit.

Guarantees (contract in contracts/events/, README "Events"):
- **Exactly one effect**: at-least-once delivery + the idempotency key written in the effects' transaction +
  XACK only after that commit. A redelivered entry finds its key and is simply acknowledged.
- **Per-patient order**: one consumer at a time reads the stream (a lease in Redis, renewed while it works; other
  workers stand by and take over when it lapses). Within a batch the patients' entries run in parallel, each
  patient's in stream order; after a failure a patient's later entries wait for the failed one.
  A new lease holder first takes over the previous holder's pending entries (XAUTOCLAIM once they are idle for
  `events_claim_idle_ms`) and reads new entries only when no other consumer holds any.
- **Failures**: poison (not JSON, not CloudEvents, not FHIR, unknown type), an event from a source not in
  CAREPATH_EVENTS_ALLOWED_SOURCES (403 `forbidden`, never applied) and other permanent errors go to the
  dead-letter stream at once. Transient errors (database or Redis unreachable, a concurrent-write conflict) leave
  the entry pending; it is retried with exponential backoff; while the database answers, an entry that keeps
  failing is dead-lettered after `events_max_attempts` attempts, and an outage never dead-letters anything.
- **Bounded stream**: entries older than the oldest unprocessed one are trimmed (XTRIM MINID), never newer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, cast

from redis.exceptions import RedisError, ResponseError, WatchError
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from carepath.errors import CarepathError, Conflict, InvalidRequest, Issue
from carepath.events.dead import dead_letter
from carepath.events.envelope import parse_inbound
from carepath.events.streams import Entry, Streams
from carepath.service.event_intake import InboundEvent, check_source, handle_event
from carepath.store.repository import Repository

log = logging.getLogger("carepath.events")
TRIMMED = Issue("The entry was trimmed from the stream before it was processed", "not-found")
_MAX_BACKOFF_S = 10.0


# SQLSTATE classes of a database that cannot be reached or refuses logins for now: connection exception (08),
# invalid authorization (28), insufficient resources (53), operator intervention (57: shutdown, starting up).
_UNAVAILABLE_SQLSTATE_CLASSES = ("08", "28", "53", "57")


def is_transient(exc: BaseException) -> bool:
    """Worth retrying whatever the database says: infrastructure unreachable, or a concurrent-write conflict."""
    if isinstance(exc, Conflict | RedisError | OSError | asyncio.TimeoutError | OperationalError):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    sqlstate = str(getattr(exc.orig, "sqlstate", None) or "")
    return bool(exc.connection_invalidated) or sqlstate[:2] in _UNAVAILABLE_SQLSTATE_CLASSES


async def database_up(engine: AsyncEngine) -> bool:
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception:
        return False
    return True


async def transient(exc: BaseException, engine: AsyncEngine) -> bool:
    """is_transient, or any database error while the database cannot be reached: asyncpg reports some outages
    as plain DBAPI errors, so the database is asked directly (the SQLSTATE test above also covers an error raised
    during an outage that ended before this check)."""
    return is_transient(exc) or (isinstance(exc, DBAPIError) and not await database_up(engine))


def consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class Consumer:
    def __init__(
        self, repository: Repository, streams: Streams, *, name: str | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:  # fmt: skip
        self.repository, self.streams, self.clock = repository, streams, clock
        self.settings = streams.settings
        self.name = name or consumer_name()
        self.lease_key = f"{self.settings.events_inbound_stream}:lease:{self.settings.events_group}"
        self._attempts: dict[bytes, int] = {}
        self._rounds = 0
        self._backoff = 0.0

    # -- the loop ----------------------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Until `stop` is set (SIGTERM): the batch in hand is finished, then the lease is released."""
        while not stop.is_set():
            try:
                await self.setup()
                handled = await self.step()
                delay = self._backoff if self._backoff else (0 if handled else self._idle_delay())
            except Exception as exc:
                if not await transient(exc, self.repository.engine):
                    raise
                self._backoff = _next_backoff(self._backoff, self.settings.events_retry_base_ms)
                log.warning("inbound consumer: %s; retrying in %.1f s", exc, self._backoff)
                delay = self._backoff
            if delay:
                await _sleep(stop, delay)
        await self.release()

    def _idle_delay(self) -> float:
        # A real Redis blocked in XREADGROUP already; fakeredis returns at once, so poll.
        return 0 if self.streams.blocking else self.settings.events_poll_ms / 1000

    async def setup(self) -> None:
        """The consumer group, created from id 0 with MKSTREAM: entries sent before the first worker count."""
        try:
            await self.streams.redis.xgroup_create(
                self.settings.events_inbound_stream, self.settings.events_group, id="0", mkstream=True
            )
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def step(self) -> int:
        """One round: how many entries were handled (acknowledged or dead-lettered)."""
        if not await self._hold_lease():
            return 0
        entries = await self._own_pending()
        if not entries:
            entries = await self._reclaim()
        if not entries and not await self._others_pending():
            entries = await self._read_new()
        handled = await self._process(entries) if entries else 0
        self._rounds += 1
        if self._rounds % 20 == 0:
            await self.trim()
        return handled

    # -- lease -------------------------------------------------------------------------------------------------
    async def _hold_lease(self) -> bool:
        """Take or renew the lease (TTL = claim idle time); False while another consumer holds it."""
        redis, ttl = self.streams.redis, self.settings.events_claim_idle_ms
        if await redis.set(self.lease_key, self.name, nx=True, px=ttl):
            return True
        async with redis.pipeline(transaction=True) as pipe:
            try:
                await pipe.watch(self.lease_key)
                if await pipe.get(self.lease_key) != self.name.encode():
                    return False
                pipe.multi()  # type: ignore[no-untyped-call]
                pipe.pexpire(self.lease_key, ttl)
                await pipe.execute()
            except WatchError:
                return False
        return True

    async def release(self) -> None:
        try:
            if await self.streams.redis.get(self.lease_key) == self.name.encode():
                await self.streams.redis.delete(self.lease_key)
        except RedisError:  # shutting down anyway: the lease lapses on its own
            pass

    # -- reading -----------------------------------------------------------------------------------------------
    async def _own_pending(self) -> list[Entry]:
        """Entries delivered to this consumer and not acknowledged (after a transient failure), oldest first."""
        return await self._read("0", block=None)

    async def _read_new(self) -> list[Entry]:
        block = self.settings.events_block_ms if self.streams.blocking else None
        return await self._read(">", block=block)

    async def _read(self, start: str, block: int | None) -> list[Entry]:
        s = self.settings
        reply = await self.streams.redis.xreadgroup(
            s.events_group, self.name, {s.events_inbound_stream: start}, count=s.events_batch, block=block
        )
        streams = cast(list[tuple[bytes, list[Entry]]], reply or [])
        return [(entry_id, fields) for _, entries in streams for entry_id, fields in entries]

    async def _reclaim(self) -> list[Entry]:
        """Entries of other consumers idle for the claim time (a dead or hung worker); trimmed ones dead-lettered.

        An XAUTOCLAIM cursor loop without JUSTID (redis-py drops the cursor with it); Redis >= 7 also returns the
        ids of pending entries that no longer exist.
        """
        s, cursor, claimed = self.settings, b"0-0", []
        while True:
            reply = await self.streams.redis.xautoclaim(
                s.events_inbound_stream, s.events_group, self.name, s.events_claim_idle_ms, cursor, count=s.events_batch
            )
            cursor, entries = reply[0], reply[1]
            for gone in reply[2] if len(reply) > 2 else []:
                await dead_letter(self.streams, gone, b"", [TRIMMED], 1)
            claimed += [(i, f) for i, f in entries if f is not None]
            if cursor in (b"0-0", "0-0") or len(claimed) >= s.events_batch:
                return claimed

    async def _others_pending(self) -> bool:
        summary = await self.streams.redis.xpending(self.settings.events_inbound_stream, self.settings.events_group)
        return any(c["name"].decode() != self.name for c in summary.get("consumers") or [] if c["pending"])

    # -- processing --------------------------------------------------------------------------------------------
    async def _process(self, entries: list[Entry]) -> int:
        """Entries grouped by patient: patients in parallel, each patient's entries in stream order."""
        groups: dict[str | None, list[tuple[bytes, bytes | None, InboundEvent | CarepathError]]] = {}
        for entry_id, fields in entries:
            raw = (fields or {}).get(b"event")
            parsed = _parse(raw)
            key = parsed.patient() if isinstance(parsed, InboundEvent) else None
            groups.setdefault(key, []).append((entry_id, raw, parsed))
        parallel = 1 if self.repository.engine.dialect.name == "sqlite" else self.settings.events_concurrency
        gate = asyncio.Semaphore(parallel)
        self._backoff = 0.0

        async def run(group: list[tuple[bytes, bytes | None, InboundEvent | CarepathError]]) -> int:
            async with gate:
                done = 0
                for entry_id, raw, parsed in group:
                    if not await self._one(entry_id, raw, parsed):
                        break  # this patient's later entries wait for the failed one (order)
                    done += 1
                return done

        return sum(await asyncio.gather(*(run(g) for g in groups.values())))

    async def _one(self, entry_id: bytes, raw: bytes | None, parsed: InboundEvent | CarepathError) -> bool:
        """Handle one entry; True when it is done with (acknowledged or dead-lettered)."""
        try:
            if isinstance(parsed, CarepathError):
                raise parsed
            check_source(parsed, self.settings.allowed_event_sources, self.settings.internal_event_source)
            await handle_event(self.repository, parsed, self.clock())
        except Exception as exc:
            return await self._failed(entry_id, raw, exc)
        self._attempts.pop(entry_id, None)
        s = self.settings
        await self.streams.redis.xack(s.events_inbound_stream, s.events_group, entry_id)
        return True

    async def _failed(self, entry_id: bytes, raw: bytes | None, exc: Exception) -> bool:
        if await transient(exc, self.repository.engine):
            if await database_up(self.repository.engine):  # an outage is not the entry's fault: it never counts
                self._attempts[entry_id] = self._attempts.get(entry_id, 0) + 1
            attempts = self._attempts.get(entry_id, 0)
            if attempts < self.settings.events_max_attempts:
                self._backoff = _next_backoff(self._backoff, self.settings.events_retry_base_ms)
                log.warning("inbound %s: transient failure (%s), retrying", entry_id.decode(), exc)
                return False
        if isinstance(exc, CarepathError):
            issues = exc.issues()
        else:
            log.exception("inbound %s: unexpected failure, dead-lettered", entry_id.decode())
            issues = [Issue(f"{type(exc).__name__}: {exc}", "exception")]
        attempts = await self._deliveries(entry_id)
        await dead_letter(self.streams, entry_id, raw or b"", issues, attempts)
        self._attempts.pop(entry_id, None)
        return True

    async def _deliveries(self, entry_id: bytes) -> int:
        s = self.settings
        found = await self.streams.redis.xpending_range(s.events_inbound_stream, s.events_group, entry_id, entry_id, 1)
        return int(found[0]["times_delivered"]) if found else 1

    # -- length ------------------------------------------------------------------------------------------------
    async def trim(self) -> None:
        """Drop entries older than the oldest one not yet processed (pending, or not yet delivered)."""
        s, redis = self.settings, self.streams.redis
        groups = await redis.xinfo_groups(s.events_inbound_stream)
        ours = next((g for g in groups if _text(g["name"]) == s.events_group), None)
        if ours is None:
            return
        pending = await redis.xpending(s.events_inbound_stream, s.events_group)
        oldest = pending.get("min") if pending.get("pending") else None
        await redis.xtrim(s.events_inbound_stream, minid=oldest or _text(ours["last-delivered-id"]), approximate=False)


def _parse(raw: bytes | None) -> InboundEvent | CarepathError:
    if raw is None:
        return InvalidRequest("The stream entry has no 'event' field")
    try:
        return parse_inbound(raw)
    except CarepathError as exc:
        return exc


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _next_backoff(current: float, base_ms: int) -> float:
    return min(max(base_ms / 1000, current * 2), _MAX_BACKOFF_S)


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
