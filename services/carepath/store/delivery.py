"""Storage of outbound delivery: Subscription state, numbered notifications, the hospital push queue, fan-out.

Guarantees (README "Subscribing"):
- **Nothing committed is lost**: a change row (store/changes.py) is deleted only in the transaction that writes the
  notifications and pushes it causes; a notification leaves `pending` only when its endpoint answered 2xx or it was
  given up (`dead`, kept as the dead-letter record and sent again on re-activation or `$resend`).
- **Gapless event numbers**: one fan-out at a time (a transaction-scoped advisory lock on PostgreSQL, the single
  writer on SQLite) numbers each Subscription's notifications 1, 2, 3, ... in change order.
- **One sender per Subscription**: a lease row-update (`lease_until`); a killed worker's lease runs out and another
  worker sends the in-flight notification again, under the same notification id.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, and_, delete, func, insert, or_, select, text, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection

from carepath import jsonutil
from carepath.store.records import StoredResource
from carepath.store.schema import (
    delivery_change,
    ehr_push,
    resource,
    resource_history,
    subscription_notification,
    subscription_state,
)

_FANOUT_LOCK = text("SELECT pg_try_advisory_xact_lock(hashtextextended('carepath.fanout:' || current_schema(), 0))")
NOTIFYING = ("active", "error")  # statuses whose Subscriptions count events (error: kept for re-activation)
_state, _note = subscription_state.c, subscription_notification.c


@dataclass(frozen=True)
class State:
    id: str
    status: str
    criteria: str
    endpoint: str
    payload: str | None
    headers: list[str]
    end: datetime | None
    events: int
    error: str | None
    attempts: int
    due: datetime | None


@dataclass(frozen=True)
class Change:
    id: int
    batch: str
    stored: StoredResource


@dataclass(frozen=True)
class Notification:
    id: int
    subscription_id: str
    event_number: int
    notification_id: str
    res_type: str
    res_id: str
    version: int
    status: str
    attempts: int
    due: datetime
    last_error: str | None
    created: datetime
    sent: datetime | None


def _as_state(row: Row[Any]) -> State:
    values = dict(row._mapping)
    values.pop("lease_until", None)
    values["headers"] = jsonutil.loads(values["headers"])
    return State(**values)


# -- Subscription state -------------------------------------------------------------------------------------------
async def get_state(conn: AsyncConnection, sub_id: str, *, for_update: bool = False) -> State | None:
    stmt = select(subscription_state).where(_state.id == sub_id)
    row = (await conn.execute(stmt.with_for_update() if for_update else stmt)).first()
    return _as_state(row) if row is not None else None


async def put_state(conn: AsyncConnection, state: State) -> None:
    """Insert or replace a Subscription's state. The event counter is the fan-out's alone: written only when the
    row is new, so a status change never overwrites a number given out meanwhile."""
    values = {**vars(state), "headers": jsonutil.dumps(state.headers).decode()}
    events = values.pop("events")
    done = await conn.execute(update(subscription_state).where(_state.id == state.id).values(**values))
    if not done.rowcount:
        await conn.execute(insert(subscription_state).values(**values, events=events, lease_until=None))


async def drop_state(conn: AsyncConnection, sub_id: str) -> None:
    await conn.execute(delete(subscription_notification).where(_note.subscription_id == sub_id))
    await conn.execute(delete(subscription_state).where(_state.id == sub_id))


async def states(conn: AsyncConnection, statuses: tuple[str, ...]) -> list[State]:
    rows = await conn.execute(select(subscription_state).where(_state.status.in_(statuses)).order_by(_state.id))
    return [_as_state(r) for r in rows]


async def take_lease(conn: AsyncConnection, sub_id: str, now: datetime, until: datetime) -> bool:
    """This worker sends for `sub_id` until `until`, unless another one holds a lease that has not run out."""
    free = or_(_state.lease_until.is_(None), _state.lease_until < now)
    result = await conn.execute(update(subscription_state).where(_state.id == sub_id, free).values(lease_until=until))
    return bool(result.rowcount)


async def release_lease(conn: AsyncConnection, sub_id: str) -> None:
    await conn.execute(update(subscription_state).where(_state.id == sub_id).values(lease_until=None))


async def sendable(conn: AsyncConnection, now: datetime, limit: int) -> list[str]:
    """Subscriptions with work due: a handshake, an `end` reached, or a pending notification (oldest first)."""
    due_note = (
        select(_note.subscription_id).where(_note.status == "pending", _note.due <= now).group_by(_note.subscription_id)
    )
    handshake = and_(_state.status == "requested", or_(_state.due.is_(None), _state.due <= now))
    ended = and_(_state.status != "off", _state.end.is_not(None), _state.end <= now)
    active = and_(_state.status == "active", _state.id.in_(due_note))
    rows = await conn.execute(select(_state.id).where(or_(handshake, ended, active)).order_by(_state.id).limit(limit))
    return [r[0] for r in rows]


# -- notifications ------------------------------------------------------------------------------------------------
async def due_batch(
    conn: AsyncConnection, sub_id: str, now: datetime, limit: int
) -> list[tuple[Notification, str | None]]:
    """The lowest-numbered pending notifications with their versions' content, up to the first one not yet due:
    a Subscription's notifications go out in number order."""
    h = resource_history.c
    version = (h.res_type == _note.res_type) & (h.res_id == _note.res_id) & (h.version == _note.version)
    stmt = (
        select(subscription_notification, h.content)
        .select_from(subscription_notification.outerjoin(resource_history, version))
        .where(_note.subscription_id == sub_id, _note.status == "pending")
        .order_by(_note.event_number)
        .limit(limit)
    )
    out = []
    for row in await conn.execute(stmt):
        values = dict(row._mapping)
        content = values.pop("content")
        note = Notification(**values)
        if note.due > now:
            break
        out.append((note, content))
    return out


