"""Changes committed by any process, for per-process caches of values read from the database that must stay exact.

Every transaction that writes a resource of a WATCHED type sends `NOTIFY carepath_changes, '<schema>|<types>'`
(a statement-level trigger on `resource`, migration 0007: no extra round trip, whoever writes). PostgreSQL
delivers a notification when its transaction commits, in commit order, to every listening session. A process
listens on one dedicated connection and counts, per type, its schema's notifications: the generations.
`current()` sends a notification of its own on that connection and waits for it to come back; notifications
arrive in commit order, so by then every commit that a new query can see has been counted. A value computed
*after* reading the generations, and stored under them, is therefore exact for as long as they are unchanged
(`lookup` / `remember`, or `cached`).

A lost connection starts a new generation (notifications may have been missed meanwhile). SQLite has no
cross-process signal: there `current()` is None and callers compute every time.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, TypeVar

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger("carepath.store")
CHANNEL = "carepath_changes"
# What the worklist caches (web/counts.py, web/data.py): its counts (Tasks) and its filters' option lists.
# Migration 0007's trigger names the same types.
WATCHED = frozenset({"Task", "Patient", "Practitioner", "ActivityDefinition"})
_SYNC_TIMEOUT_S = 2.0
_ENTRIES = 256  # cached values kept (least recently used go first)


Generation = tuple[int, ...]
T = TypeVar("T")


async def cached(generations: Generations | None, key: Hashable, types: tuple[str, ...],
                 compute: Callable[[], Awaitable[T]],
                 still_valid: Callable[[T], Awaitable[bool]] | None = None) -> T:  # fmt: skip
    """`compute()`, or the value it gave before while no resource of `types` changed (and `still_valid` says so)."""
    generation = await generations.current(types) if generations is not None else None
    if generations is None or generation is None:
        return await compute()
    found = generations.lookup(key, generation)
    if found is not None and (still_valid is None or await still_valid(found)):
        return found  # type: ignore[no-any-return]
    value = await compute()
    generations.remember(key, generation, value)
    return value


class Generations:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._conn: Any = None  # the listening asyncpg connection, opened on first use
        self._schema = ""
        self._epoch = 0  # a new listening connection: whatever was counted before may have missed notifications
        self._counts: dict[str, int] = {}
        self._lock = asyncio.Lock()  # one statement at a time on the connection
        self._waiting: dict[str, asyncio.Future[None]] = {}
        self._tokens = itertools.count()
        self._values: OrderedDict[Hashable, tuple[Generation, Any]] = OrderedDict()

    async def current(self, types: tuple[str, ...]) -> Generation | None:
        """The generations of `types`, every commit visible to a new query counted; None without a signal."""
        if self._engine.dialect.name != "postgresql":
            return None
        async with self._lock:
            try:
                conn = self._conn or await self._listen()
                token = f"sync:{os.getpid()}:{id(self)}:{next(self._tokens)}"
                echoed = self._waiting[token] = asyncio.get_running_loop().create_future()
                await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, token)
                await asyncio.wait_for(echoed, _SYNC_TIMEOUT_S)
                return (self._epoch, *(self._counts.get(t, 0) for t in types))
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                log.warning("change notifications: %s; computing without the cache", exc)
                await self._drop()
                return None

    def lookup(self, key: Hashable, generation: Generation) -> Any:
        """The value remembered under `key` for these generations, or None."""
        found = self._values.get(key)
        if found is None or found[0] != generation:
            return None
        self._values.move_to_end(key)
        return found[1]

    def remember(self, key: Hashable, generation: Generation, value: Any) -> None:
        self._values[key] = (generation, value)
        self._values.move_to_end(key)
        while len(self._values) > _ENTRIES:
            self._values.popitem(last=False)

    async def close(self) -> None:
        async with self._lock:
            await self._drop()

    async def _listen(self) -> Any:
        async with self._engine.connect() as probe:  # the schema the writers' connections announce
            self._schema = str((await probe.execute(text("SELECT current_schema()"))).scalar_one())
        url = self._engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        conn = await asyncpg.connect(url)
        await conn.add_listener(CHANNEL, self._notified)
        self._conn = conn
        self._epoch += 1
        return conn

    def _notified(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        schema, _, types = payload.partition("|")
        if schema == self._schema and types:
            for written in types.split(","):
                self._counts[written] = self._counts.get(written, 0) + 1
        elif (echoed := self._waiting.pop(payload, None)) is not None and not echoed.done():
            echoed.set_result(None)

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        self._waiting.clear()
        self._epoch += 1
        if conn is not None:
            try:
                await conn.close(timeout=2)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
                conn.terminate()
