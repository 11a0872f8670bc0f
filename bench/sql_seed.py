"""Set-based seeding of a carepath schema for the benchmarks: resources generated in SQL, `CHUNK` rows a statement.

Going through the API costs about 2 ms a resource; `INSERT ... SELECT generate_series` writes 100,000 in seconds.
A generator is a SELECT over `generate_series($1, $2 - 1) g` giving (res_type, res_id, last_updated, content); each
chunk stores those rows as version 1, their history rows (method POST, as a create writes them), then the search
index rows that the caller's statements derive from the new rows (`{new}` in a statement stands for "the resource
rows of this chunk"). Whether those index rows are the ones the store would write is the caller's to check:
`index_differences` compares them with `extract_index` of the stored content.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import asyncpg  # type: ignore[import-untyped]

from carepath import jsonutil
from carepath.fhir.search.extract import extract_index

CHUNK = 100_000

# Each index table's columns as the store writes them (store/schema.py), in IndexRows field order.
INDEX_COLUMNS = {
    "tokens": ("sp_token", ("param", "system", "code")),
    "strings": ("sp_string", ("param", "value", "exact")),
    "dates": ("sp_date", ("param", "low", "high")),
    "references": ("sp_reference", ("param", "target_type", "target_id", "url", "version")),
    "quantities": ("sp_quantity", ("param", "value", "system", "code")),
    "uris": ("sp_uri", ("param", "value")),
}


async def insert_generated(
    conn: asyncpg.Connection, generator: str, low: int, high: int, index_statements: Sequence[str]
) -> int:
    """Store the resources `generator` makes for g in [low, high), chunk by chunk; how many rows were added."""
    added = 0
    for start in range(low, high, CHUNK):
        stop = min(high, start + CHUNK)
        async with conn.transaction():
            first = await conn.fetchval("SELECT coalesce(max(rid), 0) FROM resource")
            status = await conn.execute(
                "INSERT INTO resource (res_type, res_id, version, last_updated, deleted, content) "
                f"SELECT res_type, res_id, 1, last_updated, false, content FROM ({generator}) generated",
                start,
                stop,
            )
            added += int(status.split()[-1])
            new = f"resource WHERE rid > {first}"
            await conn.execute(
                "INSERT INTO resource_history (rid, version, res_type, res_id, last_updated, method, deleted, "
                f"content) SELECT rid, 1, res_type, res_id, last_updated, 'POST', false, content FROM {new}"
            )
            for statement in index_statements:
                await conn.execute(statement.format(new=new))
    return added


async def index_differences(conn: asyncpg.Connection, res_type: str, limit: int = 5) -> list[str]:
    """Resources of `res_type` whose stored index rows differ from what the store's extraction gives (at most
    `limit` of them, described); empty when every row is exactly as a write through the API would have made it."""
    contents = {r["rid"]: r["content"] for r in await conn.fetch(
        "SELECT rid, content FROM resource WHERE res_type = $1 AND NOT deleted", res_type)}  # fmt: skip
    stored: dict[int, set[tuple[Any, ...]]] = {rid: set() for rid in contents}
    for field, (table, columns) in INDEX_COLUMNS.items():
        rows = await conn.fetch(f"SELECT rid, {', '.join(columns)} FROM {table} WHERE res_type = $1", res_type)
        for row in rows:
            stored.setdefault(row["rid"], set()).add((field, *tuple(row)[1:]))
        await asyncio.sleep(0)
    found = []
    for rid, content in contents.items():
        index = extract_index(jsonutil.loads(content))
        expected = {(field, *vars(row).values()) for field in INDEX_COLUMNS for row in getattr(index, field)}
        if expected != stored[rid]:
            found.append(f"rid {rid}: missing {sorted(map(str, expected - stored[rid]))}, "
                         f"extra {sorted(map(str, stored[rid] - expected))}")  # fmt: skip
            if len(found) >= limit:
                break
    return found
