"""Running a unit of work so that a concurrent one can never turn it into a 500 or apply it twice.

    result = await run_in_transaction(repository, lambda tx: execute_crud(tx, interaction))

`work` receives an open `StoreTransaction` and does *everything* the unit must commit together — resources,
history, search index, stop-rule effects, outbox rows, processed-event and idempotency keys. When the database
aborts it for a concurrent transaction (deadlock, serialization failure, a concurrent create of the same id:
`TransactionConflict`), the whole transaction has been rolled back, so `work` runs again from the start on a new
one: nothing a failed attempt wrote survives, and nothing is written twice. Hence `work` must be re-runnable:
it must not mutate its inputs or have effects outside the transaction (publish only what the outbox stores).
After `ATTEMPTS` tries the conflict is the caller's answer: 409 with an OperationOutcome.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from carepath.errors import TransactionConflict
from carepath.store.repository import Repository, StoreTransaction

T = TypeVar("T")
ATTEMPTS = 3
_BACKOFF_SECONDS = 0.02  # doubled per attempt; the jitter spreads the re-runs of transactions that collided
log = logging.getLogger("carepath.service")


async def run_in_transaction(repository: Repository, work: Callable[[StoreTransaction], Awaitable[T]]) -> T:
    for attempt in range(1, ATTEMPTS):
        try:
            async with repository.transaction() as tx:
                return await work(tx)
        except TransactionConflict as exc:
            log.info("unit of work aborted by a concurrent one (%s); attempt %d of %d", exc, attempt + 1, ATTEMPTS)
            await asyncio.sleep(random.uniform(0, _BACKOFF_SECONDS * 2**attempt))
    async with repository.transaction() as tx:  # the last attempt: a conflict now is the answer (409)
        return await work(tx)
