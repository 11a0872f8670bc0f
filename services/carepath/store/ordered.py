"""A search page read in index order (search_sql.index_ordered): the worklist's `_sort=due-date` on 100k Tasks.

The walk reads at most WITHIN index rows per resource of the page. When it finds the page there, that is the
page (the prefix is the start of the sort order); when it does not — matches are sparse, or fewer than a page,
or resources with several values filled it with repeats — it answers None and the caller sorts the matches
(search_sql.build_search), which for sparse matches is the faster way.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import Executable, Result, Row

from carepath.fhir.search.query import SearchQuery, SortKey
from carepath.store.search_sql import build_rows, build_walk

Run = Callable[[Executable], Awaitable[Result[Any]]]
WITHIN = 50  # index rows read per row wanted: 2,550 for a first worklist page (51 rows: one to tell a next page)


async def ordered_page(run: Run, query: SearchQuery, sort: SortKey) -> list[Row[Any]] | None:
    """The rows (search_sql.RESULT_COLUMNS) of the page in build_search's order, or None: sort the matches."""
    needed = query.offset + query.count
    if needed == 0:
        return None
    walked = list(await run(build_walk(query, sort, needed, needed * WITHIN)))
    ordered = list(dict.fromkeys(row.rid for row in walked))  # each resource at its first (its key's) row
    if len(ordered) < needed:
        return None
    page = ordered[query.offset : needed]
    found = {row.rid: row for row in await run(build_rows(page))}
    return [found[rid] for rid in page if rid in found]
