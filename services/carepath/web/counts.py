"""The worklist's counts (matches, and matches per due window), cached per process and still exact.

Counting 60,000 open Tasks (in one query, web/data.py) is most of a page's time on 100k Tasks. The counts of a
filter set are kept under the Task generation read before they were computed (store/generations.py: any Task commit
by any process starts a new one), and used again only while (1) the generation is the same, (2) the hospital's
day is the same (the today / this week / upcoming bounds move at local midnight), and (3) no Task's due date
lies between the last moment they were known to hold and now (the overdue / today bound is `now`): then every Task is in
the same window as when they were counted.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from carepath.store.generations import cached
from carepath.store.repository import StoreTransaction
from carepath.web.views.worklist import Filters

Counts = tuple[int, dict[str, int]]
# The search bounds are instants to the second, a bound's range [t, t + 1 s): a margin on either side.
_MARGIN = timedelta(seconds=2)


@dataclass
class _Counted:
    at: datetime  # the counts are known to hold at this moment (moved on by each check that finds them valid)
    counts: Counts


async def worklist_counts(tx: StoreTransaction, filters: Filters, now: datetime, tz: ZoneInfo,
                          compute: Callable[[], Awaitable[Counts]]) -> Counts:  # fmt: skip
    """The counts `compute` gives for these filters at `now`, from the cache when they are sure to be the same."""

    async def counted() -> _Counted:
        return _Counted(now, await compute())

    async def same_windows(found: _Counted) -> bool:
        start, end = min(found.at, now) - _MARGIN, max(found.at, now) + _MARGIN
        if await tx.dates_between("Task", "due-date", _naive_utc(start), _naive_utc(end)):
            return False
        found.at = max(found.at, now)  # so the next check covers only the time since this one
        return True

    key = ("worklist-counts", replace(filters, page=1), str(tz), now.astimezone(tz).date())
    return (await cached(tx.generations, key, ("Task",), counted, same_windows)).counts


def _naive_utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None)
