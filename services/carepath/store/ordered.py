"""A search page read in index order (search_sql.index_ordered): the worklist's `_sort=due-date` on 100k Tasks.

The walk reads `offset + count` index rows first; only resources with several values of the sort parameter can
make that too few distinct resources, and then it reads four times as many, until enough or none are left. When
the valued rows run out, the page goes on with the matches that have no value (FHIR: missing values sort last).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import Executable, Result, Row

from carepath.fhir.search.query import SearchQuery, SortKey
from carepath.store.search_sql import build_rows, build_unvalued, build_walk

Run = Callable[[Executable], Awaitable[Result[Any]]]


async def ordered_page(run: Run, query: SearchQuery, sort: SortKey) -> list[Row[Any]]:
    """The rows (search_sql.RESULT_COLUMNS) of the page, in the order build_search would give them."""
    needed = query.offset + query.count
    rows = max(needed, 1)
    while True:
        walked = list(await run(build_walk(query, sort, rows)))
        ordered = list(dict.fromkeys(row.rid for row in walked))  # each resource at its first (its key's) row
        exhausted = len(walked) < rows
        if len(ordered) >= needed or exhausted:
            break
        rows *= 4
    page = ordered[query.offset : needed]
    if exhausted and len(page) < query.count:
        skip = max(0, query.offset - len(ordered))
        page += list((await run(build_unvalued(query, sort, query.count - len(page), skip))).scalars())
    if not page:
        return []
    found = {row.rid: row for row in await run(build_rows(page))}
    return [found[rid] for rid in page if rid in found]
