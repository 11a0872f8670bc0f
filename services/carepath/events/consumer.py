"""The inbound consumer: entries of the inbound shards -> `handle_event` -> acknowledged after the commit.

Guarantees (contract in contracts/events/, README "Events"):
- **Exactly one effect**: at-least-once delivery + the idempotency key written in the effects' transaction +
  XACK only after that commit. A redelivered entry finds its key and is simply acknowledged.
- **Per-patient order**: a patient's events all sit on one shard (events/shards.py) and one consumer at a time
  reads a shard (its lease, events/leases.py: renewed every round of that shard; other workers take it over when
  it lapses). A worker reads each shard it holds in a loop of its own, so N shards are consumed in parallel by up
  to N workers. Within a batch the patients' entries run in parallel, each patient's in stream order; after a
  failure a patient's later entries wait for the failed one. A new lease holder first takes over the previous
  holder's pending entries (XAUTOCLAIM once they are idle for `events_claim_idle_ms`) and reads new entries only
  when no other consumer holds any on that shard.
- **Failures**: poison (not JSON, not CloudEvents, not FHIR, unknown type), an event from a source not in
  CAREPATH_EVENTS_ALLOWED_SOURCES (403 `forbidden`, never applied) and other permanent errors go to the shard's
  dead-letter stream at once. Transient errors (database or Redis unreachable, a concurrent-write conflict) leave
  the entry pending; it is retried with exponential backoff; while the database answers, an entry that keeps
  failing is dead-lettered after `events_max_attempts` attempts, and an outage never dead-letters anything.
- **Bounded streams**: entries older than a shard's oldest unprocessed one are trimmed (XTRIM MINID), never newer.
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

from redis.exceptions import RedisError, ResponseError
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from carepath.errors import CarepathError, Conflict, InvalidRequest, Issue
from carepath.events.dead import dead_letter
from carepath.events.envelope import parse_inbound
from carepath.events.leases import Leases
from carepath.events.shards import Shard, shards
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


Parsed = InboundEvent | CarepathError  # the event of an entry, or why it is not one
Work = tuple[bytes, bytes | None, Parsed]  # (entry id, raw event, parsed)


class Consumer:
    def __init__(
        self, repository: Repository, streams: Streams, *, name: str | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:  # fmt: skip
        self.repository, self.streams, self.clock = repository, streams, clock
        self.settings = streams.settings
        self.name = name or consumer_name()
        self.shards = shards(self.settings)
        self.leases = Leases(streams, self.name)
        self.held: list[Shard] = []  # in the order taken: the last one is given up first
        parallel = 1 if repository.engine.dialect.name == "sqlite" else self.settings.events_concurrency
        self._gate = asyncio.Semaphore(parallel)  # patients in parallel, over all the shards this worker reads
        self._attempts: dict[tuple[int, bytes], int] = {}
        self._rounds: dict[int, int] = {}
        self._backoff: dict[int, float] = {}

    # -- the loops ---------------------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Until `stop` is set (SIGTERM): balance the leases every round and read each held shard in a loop of its
        own; at the end the batches in hand are finished, then the leases are released."""
        loops: dict[int, tuple[asyncio.Event, asyncio.Task[None]]] = {}
        backoff = 0.0
        try:
            while not stop.is_set():
                for index, (_, task) in list(loops.items()):
                    if task.done():  # lease lost (or an error, raised here)
                        del loops[index]
                        self._drop(self.shards[index])
                        task.result()
                try:
                    taken, given_up = await self._rebalance()
                    backoff = 0.0
                except Exception as exc:
                    if not await transient(exc, self.repository.engine):
                        raise
                    backoff = _next_backoff(backoff, self.settings.events_retry_base_ms)
                    log.warning("inbound consumer: %s; retrying in %.1f s", exc, backoff)
                    taken, given_up = [], []
                for shard in taken:
                    shard_stop = asyncio.Event()
                    loops[shard.index] = (shard_stop, asyncio.create_task(self._shard_loop(shard, shard_stop)))
                for shard in given_up:
                    shard_stop, task = loops.pop(shard.index)
                    shard_stop.set()
                    await task
                    await self._give_up(shard)
                await _sleep(stop, backoff or self._balance_interval())
        finally:
            for shard_stop, _ in loops.values():
                shard_stop.set()
            await asyncio.gather(*(task for _, task in loops.values()), return_exceptions=True)
            await self.release()

    def _balance_interval(self) -> float:
        # well inside the lease TTL, so a newcomer gets its share within a few seconds
        return min(1.0, self.settings.events_claim_idle_ms / 3000)

    async def _shard_loop(self, shard: Shard, stop: asyncio.Event) -> None:
        """Rounds of one shard until `stop` or the lease is lost; transient failures back off."""
        block = self.settings.events_block_ms if self.streams.blocking else None
        while not stop.is_set():
            try:
                handled = await self._round(shard, block)
                if handled is None:
                    return
                backoff = self._backoff.get(shard.index, 0.0)
                delay = backoff if backoff else (0 if handled else self._idle_delay())
            except Exception as exc:
                if not await transient(exc, self.repository.engine):
                    raise
                delay = self._backoff[shard.index] = _next_backoff(
                    self._backoff.get(shard.index, 0.0), self.settings.events_retry_base_ms
                )
                log.warning("inbound consumer, %s: %s; retrying in %.1f s", shard.stream, exc, delay)
            if delay:
                await _sleep(stop, delay)

    def _idle_delay(self) -> float:
        # A real Redis blocked in XREADGROUP already; fakeredis returns at once, so poll.
        return 0 if self.streams.blocking else self.settings.events_poll_ms / 1000

    async def step(self) -> int:
        """One round of every shard, one after the other, without blocking (tests, the demo): how many entries
        were handled (acknowledged or dead-lettered)."""
        _, given_up = await self._rebalance()
        for shard in given_up:
            await self._give_up(shard)
        handled = 0
        for shard in list(self.held):
            done = await self._round(shard, None)
            if done is None:
                self._drop(shard)
            handled += done or 0
        return handled

    async def setup(self) -> None:
        """Every shard's consumer group (tests and the demo create them before sending)."""
        for shard in self.shards:
            await self._group(shard)

    async def _group(self, shard: Shard) -> None:
        """The shard's consumer group, created from id 0 with MKSTREAM: entries sent before the first worker count."""
        try:
            await self.streams.redis.xgroup_create(shard.stream, self.settings.events_group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _round(self, shard: Shard, block: int | None) -> int | None:
        """One round of one shard: how many entries were handled; None when the lease is another worker's now."""
        await self._group(shard)  # again each round: a Redis restarted without its data has lost it
        if not await self.leases.renew(shard):
            return None  # still counted as held until its loop has ended: never two loops on one shard
        entries = await self._read(shard, "0", None)  # this consumer's own pending entries (transient failures)
        if not entries:
            entries = await self._reclaim(shard)
        if not entries and not await self._others_pending(shard):
            entries = await self._read(shard, ">", block)
        handled = await self._process(shard, entries) if entries else 0
        self._rounds[shard.index] = rounds = self._rounds.get(shard.index, 0) + 1
        if rounds % 20 == 0:
            await self.trim(shard)
        return handled

    # -- leases ------------------------------------------------------------------------------------------------
    async def _rebalance(self) -> tuple[list[Shard], list[Shard]]:
        """Leases taken, and the one to give up, this round (events/leases.py: fair share, per-worker offset)."""
        fair = await self.leases.fair_share(len(self.shards))
        if len(self.held) > fair:
            return [], [self.held[-1]]
        taken: list[Shard] = []
        held = {s.index for s in self.held}
        for shard in self.leases.order(self.shards):
            if len(self.held) >= fair:
                break
            if shard.index not in held and await self.leases.take(shard):
                self.held.append(shard)
                taken.append(shard)
        return taken, []

    def _drop(self, shard: Shard) -> None:
        self.held = [s for s in self.held if s.index != shard.index]

    async def _give_up(self, shard: Shard) -> None:
        self._drop(shard)
        await self.leases.release(shard)

    async def release(self) -> None:
        """Give up every lease and the heartbeat (shutting down)."""
        try:
            for shard in list(self.held):
                await self._give_up(shard)
            await self.leases.leave()
        except RedisError:  # shutting down anyway: leases and heartbeat lapse on their own
            pass

    # -- reading -----------------------------------------------------------------------------------------------
    async def _read(self, shard: Shard, start: str, block: int | None) -> list[Entry]:
        s = self.settings
        reply = await self.streams.redis.xreadgroup(
            s.events_group, self.name, {shard.stream: start}, count=s.events_batch, block=block
        )
        streams = cast(list[tuple[bytes, list[Entry]]], reply or [])
        return [(entry_id, fields) for _, entries in streams for entry_id, fields in entries]

    async def _reclaim(self, shard: Shard) -> list[Entry]:
        """Entries of other consumers idle for the claim time (a dead or hung worker); trimmed ones dead-lettered.

        An XAUTOCLAIM cursor loop without JUSTID (redis-py drops the cursor with it); Redis >= 7 also returns the
        ids of pending entries that no longer exist.
        """
        s, cursor, claimed = self.settings, b"0-0", []
        while True:
            reply = await self.streams.redis.xautoclaim(
                shard.stream, s.events_group, self.name, s.events_claim_idle_ms, cursor, count=s.events_batch
            )
            cursor, entries = reply[0], reply[1]
            for gone in reply[2] if len(reply) > 2 else []:
                await dead_letter(self.streams, shard, gone, b"", [TRIMMED], 1)
            claimed += [(i, f) for i, f in entries if f is not None]
            if cursor in (b"0-0", "0-0") or len(claimed) >= s.events_batch:
                return claimed

    async def _others_pending(self, shard: Shard) -> bool:
        summary = await self.streams.redis.xpending(shard.stream, self.settings.events_group)
        return any(c["name"].decode() != self.name for c in summary.get("consumers") or [] if c["pending"])

    # -- processing --------------------------------------------------------------------------------------------
    async def _process(self, shard: Shard, entries: list[Entry]) -> int:
        """Entries grouped by patient: patients in parallel, each patient's entries in stream order."""
        groups: dict[str | None, list[Work]] = {}
        for entry_id, fields in entries:
            raw = (fields or {}).get(b"event")
            parsed = _parse(raw)
            key = parsed.patient() if isinstance(parsed, InboundEvent) else None
            groups.setdefault(key, []).append((entry_id, raw, parsed))
        self._backoff[shard.index] = 0.0

        async def run(group: list[Work]) -> int:
            async with self._gate:
                done = 0
                for entry_id, raw, parsed in group:
                    if not await self._one(shard, entry_id, raw, parsed):
                        break  # this patient's later entries wait for the failed one (order)
                    done += 1
                return done

        return sum(await asyncio.gather(*(run(g) for g in groups.values())))

    async def _one(self, shard: Shard, entry_id: bytes, raw: bytes | None, parsed: Parsed) -> bool:
        """Handle one entry; True when it is done with (acknowledged or dead-lettered)."""
        try:
            if isinstance(parsed, CarepathError):
                raise parsed
            check_source(parsed, self.settings.allowed_event_sources, self.settings.internal_event_source)
            await handle_event(self.repository, parsed, self.clock())
        except Exception as exc:
            return await self._failed(shard, entry_id, raw, exc)
        self._attempts.pop((shard.index, entry_id), None)
        await self.streams.redis.xack(shard.stream, self.settings.events_group, entry_id)
        return True

    async def _failed(self, shard: Shard, entry_id: bytes, raw: bytes | None, exc: Exception) -> bool:
        key = (shard.index, entry_id)
        if await transient(exc, self.repository.engine):
            if await database_up(self.repository.engine):  # an outage is not the entry's fault: it never counts
                self._attempts[key] = self._attempts.get(key, 0) + 1
            if self._attempts.get(key, 0) < self.settings.events_max_attempts:
                self._backoff[shard.index] = _next_backoff(
                    self._backoff.get(shard.index, 0.0), self.settings.events_retry_base_ms
                )
                log.warning("inbound %s %s: transient failure (%s), retrying", shard.stream, entry_id.decode(), exc)
                return False
        if isinstance(exc, CarepathError):
            issues = exc.issues()
        else:
            log.exception("inbound %s %s: unexpected failure, dead-lettered", shard.stream, entry_id.decode())
            issues = [Issue(f"{type(exc).__name__}: {exc}", "exception")]
        attempts = await self._deliveries(shard, entry_id)
        await dead_letter(self.streams, shard, entry_id, raw or b"", issues, attempts)
        self._attempts.pop(key, None)
        return True

    async def _deliveries(self, shard: Shard, entry_id: bytes) -> int:
        group = self.settings.events_group
        found = await self.streams.redis.xpending_range(shard.stream, group, entry_id, entry_id, 1)
        return int(found[0]["times_delivered"]) if found else 1

    # -- length ------------------------------------------------------------------------------------------------
    async def trim(self, shard: Shard) -> None:
        """Drop entries older than the oldest one not yet processed (pending, or not yet delivered)."""
        s, redis = self.settings, self.streams.redis
        groups = await redis.xinfo_groups(shard.stream)
        ours = next((g for g in groups if _text(g["name"]) == s.events_group), None)
        if ours is None:
            return
        pending = await redis.xpending(shard.stream, s.events_group)
        oldest = pending.get("min") if pending.get("pending") else None
        await redis.xtrim(shard.stream, minid=oldest or _text(ours["last-delivered-id"]), approximate=False)


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
