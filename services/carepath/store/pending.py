"""The writes a store transaction still owes the database, sent as one multi-row statement per table.

A create does not touch the database at once: the new resource, its history row and its search-index rows wait
here, and so do the history and index rows of new versions. `flush` sends them right before the transaction's
next read and before it commits, so whatever the transaction reads already includes them. Why: each statement
is a round trip, and a transaction Bundle of 100 creates becomes about six statements instead of about 600. On
PostgreSQL the whole flush is one statement (pending_pg.py), so a create is BEGIN, one INSERT and COMMIT.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Row, Table, delete, insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from carepath.errors import TransactionConflict
from carepath.fhir.search.rows import IndexRows
from carepath.store import pending_pg
from carepath.store.changes import SUBSCRIBED
from carepath.store.records import StoredResource
from carepath.store.schema import (
    resource,
    resource_history,
    sp_date,
    sp_quantity,
    sp_reference,
    sp_string,
    sp_token,
    sp_uri,
)

INDEX_TABLES: dict[str, Table] = {
    "tokens": sp_token,
    "strings": sp_string,
    "dates": sp_date,
    "references": sp_reference,
    "quantities": sp_quantity,
    "uris": sp_uri,
}
# Built once: SQLAlchemy then reuses the compiled SQL instead of rebuilding it for every row.
_INSERT_RESOURCES = insert(resource).returning(resource.c.rid, resource.c.res_type, resource.c.res_id, SUBSCRIBED)
_INSERT_HISTORY = insert(resource_history)
_INSERT_INDEX = {name: insert(table) for name, table in INDEX_TABLES.items()}


@dataclass
class _Version:
    """A version waiting to be written; `rid` is None for a new resource until its row is inserted."""

    stored: StoredResource
    method: str
    index: IndexRows
    rid: int | None = None


@dataclass
class PendingWrites:
    _versions: list[_Version] = field(default_factory=list)
    _cleared: dict[str, set[int]] = field(default_factory=dict)  # index table -> rids whose rows are replaced

    def add_resource(self, stored: StoredResource, index: IndexRows) -> None:
        """A new resource (version 1): its row, history row and index rows."""
        self._versions.append(_Version(stored, "POST", index))

    def add_version(self, rid: int, stored: StoredResource, method: str, index: IndexRows, old: IndexRows) -> None:
        """A new version of the stored resource `rid`: its index rows replace `old` (the previous version's)."""
        for name in INDEX_TABLES:
            if getattr(old, name):  # a table without rows for the old version needs no DELETE round trip
                self._cleared.setdefault(name, set()).add(rid)
        self._versions.append(_Version(stored, method, index, rid))

    async def flush(self, conn: AsyncConnection) -> bool | None:
        """Send the writes; the resource INSERT's SUBSCRIBED answer (None when there was no new resource)."""
        if not self._versions and not self._cleared:
            return None
        versions, cleared = self._versions, self._cleared
        self._versions, self._cleared = [], {}
        if conn.dialect.name == "postgresql":
            return await _flush_in_one_statement(conn, versions, cleared)
        subscribed = await _insert_resources(conn, [v for v in versions if v.rid is None])
        for name, rids in cleared.items():
            table = INDEX_TABLES[name]
            await conn.execute(delete(table).where(table.c.rid.in_(sorted(rids))))
        await conn.execute(_INSERT_HISTORY, [_history_row(v) for v in versions])
        for name, statement in _INSERT_INDEX.items():
            rows = [_index_row(v, row) for v in versions for row in getattr(v.index, name)]
            if rows:
                await conn.execute(statement, rows)
        return subscribed


async def _flush_in_one_statement(
    conn: AsyncConnection, versions: list[_Version], cleared: dict[str, set[int]]
) -> bool | None:
    new = [v for v in versions if v.rid is None]
    index: dict[Table, list[dict[str, Any]]] = {}
    for name, table in INDEX_TABLES.items():
        rows = [{**_index_row(v, row), "res_id": v.stored.res_id} for v in versions for row in getattr(v.index, name)]
        if rows:
            index[table] = rows
    try:
        result = await pending_pg.flush(
            conn, [_resource_row(v.stored) for v in new], [_history_row(v) for v in versions if v.rid is not None],
            {INDEX_TABLES[name].name: sorted(rids) for name, rids in cleared.items()}, index,
        )  # fmt: skip
    except IntegrityError as exc:
        if "uq_resource_type_id" not in str(exc):
            raise
        raise _concurrent_create(new) from exc
    if not new:
        return None
    return _assign_rids(new, result.all())


async def _insert_resources(conn: AsyncConnection, new: list[_Version]) -> bool | None:
    if not new:
        return None
    try:
        returned = (await conn.execute(_INSERT_RESOURCES, [_resource_row(v.stored) for v in new])).all()
    except IntegrityError as exc:
        raise _concurrent_create(new) from exc
    return _assign_rids(new, returned)


def _concurrent_create(new: list[_Version]) -> TransactionConflict:
    """A concurrent create-on-update with the same id won the race. Retryable: run again, the unit of work finds
    the winner's row and makes its write an update."""
    ids = ", ".join(v.stored.relative_url for v in new)
    return TransactionConflict(f"{ids}: created concurrently by another request")


def _assign_rids(new: list[_Version], returned: Sequence[Row[Any]]) -> bool:
    """Give the new versions the rids their rows got; whether a Subscription exists (SUBSCRIBED)."""
    rids = {(r.res_type, r.res_id): r.rid for r in returned}
    for v in new:
        v.rid = rids[(v.stored.res_type, v.stored.res_id)]
    return any(r.subscribed for r in returned)


def _resource_row(s: StoredResource) -> dict[str, Any]:
    return {"res_type": s.res_type, "res_id": s.res_id, "version": s.version, "last_updated": s.last_updated,
            "deleted": s.deleted, "content": s.content}  # fmt: skip


def _history_row(v: _Version) -> dict[str, Any]:
    s = v.stored
    return {"rid": v.rid, "version": s.version, "res_type": s.res_type, "res_id": s.res_id,
            "last_updated": s.last_updated, "method": v.method, "deleted": s.deleted, "content": s.content}  # fmt: skip


def _index_row(v: _Version, row: Any) -> dict[str, Any]:
    return {"rid": v.rid, "res_type": v.stored.res_type, **vars(row)}