async def mark_sent(conn: AsyncConnection, note_ids: list[int], now: datetime) -> None:
    if note_ids:
        await conn.execute(
            update(subscription_notification)
            .where(_note.id.in_(note_ids))
            .values(status="sent", sent=now, attempts=_note.attempts + 1, last_error=None)
        )


async def record_attempt(conn: AsyncConnection, note_id: int, **values: Any) -> None:
    await conn.execute(update(subscription_notification).where(_note.id == note_id).values(**values))


async def requeue(conn: AsyncConnection, sub_id: str, now: datetime, *, since: int | None) -> int:
    """Put notifications back to `pending`: numbers above `since`, or (None) the dead ones. How many."""
    where = [_note.subscription_id == sub_id]
    where.append(_note.event_number > since if since is not None else _note.status == "dead")
    result = await conn.execute(
        update(subscription_notification).where(*where).values(status="pending", attempts=0, due=now)
    )
    return int(result.rowcount or 0)


async def counts(conn: AsyncConnection, sub_id: str) -> dict[str, int]:
    stmt = select(_note.status, func.count()).where(_note.subscription_id == sub_id).group_by(_note.status)
    return {str(status): int(n) for status, n in await conn.execute(stmt)}


async def last_sent(conn: AsyncConnection, sub_id: str) -> int | None:
    stmt = select(func.max(_note.event_number)).where(_note.subscription_id == sub_id, _note.status == "sent")
    value = (await conn.execute(stmt)).scalar_one()
    return int(value) if value is not None else None


async def notifications(conn: AsyncConnection, sub_id: str) -> list[Notification]:
    stmt = select(subscription_notification).where(_note.subscription_id == sub_id).order_by(_note.event_number)
    return [Notification(**r._mapping) for r in await conn.execute(stmt)]


async def purge_sent(conn: AsyncConnection, before: datetime) -> int:
    result = await conn.execute(delete(subscription_notification).where(_note.status == "sent", _note.sent < before))
    return int(result.rowcount or 0)


