"""The storage half of "alert once": the overdue-alert keys and the scheduler's turn.

`claim_alert` inserts the (Task, due date) key and says whether this transaction got it: of two schedulers
scanning at once, the second blocks on the key until the first commits, then finds it taken (ON CONFLICT DO
NOTHING) — the database, not a check-then-insert, makes the alert happen once. `scheduler_turn` lets only one
scheduler scan at a time on PostgreSQL (a transaction-scoped advisory lock, `pg_try_advisory_xact_lock`: the
others skip this round instead of queueing); SQLite has one writer anyway.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from carepath.store.schema import overdue_alert

_TURN = text("SELECT pg_try_advisory_xact_lock(hashtextextended('carepath.scheduler:' || current_schema(), 0))")


async def scheduler_turn(conn: AsyncConnection) -> bool:
    if conn.dialect.name != "postgresql":
        return True
    return bool((await conn.execute(_TURN)).scalar_one())


async def claim_alert(conn: AsyncConnection, task_id: str, due: str, now: datetime) -> bool:
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    stmt = insert(overdue_alert).values(task_id=task_id, due=due, alerted=now).on_conflict_do_nothing()
    return bool((await conn.execute(stmt)).rowcount)
