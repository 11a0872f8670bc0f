"""The transactional outbox and the processed-event keys (the storage half of exactly-once event handling).

Outbox rows are written in the transaction of the change that caused them, so an event exists if and only if its
change committed; the relay (events/relay.py) publishes them and deletes them. The row id is the CloudEvents `id`.

Per-patient commit order: on PostgreSQL, a transaction that writes events for a patient first takes a
transaction-scoped advisory lock on that patient (released at commit), so two transactions writing events for the
same patient commit one after the other and the later one's rows get the higher ids; the relay publishes in id
order. SQLite has one writer at a time, which gives the same order. Lock keys include the schema, so separate
schemas (tests, tenants) on one server do not contend.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, insert, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from carepath import jsonutil
from carepath.domain_events import DomainEvent
from carepath.store.records import utc_now
from carepath.store.schema import outbox, processed_event

OUTBOUND = "events"  # published on the outbound stream
INTERNAL = "internal"  # published on the inbound stream for trigger evaluation (the HTTP door)

_PATIENT_LOCK = text(
    "SELECT pg_advisory_xact_lock(hashtextextended('carepath.patient:' || current_schema() || ':' || :s, 0))"
)
_RELAY_LOCK = text("SELECT pg_try_advisory_xact_lock(hashtextextended('carepath.relay:' || current_schema(), 0))")
_INSERT = insert(outbox)


@dataclass(frozen=True)
class OutboxRow:
    """A stored outbox row, as the relay reads it."""

    id: int
    created: datetime
    channel: str
    type: str
    subject: str | None
    careplan: str | None
    pathway: str | None
    data: str  # JSON text


@dataclass
class OutboxWrites:
    """Events of one transaction, inserted in one statement with the transaction's next flush."""

    _rows: list[dict[str, Any]] = field(default_factory=list)

    def add(
        self, channel: str, type_: str, subject: str | None, data: Any, *, careplan: str | None = None,
        pathway: str | None = None,
    ) -> None:  # fmt: skip
        self._rows.append(
            {"created": utc_now(), "channel": channel, "type": type_, "subject": subject, "careplan": careplan,
             "pathway": pathway, "data": jsonutil.dumps(data).decode()}
        )  # fmt: skip

    def add_event(self, event: DomainEvent) -> None:
        self.add(OUTBOUND, event.type, event.subject, event.resource, careplan=event.careplan, pathway=event.pathway)

    async def flush(self, conn: AsyncConnection) -> None:
        if not self._rows:
            return
        rows, self._rows = self._rows, []
        await lock_patients(conn, {r["subject"] for r in rows if r["subject"]})
        await conn.execute(_INSERT, rows)


async def lock_patients(conn: AsyncConnection, subjects: set[str]) -> None:
    """Serialise this transaction with every other one touching these patients, until it ends (PostgreSQL).

    Sorted, so two transactions locking the same patients take them in the same order (no deadlock).
    """
    if conn.dialect.name != "postgresql":
        return
    for subject in sorted(subjects):
        await conn.execute(_PATIENT_LOCK, {"s": subject})


async def record_processed(conn: AsyncConnection, key: str) -> bool:
    """Record an inbound event's key; False when it was already recorded (committed by someone else).

    A concurrent transaction holding the same key makes this wait for it: if it commits this returns False, if it
    rolls back this one owns the key.
    """
    try:
        async with conn.begin_nested():
            await conn.execute(insert(processed_event).values(key=key, processed=utc_now()))
    except IntegrityError:
        return False
    return True


# -- relay side ----------------------------------------------------------------------------------------------------
async def claim(conn: AsyncConnection, limit: int) -> list[OutboxRow] | None:
    """The oldest rows, locked for this transaction; None when another relay is active right now.

    One relay at a time publishes (a transaction-scoped advisory lock on PostgreSQL, the single writer on SQLite):
    two relays publishing interleaved batches could reorder a patient's events. `SKIP LOCKED` keeps a relay that
    got the lock from ever waiting on rows a late transaction still holds.
    """
    if conn.dialect.name == "postgresql":
        if not (await conn.execute(_RELAY_LOCK)).scalar_one():
            return None
        stmt = select(outbox).order_by(outbox.c.id).limit(limit).with_for_update(skip_locked=True)
    else:
        stmt = select(outbox).order_by(outbox.c.id).limit(limit)
    return [OutboxRow(**row._mapping) for row in await conn.execute(stmt)]


async def remove(conn: AsyncConnection, ids: list[int]) -> None:
    """Relayed rows go: the outbox only ever holds what is not yet published."""
    if ids:
        await conn.execute(delete(outbox).where(outbox.c.id.in_(ids)))


async def backlog(conn: AsyncConnection) -> tuple[int, datetime | None]:
    """How many rows wait and since when (for `carepath events status`)."""
    row = (await conn.execute(select(func.count(), func.min(outbox.c.created)))).one()
    return int(row[0]), row[1]


async def purge_processed(conn: AsyncConnection, older_than: timedelta) -> int:
    """Forget processed-event keys past the redelivery horizon (an event is never redelivered that late)."""
    result = await conn.execute(delete(processed_event).where(processed_event.c.processed < utc_now() - older_than))
    return int(result.rowcount or 0)