# -- fan-out ------------------------------------------------------------------------------------------------------
async def claim_changes(conn: AsyncConnection, limit: int) -> list[Change] | None:
    """The oldest change rows with their versions' content; None while another fan-out runs (PostgreSQL)."""
    c, h = delivery_change.c, resource_history.c
    stmt = select(delivery_change).order_by(c.id).limit(limit)
    if conn.dialect.name == "postgresql":
        if not (await conn.execute(_FANOUT_LOCK)).scalar_one():
            return None
        stmt = stmt.with_for_update(skip_locked=True)
    rows = list(await conn.execute(stmt))
    if not rows:
        return []
    keys = [(r.res_type, r.res_id, r.version) for r in rows]
    found = await conn.execute(
        select(h.res_type, h.res_id, h.version, h.last_updated, h.content).where(
            tuple_(h.res_type, h.res_id, h.version).in_(keys)
        )
    )
    content = {(f.res_type, f.res_id, f.version): (f.last_updated, f.content) for f in found}
    changes = []
    for r in rows:
        updated, body = content.get((r.res_type, r.res_id, r.version), (r.created, None))
        changes.append(Change(r.id, r.batch, StoredResource(r.res_type, r.res_id, r.version, updated, False, body)))
    return changes


async def finish_fanout(
    conn: AsyncConnection, change_ids: list[int], notes: list[dict[str, Any]], counters: dict[str, int],
    pushes: list[dict[str, Any]],
) -> None:  # fmt: skip
    """One transaction: the notifications and pushes, the Subscriptions' counters, the change rows gone."""
    if notes:
        await conn.execute(insert(subscription_notification), notes)
    for sub_id, events in counters.items():
        await conn.execute(update(subscription_state).where(_state.id == sub_id).values(events=events))
    if pushes:
        await conn.execute(insert(ehr_push), pushes)
    if change_ids:
        await conn.execute(delete(delivery_change).where(delivery_change.c.id.in_(change_ids)))


async def change_backlog(conn: AsyncConnection) -> int:
    return int((await conn.execute(select(func.count()).select_from(delivery_change))).scalar_one())


# -- hospital push ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Push:
    id: int
    batch: str
    refs: list[str]
    status: str
    attempts: int
    conflicts: int
    last_error: str | None


def _as_push(row: Row[Any]) -> Push:
    p = row._mapping
    return Push(p["id"], p["batch"], jsonutil.loads(p["refs"]), p["status"], p["attempts"], p["conflicts"],
                p["last_error"])  # fmt: skip


async def claim_push(conn: AsyncConnection, now: datetime, lease: timedelta) -> Push | None:
    """The oldest due push, leased to this worker (another worker skips it until the lease runs out)."""
    p = ehr_push.c
    free = or_(p.lease_until.is_(None), p.lease_until < now)
    stmt = select(ehr_push).where(p.status == "pending", p.due <= now, free).order_by(p.id).limit(1)
    if conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    row = (await conn.execute(stmt)).first()
    if row is None:
        return None
    await conn.execute(update(ehr_push).where(p.id == row.id).values(lease_until=now + lease))
    return _as_push(row)


async def update_push(conn: AsyncConnection, push_id: int, **values: Any) -> None:
    await conn.execute(update(ehr_push).where(ehr_push.c.id == push_id).values(lease_until=None, **values))


async def remove_push(conn: AsyncConnection, push_id: int) -> None:
    await conn.execute(delete(ehr_push).where(ehr_push.c.id == push_id))


async def pushes(conn: AsyncConnection) -> list[Push]:
    return [_as_push(r) for r in await conn.execute(select(ehr_push).order_by(ehr_push.c.id))]


async def current(conn: AsyncConnection, refs: list[str]) -> list[StoredResource]:
    """The current, live versions of `Type/id` references (a push sends what is true now)."""
    keys = [tuple(ref.split("/", 1)) for ref in refs]
    r = resource.c
    stmt = select(r.res_type, r.res_id, r.version, r.last_updated, r.deleted, r.content).where(
        tuple_(r.res_type, r.res_id).in_(keys), r.deleted.is_(False)
    )
    return [StoredResource(*row) for row in await conn.execute(stmt)]
