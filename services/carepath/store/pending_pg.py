"""PostgreSQL: a flush of the batched writes as ONE statement (store/pending.py batches; this sends).

Each statement is a round trip, and a FHIR create wrote five (resource, history, three index tables): with
data-modifying CTEs the new resource rows, their history rows, the history rows of new versions, the index rows
and the DELETEs of replaced index rows all travel in one `WITH ... INSERT ... RETURNING` statement, each table's
rows as arrays (`unnest`), so the statement's text depends only on which tables have rows (cached per shape).
PostgreSQL runs the parts against one snapshot and checks the foreign keys at the end of the statement, so a
history or index row may name a resource row inserted by the same statement; a DELETE of replaced index rows
never sees the rows the same statement inserts. SQLite has no DML in CTEs and no round trips to save: it keeps
one multi-row INSERT per table (pending.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import Table, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Result
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import TextClause

from carepath.store.changes import SUBSCRIBED
from carepath.store.schema import resource, resource_history

_DIALECT = postgresql.dialect()  # type: ignore[no-untyped-call]
_RESOURCE_COLUMNS = ("res_type", "res_id", "version", "last_updated", "deleted", "content")
_HISTORY_COLUMNS = ("rid", "version", "res_type", "res_id", "last_updated", "method", "deleted", "content")


def _array_type(table: Table, column: str) -> str:
    sql_type = table.c[column].type.compile(dialect=_DIALECT)
    return f"{sql_type}[]"


def _unnest(prefix: str, table: Table, columns: Sequence[str], extra: Sequence[tuple[str, str]] = ()) -> str:
    """`unnest(CAST(:p_a AS T[]), ...) AS x(a, ...)`: one array parameter per column (`extra`: name, array type)."""
    casts = [f"CAST(:{prefix}_{c} AS {_array_type(table, c)})" for c in columns]
    casts += [f"CAST(:{prefix}_{name} AS {array})" for name, array in extra]
    names = [*columns, *(name for name, _ in extra)]
    return f"unnest({', '.join(casts)}) AS x({', '.join(names)})"


def _rid(with_new: bool) -> tuple[str, str]:
    """The row's rid: given (a new version of a stored resource) or that of the new resource row it belongs to."""
    if not with_new:
        return "x.rid", ""
    on = "x.rid IS NULL AND new.res_type = x.res_type AND new.res_id = x.res_id"
    return "coalesce(x.rid, new.rid)", f" LEFT JOIN new ON {on}"


@lru_cache(maxsize=256)
def statement(
    new: bool, versions: bool, cleared: tuple[str, ...], indexed: tuple[str, ...], tables: tuple[Table, ...]
) -> TextClause:
    """The flush statement of one shape: new resources?, new versions?, tables to clear, tables with new rows."""
    by_name = {t.name: t for t in tables}
    parts: list[str] = []
    if new:
        parts.append(
            f"new AS (INSERT INTO resource ({', '.join(_RESOURCE_COLUMNS)}) "
            f"SELECT * FROM {_unnest('n', resource, _RESOURCE_COLUMNS)} RETURNING rid, {', '.join(_RESOURCE_COLUMNS)})"
        )
        parts.append(
            f"new_history AS (INSERT INTO resource_history ({', '.join(_HISTORY_COLUMNS)}) "
            "SELECT rid, version, res_type, res_id, last_updated, 'POST', deleted, content FROM new)"
        )
    if versions:
        parts.append(
            f"version_history AS (INSERT INTO resource_history ({', '.join(_HISTORY_COLUMNS)}) "
            f"SELECT * FROM {_unnest('v', resource_history, _HISTORY_COLUMNS)})"
        )
    for name in cleared:
        parts.append(f"clear_{name} AS (DELETE FROM {name} WHERE rid = ANY(CAST(:clear_{name} AS BIGINT[])))")
    rid, join = _rid(new)
    for name in indexed:
        table = by_name[name]
        columns = [c.name for c in table.columns if c.name != "rid"]
        source = _unnest(f"i_{name}", table, ["rid", *columns], extra=[("res_id", "VARCHAR[]")])
        picked = ", ".join(f"x.{c}" for c in columns)
        insert = f"INSERT INTO {name} (rid, {', '.join(columns)})"
        parts.append(f"index_{name} AS ({insert} SELECT {rid}, {picked} FROM {source}{join})")
    subscribed = SUBSCRIBED.element.compile(dialect=_DIALECT, compile_kwargs={"literal_binds": True})  # no label
    final = f"SELECT rid, res_type, res_id, {subscribed} AS subscribed FROM new" if new else "SELECT NULL AS nothing"
    return text(f"WITH {', '.join(parts)} {final}")


def _columns(rows: Sequence[dict[str, Any]], columns: Sequence[str], prefix: str) -> dict[str, list[Any]]:
    return {f"{prefix}_{c}": [r[c] for r in rows] for c in columns}


async def flush(
    conn: AsyncConnection,
    new: list[dict[str, Any]],
    versions: list[dict[str, Any]],
    cleared: dict[str, list[int]],
    index: dict[Table, list[dict[str, Any]]],
) -> Result[Any]:
    """Send everything in one statement: `new` resource rows, history rows of new `versions` (rid known), the
    index tables to `cleared` of those rids, and `index` rows (with `rid`, or None and `res_id` of a new row)."""
    tables = tuple(sorted(index, key=lambda t: t.name))
    shape = statement(bool(new), bool(versions), tuple(sorted(cleared)), tuple(t.name for t in tables), tables)
    params: dict[str, Any] = {}
    if new:
        params.update(_columns(new, _RESOURCE_COLUMNS, "n"))
    if versions:
        params.update(_columns(versions, _HISTORY_COLUMNS, "v"))
    for name, rids in cleared.items():
        params[f"clear_{name}"] = rids
    for table, rows in index.items():
        columns = [c.name for c in table.columns]
        params.update(_columns(rows, [*columns, "res_id"], f"i_{table.name}"))
    return await conn.execute(shape, params)
